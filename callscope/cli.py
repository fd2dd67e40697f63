"""The ``callscope`` command line.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or a resource
that cannot be had at start (data directory in use, port taken).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from pathlib import Path
from typing import Any

from callscope import __version__
from callscope.settings import Settings, load_settings, parse_listen
from callscope.telemetry import Telemetry, configure_logging
from schemas.errors import CallscopeError, ConfigError, StartupError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

DESCRIPTION = """\
callscope: observability for clustered VoIP platforms.

Collectors take HEP, Asterisk AMI, CDR, CEL, queue_log and SIP OPTIONS probes
from every node; they travel as JSON envelopes on a bus (in-process or Kafka),
are correlated by processors and stored in ClickHouse (embedded chDB or a
server); an HTTP API and Grafana dashboards show them.
"""

EPILOG = """\
configuration: one YAML file (--config) plus CALLSCOPE_* environment variables,
nested with "__" (CALLSCOPE_BUS__KIND=kafka, CALLSCOPE_STORE__DSN=http://...), which
win over the file; options given here (--node, --data-dir, ...) win over both.
Run "callscope config check FILE" to validate a file.
"""


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="YAML configuration file")
    p.add_argument("--data-dir", type=Path, help="data directory (embedded store, API token); default ./data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callscope",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"callscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the pipeline (embedded by default)",
        description=(
            "Run the pipeline. With no config: chDB under ./data, the in-process bus and the API on"
            " 127.0.0.1:8080. With --role and a config: one part of a distributed deployment"
            " (Kafka and a ClickHouse server). SIGINT/SIGTERM stop intake, flush, commit and exit 0."
        ),
    )
    _add_config(run)
    run.add_argument(
        "--role",
        choices=("all", "collector", "processor", "api"),
        default="all",
        help="what this process runs (default: all, the embedded pipeline)",
    )
    run.add_argument(
        "--api-listen",
        metavar="HOST:PORT",
        help="HTTP address (default 127.0.0.1:8080): the API for roles all and api;"
        " /healthz, /readyz and /metrics only for collector and processor",
    )
    run.add_argument("--hep-listen", metavar="HOST:PORT", help="HEP address, UDP and TCP (default 127.0.0.1:9060)")
    run.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="probe a trunk with SIP OPTIONS (sip:/sips: URI or HOST[:PORT]), on top of the config's"
        " collectors.options.targets; repeatable",
    )
    run.add_argument(
        "--probe-interval-secs",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds between probes of each --probe target (default 30)",
    )

    mig = sub.add_parser("migrate", help="apply the ClickHouse migrations", description="Apply pending migrations.")
    _add_config(mig)
    mig.add_argument(
        "--print-cluster-ddl",
        metavar="CLUSTER",
        help="print the ON CLUSTER / Replicated / Distributed DDL for CLUSTER instead of applying",
    )

    sch = sub.add_parser("schemas", help="envelope JSON Schema", description="Envelope JSON Schema files.")
    sch_sub = sch.add_subparsers(dest="schemas_command", metavar="ACTION")
    exp = sch_sub.add_parser("export", help="write schemas/json/*.schema.json")
    exp.add_argument("--dir", type=Path, help="output directory (default: the package's schemas/json)")
    exp.add_argument("--check", action="store_true", help="exit 1 when the files are not current; write nothing")

    cfg = sub.add_parser("config", help="configuration tools", description="Configuration tools.")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    chk = cfg_sub.add_parser("check", help="validate a config file; print each error with its option path")
    chk.add_argument("file", type=Path)

    rep = sub.add_parser(
        "replay",
        help="push recorded input through the collectors' parsers",
        description=(
            "Replay recorded input: into a running instance (--to URL --token TOKEN, through"
            " POST /api/v1/ingest) or into a one-shot embedded pipeline on --data-dir."
        ),
    )
    _add_config(rep)
    rep.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rep.add_argument(
        "--format",
        help=(
            "input format when it cannot be detected: jsonl, pcap (pcap/pcapng), hep (raw HEP packets),"
            " ami (AMI wire transcripts or JSON lists of AMI events), cdr (Master.csv of cdr_csv, or cdr_custom"
            " with collectors.cdr.columns), cel (cel_custom CSV), queue_log (file or DB layout)"
        ),
    )
    rep.add_argument("--node", help="node name to stamp on events that do not carry one")
    rep.add_argument("--to", metavar="URL", help="base URL of a running callscope API")
    rep.add_argument("--token", help="admin API token for --to (or CALLSCOPE_TOKEN)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")

    demo = sub.add_parser(
        "demo",
        help="send generated HEP traffic to a collector",
        description=(
            "Send realistic generated HEP3 traffic (answered, busy, cancelled and failed calls over two"
            " nodes, registrations, OPTIONS keep-alives, RTCP reports, log lines) to a HEP collector, so"
            " a running 'callscope run' shows data at once. The same --seed gives the same calls."
        ),
    )
    demo.add_argument(
        "--hep", metavar="HOST:PORT", default="127.0.0.1:9060", help="collector address (default 127.0.0.1:9060)"
    )
    demo.add_argument("--calls", type=int, default=50, help="calls to generate (default 50)")
    demo.add_argument("--rate", type=float, default=500.0, help="packets per second; 0 = as fast as possible")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--tcp", action="store_true", help="send over one TCP connection instead of UDP")

    probe = sub.add_parser(
        "probe",
        help="send SIP OPTIONS to a URI and print code, reason and RTT (like sipsak)",
        description=(
            "Send SIP OPTIONS to URI (sip:/sips: URI or HOST[:PORT]) over UDP, TCP or TLS and print one line per"
            " probe: status code, reason, RTT in ms and the Server header, or the error class (timeout, refused,"
            " dns, tls, malformed, unexpected_code) and why. UDP retransmits per RFC 3261 timer E; RTT counts"
            " from the first send. Exit 0 when every probe was reachable, 1 otherwise, 2 for a bad option."
        ),
    )
    probe.add_argument("uri", metavar="URI", help="e.g. sip:sbc.carrier.example, sips:pbx:5061, 10.0.0.5:5070")
    probe.add_argument("-n", "--count", type=int, default=1, metavar="N", help="probes to send (default 1)")
    probe.add_argument("--interval-secs", type=float, default=1.0, metavar="S", help="between probe starts (default 1)")
    probe.add_argument(
        "--timeout-secs", type=float, default=5.0, metavar="S", help="no final answer by then: timeout (default 5)"
    )
    probe.add_argument("--transport", choices=("udp", "tcp", "tls"), help="overrides the URI's ;transport=")
    probe.add_argument(
        "--expect",
        type=int,
        nargs="+",
        metavar="CODE",
        help="status codes that count as reachable (default 200), e.g. --expect 200 404",
    )
    probe.add_argument("--no-verify", action="store_true", help="TLS: do not check the certificate or its name")
    probe.add_argument("--ca-file", type=Path, metavar="PEM", help="TLS: CA bundle to check the certificate with")
    probe.add_argument("--json", action="store_true", help="one JSON object per probe instead of text")
    probe.add_argument(
        "-c", "--config", type=Path, help="YAML configuration: node, collectors.options (user_agent, bind, t1_ms...)"
    )
    _add_dashboards(sub)
    for name, (_module, help_text) in DELEGATED.items():
        # Their own argparse parses the rest (`callscope NAME --help` shows it).
        # main() hands everything after NAME to it before this parser runs; listed here for --help.
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


# Subcommands whose options live with their code: module whose main(argv) -> int runs them.
DELEGATED = {
    "generate": (
        "callscope.traffic.cli",
        "generate seeded traffic (HEP over UDP/TCP, AMI, queue_log/CDR/CEL files) at a chosen rate",
    ),
    "bench": ("bench.__main__", "run the benchmarks under bench/ (source checkout) and write bench/results.json"),
}


def cmd_delegated(command: str, rest: list[str]) -> int:
    import importlib

    module_name = DELEGATED[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            message = f"`callscope {command}` needs the source checkout ({module_name} is not installed)"
            raise StartupError(message) from None
        raise
    code: int = module.main(rest)
    return code


def _add_dashboards(sub: Any) -> None:
    dash = sub.add_parser(
        "dashboards", help="Grafana dashboards and datasources", description="Grafana dashboards and datasources."
    )
    dash_sub = dash.add_subparsers(dest="dashboards_command", metavar="ACTION")
    push = dash_sub.add_parser(
        "push",
        help="upload the dashboards and datasources through Grafana's HTTP API",
        description=(
            "Upload DIR/*.json (dashboards) and DIR/provisioning/datasources/*.yaml (datasources, Grafana's"
            " provisioning format, $VAR expanded from the environment) through Grafana's HTTP API: the folder"
            " is found by title or created, datasources are created or updated by uid, dashboards are posted"
            " by uid with overwrite into the folder. What Grafana already holds is left alone, so a second"
            " push says 'unchanged'. 5xx answers and network errors are retried with backoff. The token is"
            " never printed. Exit 0 when everything was pushed, 1 when Grafana refused or failed"
            " (401 token refused, 403 permission missing, 404 no Grafana API at --url), 2 for a bad option or file."
        ),
    )
    push.add_argument("--url", help="Grafana's root URL, e.g. https://grafana.example.com (or GRAFANA_URL)")
    push.add_argument(
        "--token", help="service account token (or GRAFANA_TOKEN); datasources need the Admin role, dashboards Editor"
    )
    push.add_argument("--folder", metavar="NAME", help="folder title, created when missing (default callscope)")
    push.add_argument(
        "--dir", type=Path, metavar="DIR", help="where the files are (default: the source tree's dashboards/grafana)"
    )
    push.add_argument(
        "--no-datasources", action="store_true", help="push the dashboards only (a token with the Editor role will do)"
    )
    push.add_argument(
        "--retries", type=int, default=3, metavar="N", help="retries after a 5xx or network error (default 3)"
    )
    push.add_argument("--timeout-secs", type=float, default=10.0, metavar="S", help="per request (default 10)")


def _settings(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    overrides: dict[str, Any] = dict(extra or {})
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = str(args.data_dir)
    if getattr(args, "api_listen", None):
        overrides.setdefault("api", {})["listen"] = args.api_listen
    if getattr(args, "hep_listen", None):
        overrides.setdefault("collectors", {}).setdefault("hep", {})["listen"] = args.hep_listen
    if getattr(args, "node", None):
        overrides["node"] = args.node
    return load_settings(getattr(args, "config", None), overrides)


def _print_config_errors(exc: ConfigError) -> None:
    for path, msg in exc.errors:
        print(f"config error: {path}: {msg}", file=sys.stderr)


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file)
    except ConfigError as exc:
        _print_config_errors(exc)
        return EXIT_CONFIG
    print(f"{args.file}: ok (node {settings.node}, bus {settings.bus.kind}, store {settings.resolved_store().dsn})")
    return EXIT_OK


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas import export

    directory = args.dir or export.JSON_DIR
    if args.check:
        stale = export.stale_files(directory)
        for name in stale:
            print(f"stale: {directory / name}", file=sys.stderr)
        return EXIT_FAILURE if stale else EXIT_OK
    for path in export.write(directory):
        print(path)
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.print_cluster_ddl:
        from callscope.store.cluster import render_cluster_ddl

        for stmt in render_cluster_ddl(args.print_cluster_ddl, settings.resolved_store()):
            print(stmt.rstrip().rstrip(";") + ";\n")
        return EXIT_OK
    from callscope.store.client import Store
    from callscope.store.migrations import apply_migrations

    store_config = settings.resolved_store()
    store = Store.open(store_config)
    try:
        applied = apply_migrations(store, store_config)
    finally:
        store.close()
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.probe:
        from callscope.probe import add_probe_targets

        settings = add_probe_targets(settings, args.probe, args.probe_interval_secs, role=args.role)
    # Live call state is many small objects: the default thresholds make full collections
    # stall the event loop (measured as the largest single cost under load).
    gc.set_threshold(100_000, 50, 1000)
    configure_logging(settings.log.level, settings.log.format)
    telemetry = Telemetry(node=settings.node)
    from callscope.runtime import Runtime, Started, install_signal_handlers

    runtime = Runtime(settings, telemetry, role=args.role)
    runtime.open_resources()

    def banner(started: Started) -> None:
        print(f"callscope {__version__} running (role {args.role}, node {settings.node})", flush=True)
        print(f"  bus:   {started.bus}", flush=True)
        if started.store_dsn:
            print(f"  store: {started.store_dsn}", flush=True)
        if started.api_url:
            print(
                f"  api:   {started.api_url}  (docs {started.api_url}/docs, metrics {started.api_url}/metrics)",
                flush=True,
            )
        if started.metrics_url:
            print(
                f"  http:  {started.metrics_url}  (metrics {started.metrics_url}/metrics, health /healthz /readyz)",
                flush=True,
            )
        for name, where in started.endpoints.items():
            print(f"  {name + ':':<6} {where}", flush=True)
        if started.token_path:
            state = "created" if started.token_created else "reused"
            print(f"  token: admin API token {state} in {started.token_path}", flush=True)
        print("  stop with Ctrl-C", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await runtime.run(stop, on_started=banner)

    try:
        asyncio.run(main())
    finally:
        runtime.close()
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from callscope.replay import replay_embedded, replay_to_api, resolve_formats

    settings = _settings(args)
    from callscope.formats import use_collector_settings

    use_collector_settings(settings.collectors)  # configured cdr_custom/cel_custom mappings and time zones
    files = resolve_formats(args.files, args.format)
    show = not args.no_progress and sys.stderr.isatty()
    if args.to:
        token = args.token or os.environ.get("CALLSCOPE_TOKEN")
        if not token:
            raise ConfigError([("--token", "required with --to (or set CALLSCOPE_TOKEN)")])
        result = replay_to_api(files, args.to, token, node=settings.node, role=settings.role, show_progress=show)
    else:
        configure_logging(settings.log.level, settings.log.format)
        result = asyncio.run(replay_embedded(files, settings, Telemetry(node=settings.node), show_progress=show))
    print(f"replayed {result.files} file(s): {result.accepted} accepted, {result.deadlettered} dead-lettered")
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    from callscope.probe import ProbeOptions, run_probe

    opts = ProbeOptions(
        args.uri,
        count=args.count,
        interval_secs=args.interval_secs,
        timeout_secs=args.timeout_secs,
        transport=args.transport,
        expect=args.expect,
        verify=not args.no_verify,
        ca_file=args.ca_file,
        config=args.config,
    )
    return run_probe(opts, sys.stdout, as_json=args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from callscope import demo

    try:
        host, port = parse_listen(args.hep)
    except ValueError as exc:
        raise ConfigError([("--hep", str(exc))]) from None
    if port == 0:
        raise ConfigError([("--hep", "port 0 is not an address to send to")])
    if args.calls < 1:
        raise ConfigError([("--calls", "must be at least 1")])
    if args.rate < 0:
        raise ConfigError([("--rate", "must be 0 or more")])
    traffic = demo.generate(args.calls, seed=args.seed, start_us=time.time_ns() // 1000)
    try:
        seconds = demo.send(traffic, host, port, rate=args.rate, tcp=args.tcp)
    except OSError as exc:
        raise StartupError(f"--hep: cannot send to {args.hep}: {exc.strerror or exc}") from None
    print(demo.summary(traffic, host, port, seconds, args.tcp))
    return EXIT_OK


def cmd_dashboards_push(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from callscope.dashboards import DEFAULT_FOLDER, default_dir

    try:
        from callscope.grafana_push import PushOptions, push
    except ImportError as exc:
        raise StartupError(
            f"dashboards push needs grafana-client ({exc.name} is missing): pip install 'callscope[grafana]'"
        ) from None

    url = args.url or os.environ.get("GRAFANA_URL")
    token = args.token or os.environ.get("GRAFANA_TOKEN")
    missing = [
        (opt, f"required (or set {env})")
        for opt, env, v in (("--url", "GRAFANA_URL", url), ("--token", "GRAFANA_TOKEN", token))
        if not v
    ]
    if missing:
        raise ConfigError(missing)
    try:
        options = PushOptions(
            url=url,
            token=token,
            folder=DEFAULT_FOLDER if args.folder is None else args.folder,
            directory=args.dir or default_dir(),
            datasources=not args.no_datasources,
            retries=args.retries,
            timeout_secs=args.timeout_secs,
        )
    except ValidationError as exc:
        names = {"directory": "dir", "datasources": "no-datasources"}
        raise ConfigError(
            [("--" + names.get(str(e["loc"][0]), str(e["loc"][0]).replace("_", "-")), e["msg"]) for e in exc.errors()]
        ) from None
    push(options, sys.stdout, environ=os.environ)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        try:
            return cmd_delegated(argv[0], argv[1:])
        except StartupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    args = parser.parse_args(argv)
    handlers = {
        "run": cmd_run,
        "migrate": cmd_migrate,
        "replay": cmd_replay,
        "demo": cmd_demo,
        "probe": cmd_probe,
    }
    try:
        if args.command in handlers:
            return handlers[args.command](args)
        if args.command == "schemas" and args.schemas_command == "export":
            return cmd_schemas(args)
        if args.command == "config" and args.config_command == "check":
            return cmd_config_check(args)
        if args.command == "dashboards" and args.dashboards_command == "push":
            return cmd_dashboards_push(args)
        parser.print_help()
        return EXIT_CONFIG if args.command else EXIT_OK
    except ConfigError as exc:
        _print_config_errors(exc)
        return EXIT_CONFIG
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except CallscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["build_parser", "main", "parse_listen"]
