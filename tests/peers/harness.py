"""Real VoIP peers for the end-to-end tests: Kamailio, sipp, rtpengine and sngrep as processes.

Everything binds 127.0.0.1 on ports the OS hands out (other engineers run tests in parallel),
every peer is probed over its own protocol for readiness (a SIP OPTIONS for Kamailio, an ng
``ping`` for rtpengine), waits are deadlines rather than sleeps, every process is killed by
whoever started it, and each peer's output goes to a log file that failure messages quote.

The tests decide what to do when a peer's binary is missing (:class:`PeerMissing`): skip
outside CI, fail under ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIPP_DIR = HERE / "sipp"
KAMAILIO_TEMPLATE = HERE / "kamailio.cfg.tmpl"
#: Kamailio as a dispatcher pinging its destinations, every packet mirrored (siptrace trace_mode 1).
KAMAILIO_DISPATCHER_TEMPLATE = HERE / "kamailio_dispatcher.cfg.tmpl"
LOOPBACK = "127.0.0.1"

#: binary -> Debian package that provides it (tests/system-deps.sh installs them).
PACKAGES = {
    "kamailio": "kamailio",
    "sipp": "sip-tester",
    "rtpengine": "rtpengine-daemon",
    "sngrep": "sngrep",
}


class PeerMissing(RuntimeError):
    """A peer's binary is not installed; the message says which package to install."""


class PeerFailed(RuntimeError):
    """A peer did not start, did not become ready, or a run failed; the message quotes its log."""


def require(*binaries: str) -> dict[str, str]:
    """Paths of the binaries, or :class:`PeerMissing` naming the packages to install."""
    found = {b: shutil.which(b) for b in binaries}
    missing = sorted(b for b, path in found.items() if path is None)
    if missing:
        packages = " ".join(PACKAGES.get(b, b) for b in missing)
        raise PeerMissing(
            f"{', '.join(missing)} not installed: run `sudo bash tests/system-deps.sh` (or apt-get install {packages})"
        )
    return {b: p for b, p in found.items() if p is not None}


# --------------------------------------------------------------------------- ports


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 the OS just handed out (released again for the peer to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_block(size: int, attempts: int = 200) -> int:
    """First port of ``size`` consecutive free UDP ports, starting at an OS-given port.

    For peers that take a port range (rtpengine ``--port-min/--port-max``, sipp ``-mp`` with
    its neighbours). The whole block is held while checked, then released for the peer.
    """
    for _ in range(attempts):
        first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held = [first]
        try:
            first.bind((LOOPBACK, 0))
            base: int = first.getsockname()[1]
            if base % 2 or base + size > 65535:  # RTP wants an even base
                continue
            for port in range(base + 1, base + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind((LOOPBACK, port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise PeerFailed(f"no block of {size} free UDP ports found")


# --------------------------------------------------------------------------- processes


@dataclass
class PeerProcess:
    """A peer started by the harness; :meth:`stop` is safe to call more than once."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-chars:]

    def stop(self, timeout: float = 5.0) -> int | None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def describe(self) -> str:
        return f"{self.name} (pid {self.proc.pid}, exit {self.proc.poll()}), log {self.log_path}:\n{self.log_tail()}"


def start_process(name: str, argv: Sequence[str], log_dir: Path, cwd: Path | None = None) -> PeerProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or log_dir,
        )
    return PeerProcess(name, proc, log_path)


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise PeerFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- SIP over UDP


def sip_options(target: tuple[str, int], call_id: str, timeout: float = 0.5) -> str | None:
    """Send one OPTIONS to ``target`` and return the status line of the answer (None on silence)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(timeout)
        port = sock.getsockname()[1]
        host, tport = target
        msg = (
            f"OPTIONS sip:{host}:{tport} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{LOOPBACK}:{port}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{host}:{tport}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(msg.encode(), target)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return None
        return data.split(b"\r\n", 1)[0].decode(errors="replace")


# --------------------------------------------------------------------------- Kamailio


@dataclass
class Kamailio:
    """Kamailio 5.6 as a stateful, record-routing proxy mirroring its transactions as HEP3."""

    process: PeerProcess
    sip_port: int
    hep_port: int
    capture_id: int
    config_path: Path

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.sip_port)

    @property
    def hostport(self) -> str:
        return f"{LOOPBACK}:{self.sip_port}"

    def stop(self) -> None:
        self.process.stop()


def render_kamailio_config(
    path: Path,
    *,
    sip_port: int,
    hep_port: int,
    capture_id: int,
    fr_timer_ms: int = 2000,
    fr_inv_timer_ms: int = 10000,
    template: Path = KAMAILIO_TEMPLATE,
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Fill ``template``'s placeholders: the common ones, plus ``extra`` (upper-case names) for its own."""
    text = template.read_text()
    values: dict[str, object] = {
        "SIP_PORT": sip_port,
        "HEP_PORT": hep_port,
        "HEP_CAPTURE_ID": capture_id,
        "FR_TIMER_MS": fr_timer_ms,
        "FR_INV_TIMER_MS": fr_inv_timer_ms,
        **(extra or {}),
    }
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    if "@@" in text:
        raise PeerFailed(f"{template}: placeholder left unfilled")
    path.write_text(text)
    return path


def start_kamailio(
    workdir: Path,
    *,
    hep_port: int,
    capture_id: int,
    fr_timer_ms: int = 2000,
    ready_timeout: float = 20.0,
    template: Path = KAMAILIO_TEMPLATE,
    extra: Mapping[str, object] | None = None,
    sip_port: int | None = None,
) -> Kamailio:
    """Start Kamailio in the foreground on a free port; ready once it answers an OPTIONS with 200.

    ``template`` and ``extra`` as for :func:`render_kamailio_config` (the template must answer
    an OPTIONS to Kamailio itself with 200). ``sip_port``: listen there (a port other
    configuration already names), one attempt; else on a free port, retried.
    """
    binary = require("kamailio")["kamailio"]
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _ in range(1 if sip_port is not None else 3):  # a free port may be taken before Kamailio binds it
        port = sip_port if sip_port is not None else free_udp_port()
        cfg = render_kamailio_config(
            workdir / "kamailio.cfg",
            sip_port=port,
            hep_port=hep_port,
            capture_id=capture_id,
            fr_timer_ms=fr_timer_ms,
            template=template,
            extra=extra,
        )
        check = subprocess.run([binary, "-f", str(cfg), "-c"], capture_output=True, text=True, timeout=30, check=False)
        if check.returncode != 0:
            raise PeerFailed(f"kamailio -c rejected {cfg}:\n{check.stderr[-3000:]}")
        # -DD: no daemon, -E: log to stderr; runtime files stay in the work directory.
        process = start_process(
            "kamailio",
            [binary, "-f", str(cfg), "-DD", "-E", "-Y", str(workdir), "-P", str(workdir / "kamailio.pid")],
            workdir,
        )
        kam = Kamailio(process, port, hep_port, capture_id, cfg)
        deadline = time.monotonic() + ready_timeout
        n = 0
        while process.alive() and time.monotonic() < deadline:
            n += 1
            status = sip_options(kam.address, f"readiness-{n}-{secrets.token_hex(4)}@callscope-e2e")
            if status is not None and status.startswith("SIP/2.0 200"):
                return kam
        last_error = process.describe()
        process.stop()
    raise PeerFailed(f"kamailio never answered OPTIONS with 200: {last_error}")


def start_kamailio_dispatcher(
    workdir: Path,
    *,
    hep_port: int,
    capture_id: int,
    destinations: Sequence[str],
    ping_interval_secs: int = 1,
    fr_timer_ms: int = 1000,
    ready_timeout: float = 20.0,
    sip_port: int | None = None,
) -> Kamailio:
    """Kamailio's dispatcher pinging ``destinations`` (SIP URIs, set 1) with OPTIONS, all traffic mirrored as HEP3.

    The list file is written to ``workdir/dispatcher.list`` (one ``SETID URI`` a line, no
    database). ``fr_timer_ms`` bounds each ping: an unanswered one is retransmitted (T1 500 ms)
    until then, and the next ping starts ``ping_interval_secs`` after the previous one.
    ``sip_port`` as for :func:`start_kamailio`.
    """
    if ping_interval_secs < 1:
        raise ValueError("dispatcher's ds_ping_interval is whole seconds, at least 1")
    workdir.mkdir(parents=True, exist_ok=True)
    list_file = workdir / "dispatcher.list"
    list_file.write_text("".join(f"1 {uri}\n" for uri in destinations))
    return start_kamailio(
        workdir,
        hep_port=hep_port,
        capture_id=capture_id,
        fr_timer_ms=fr_timer_ms,
        ready_timeout=ready_timeout,
        template=KAMAILIO_DISPATCHER_TEMPLATE,
        extra={"DISPATCHER_LIST": list_file, "PING_INTERVAL_SECS": ping_interval_secs},
        sip_port=sip_port,
    )


# --------------------------------------------------------------------------- sipp


def scenario(name: str, workdir: Path, **values: object) -> Path:
    """Path of a scenario in tests/peers/sipp; with ``values``, a copy with ``@@KEY@@`` filled in."""
    src = SIPP_DIR / name
    if not values:
        return src
    text = src.read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key.upper()}@@", str(value))
    if "@@" in text:
        raise PeerFailed(f"{src}: placeholder left unfilled")
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{src.stem}-{'-'.join(str(v) for v in values.values())}{src.suffix}"
    out.write_text(text)
    return out


@dataclass
class SippResult:
    returncode: int
    log: str
    message_log: str
    port: int  # the UAC's SIP port (its column in a ladder)

    def describe(self) -> str:
        return f"sipp exit {self.returncode}\n{self.log[-2000:]}\n--- messages ---\n{self.message_log[-4000:]}"


def _sipp_argv(
    binary: str, scenario_path: Path | str, port: int, media_port: int, extra: Iterable[str], message_file: Path
) -> list[str]:
    scen = ["-sn", str(scenario_path)[3:]] if str(scenario_path).startswith("sn:") else ["-sf", str(scenario_path)]
    return [
        binary,
        *scen,
        "-i",
        LOOPBACK,
        "-p",
        str(port),
        "-mi",
        LOOPBACK,
        "-mp",
        str(media_port),
        "-nostdin",
        "-trace_msg",
        "-message_file",
        str(message_file),
        *extra,
    ]


def run_uac(
    scenario_path: Path | str,
    workdir: Path,
    *,
    target: str,
    proxy: str | None,
    call_id: str,
    service: str = "callee",
    pause_ms: int = 0,
    timeout: float = 30.0,
    extra: Sequence[str] = (),
) -> SippResult:
    """Place one call (``-m 1``) with a fixed Call-ID; ``target`` is the R-URI host:port, ``proxy`` where to send.

    ``scenario_path`` is a file, or ``sn:uac`` for a sipp built-in. The Call-ID is exact: sipp's
    ``-cid_str`` keeps text without ``%`` as it is.
    """
    binary = require("sipp")["sipp"]
    workdir.mkdir(parents=True, exist_ok=True)
    if "%" in call_id:
        raise ValueError("call_id must not contain % (sipp's -cid_str escapes)")
    stem = call_id.split("@", 1)[0]
    message_file = workdir / f"uac-{stem}.msg"
    log_path = workdir / f"uac-{stem}.log"
    port = free_udp_port()
    argv = _sipp_argv(
        binary,
        scenario_path,
        port,
        free_udp_block(4),
        [
            "-s",
            service,
            target,
            *(["-rsa", proxy] if proxy else []),
            "-m",
            "1",
            "-l",
            "1",
            "-d",
            str(pause_ms),
            "-cid_str",
            call_id,
            "-timeout",
            f"{int(timeout)}s",
            "-timeout_error",
            *extra,
        ],
        message_file,
    )
    try:
        proc = subprocess.run(
            argv, capture_output=True, timeout=timeout + 10, check=False, cwd=workdir, stdin=subprocess.DEVNULL
        )
        code, out = proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        code, out = -1, f"killed after {timeout + 10:.0f} s: {exc}"
    log_path.write_text(f"$ {' '.join(argv)}\n{out}")
    messages = message_file.read_text(errors="replace") if message_file.exists() else ""
    return SippResult(code, out, messages, port)


@dataclass
class Uas:
    process: PeerProcess
    port: int

    @property
    def hostport(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        self.process.stop()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.process.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def start_uas(scenario_path: Path | str, workdir: Path, *, name: str, calls: int = 1, port: int | None = None) -> Uas:
    """A sipp UAS answering ``calls`` calls with the scenario, then exiting.

    On ``port`` when given (a peer restarted where callers expect it), else on a free port
    (retried when another process takes it first). Ready once its UDP port is bound (sipp
    binds before it reads the first message).
    """
    binary = require("sipp")["sipp"]
    process: PeerProcess | None = None
    for _ in range(1 if port is not None else 3):
        chosen = port if port is not None else free_udp_port()
        media = free_udp_block(4)
        argv = _sipp_argv(binary, scenario_path, chosen, media, ["-m", str(calls)], workdir / f"{name}.msg")
        process = start_process(name, argv, workdir)

        def bound(chosen: int = chosen, process: PeerProcess = process) -> bool:
            return _udp_bound(chosen) or not process.alive()

        try:
            wait_until(f"sipp {name} to bind {chosen}", bound, 10)
        except PeerFailed:
            process.stop()
            raise
        if process.alive():
            return Uas(process, chosen)
        process.stop()
    where = f" on port {port}" if port is not None else ""
    raise PeerFailed(f"sipp {name} did not start{where}: {process.describe() if process else ''}")


def _udp_bound(port: int) -> bool:
    """Whether something bound UDP ``port``: read from /proc, so probing never takes the port itself."""
    needle = f":{port:04X} "
    try:
        with open("/proc/net/udp") as table:
            return any(line.split()[1].endswith(needle.strip()) for line in table.readlines()[1:] if needle in line)
    except OSError:
        time.sleep(0.5)  # no /proc: give the peer a moment instead
        return True


# --------------------------------------------------------------------------- HEP sink (no collector)


@dataclass
class HepPacket:
    data: bytes
    chunks: dict[int, bytes]

    @property
    def capture_id(self) -> int:
        return int(struct.unpack("!I", self.chunks[0x000C])[0]) if 0x000C in self.chunks else -1

    @property
    def proto_type(self) -> int:
        return self.chunks.get(0x000B, b"\xff")[0]

    @property
    def correlation_id(self) -> str | None:
        raw = self.chunks.get(0x0011)
        return raw.decode(errors="replace") if raw is not None else None

    @property
    def payload(self) -> bytes:
        return self.chunks.get(0x000F, b"")


def parse_hep3(data: bytes) -> HepPacket:
    """Split a HEP3 packet into its generic chunks (vendor 0); enough to check what a peer sent."""
    if data[:4] != b"HEP3":
        raise ValueError(f"not HEP3: {data[:8]!r}")
    total = struct.unpack("!H", data[4:6])[0]
    chunks: dict[int, bytes] = {}
    off = 6
    while off + 6 <= min(total, len(data)):
        vendor, ctype, length = struct.unpack("!HHH", data[off : off + 6])
        if length < 6:
            raise ValueError(f"chunk length {length} at {off}")
        if vendor == 0:
            chunks[ctype] = data[off + 6 : off + length]
        off += length
    return HepPacket(data, chunks)


@dataclass
class HepSink:
    """A UDP socket on an OS-given port collecting whatever HEP a peer sends (no collector needed)."""

    sock: socket.socket
    packets: list[bytes] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def open(cls) -> HepSink:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.settimeout(0.1)
        sink = cls(sock)
        sink._thread = threading.Thread(target=sink._run, name="hep-sink", daemon=True)
        sink._thread.start()
        return sink

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.packets.append(data)

    def wait_for(self, what: str, check: Callable[[list[bytes]], bool], timeout: float = 15.0) -> list[bytes]:
        wait_until(what, lambda: check(list(self.packets)), timeout)
        return list(self.packets)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.sock.close()


# --------------------------------------------------------------------------- rtpengine (ng protocol)

Bencode = bytes | str | int | list["Bencode"] | dict[str, "Bencode"]


def bencode(value: Bencode) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Bencode:
    value, end = _bdecode(data, 0)
    if end != len(data):
        raise ValueError(f"trailing bytes after bencoded value at {end}")
    return value


def _bdecode(data: bytes, i: int) -> tuple[Bencode, int]:
    lead = data[i : i + 1]
    if lead == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if lead == b"l":
        items: list[Bencode] = []
        i += 1
        while data[i : i + 1] != b"e":
            item, i = _bdecode(data, i)
            items.append(item)
        return items, i + 1
    if lead == b"d":
        out: dict[str, Bencode] = {}
        i += 1
        while data[i : i + 1] != b"e":
            key, i = _bdecode(data, i)
            val, i = _bdecode(data, i)
            out[key.decode() if isinstance(key, bytes) else str(key)] = val
        return out, i + 1
    if lead.isdigit():
        colon = data.index(b":", i)
        length = int(data[i:colon])
        start = colon + 1
        return data[start : start + length], start + length
    raise ValueError(f"bad bencode at {i}: {data[i : i + 10]!r}")


def text(value: Bencode | None) -> str:
    """A bencoded string value as text."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


class NgClient:
    """rtpengine's ng control protocol: ``<cookie> <bencoded dict>`` over UDP, answered with the same cookie."""

    def __init__(self, address: tuple[str, int], timeout: float = 2.0) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(timeout)

    def request(self, command: str, **params: Bencode) -> dict[str, Bencode]:
        cookie = secrets.token_hex(6).encode()
        body = {"command": command, **{k.replace("_", "-"): v for k, v in params.items()}}
        self.sock.sendto(cookie + b" " + bencode(body), self.address)
        while True:
            data = self.sock.recv(65535)
            got_cookie, _, payload = data.partition(b" ")
            if got_cookie == cookie:
                break
        answer = bdecode(payload)
        if not isinstance(answer, dict):
            raise PeerFailed(f"ng answer is not a dictionary: {answer!r}")
        return answer

    def close(self) -> None:
        self.sock.close()


@dataclass
class Rtpengine:
    process: PeerProcess
    ng_port: int
    port_min: int
    port_max: int

    @property
    def ng_address(self) -> tuple[str, int]:
        return (LOOPBACK, self.ng_port)

    def stop(self) -> None:
        self.process.stop()


def start_rtpengine(
    workdir: Path, *, hep_port: int, homer_id: int, ports: int = 40, ready_timeout: float = 20.0
) -> Rtpengine:
    """rtpengine userspace-only (``table = -1``), ng control and media on loopback, RTCP stats to HEP.

    ``--config-file=none`` keeps the package's /etc/rtpengine/rtpengine.conf out. Ready once it
    answers an ng ``ping`` with ``pong``.
    """
    binary = require("rtpengine")["rtpengine"]
    workdir.mkdir(parents=True, exist_ok=True)
    last = ""
    for _ in range(3):
        ng_port = free_udp_port()
        base = free_udp_block(ports)
        argv = [
            binary,
            "--config-file=none",
            "--table=-1",
            "--foreground",
            "--log-stderr",
            "--log-level=6",
            f"--pidfile={workdir / 'rtpengine.pid'}",
            f"--interface={LOOPBACK}",
            f"--listen-ng={LOOPBACK}:{ng_port}",
            f"--port-min={base}",
            f"--port-max={base + ports - 1}",
            f"--homer={LOOPBACK}:{hep_port}",
            "--homer-protocol=udp",
            f"--homer-id={homer_id}",
            "--delete-delay=0",
        ]
        process = start_process("rtpengine", argv, workdir)
        engine = Rtpengine(process, ng_port, base, base + ports - 1)
        client = NgClient(engine.ng_address, timeout=0.3)
        try:
            deadline = time.monotonic() + ready_timeout
            while process.alive() and time.monotonic() < deadline:
                try:
                    if client.request("ping").get("result") == b"pong":
                        return engine
                except (TimeoutError, ConnectionRefusedError):
                    time.sleep(0.05)
        finally:
            client.close()
        last = process.describe()
        process.stop()
    raise PeerFailed(f"rtpengine never answered ping: {last}")


# --------------------------------------------------------------------------- RTP / RTCP


def rtp_packet(seq: int, timestamp: int, ssrc: int, payload_type: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type & 0x7F, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


@dataclass(frozen=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 0..255, lost / expected * 256
    cumulative_lost: int
    highest_seq: int
    jitter: int  # RTP timestamp units
    lsr: int = 0
    dlsr: int = 0

    def pack(self) -> bytes:
        lost = self.cumulative_lost & 0xFFFFFF
        return struct.pack(
            "!IIIIII",
            self.ssrc,
            (self.fraction_lost << 24) | lost,
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def rtcp_sr(ssrc: int, *, ntp: float, rtp_ts: int, packets: int, octets: int, blocks: Sequence[ReportBlock]) -> bytes:
    """An RTCP Sender Report (PT 200) with report blocks."""
    secs = int(ntp) + 2208988800
    frac = int((ntp % 1) * 2**32)
    body = struct.pack("!IIIIII", ssrc, secs, frac, rtp_ts, packets, octets) + b"".join(b.pack() for b in blocks)
    return _rtcp_header(200, len(blocks), body) + body


def rtcp_rr(ssrc: int, blocks: Sequence[ReportBlock]) -> bytes:
    """An RTCP Receiver Report (PT 201)."""
    body = struct.pack("!I", ssrc) + b"".join(b.pack() for b in blocks)
    return _rtcp_header(201, len(blocks), body) + body


def rtcp_sdes(ssrc: int, cname: str) -> bytes:
    item = bytes([1, len(cname)]) + cname.encode()
    chunk = struct.pack("!I", ssrc) + item + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return _rtcp_header(202, 1, chunk) + chunk


def _rtcp_header(packet_type: int, count: int, body: bytes) -> bytes:
    return struct.pack("!BBH", 0x80 | count, packet_type, (len(body) + 4) // 4 - 1)


# --------------------------------------------------------------------------- sngrep


def sngrep_replay(
    pcap: Path, hep_port: int, workdir: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[bytes]:
    """``sngrep -N -q -I pcap -H udp:127.0.0.1:PORT``: send every SIP message of the pcap as HEP3, then exit."""
    binary = require("sngrep")["sngrep"]
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "-N", "-q", "-I", str(pcap), "-H", f"udp:{LOOPBACK}:{hep_port}"]
    # sngrep wants a terminal type even in no-interface mode; HOME keeps its rc file lookups private.
    env = dict(os.environ, TERM=os.environ.get("TERM", "dumb"), HOME=str(workdir))
    proc = subprocess.run(
        argv, capture_output=True, timeout=timeout, check=False, cwd=workdir, env=env, stdin=subprocess.DEVNULL
    )
    (workdir / f"sngrep-{pcap.stem}.log").write_bytes(
        b"$ " + " ".join(argv).encode() + b"\n" + proc.stdout + proc.stderr
    )
    return proc
