"""Runtime: builds the bus, the store and the components a role needs, runs them, stops them.

Roles:

- ``all`` (the embedded default): in-process bus unless configured otherwise,
  store, processors and the API in one process;
- ``collector``: collectors publishing to the bus (no store);
- ``processor``: processors reading the bus and writing the store;
- ``api``: the HTTP API over the store (and ingest onto the bus).

Memory: every ``memory.trim_interval_secs`` the process hands the free pages of its C
heap back to the OS (:func:`trim_heap`). Messages, envelopes and batches are freed
as fast as they are made, but glibc returns heap pages only from the top of the heap,
so long-lived state allocated among them pins the rest and RSS creeps up under
steady load while what is in use does not grow (the soak, bench/soak.py, showed it).

Everything that can fail at start (config, data directory lock, bus connection,
migrations, listen address) is done before any component starts, so a bad start
never leaves half a pipeline running. Shutdown order: stop intake (API,
collectors), let processors flush and commit, close the bus, close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import signal
import socket
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import uvicorn

from callscope.bus.base import Bus, Producer
from callscope.bus.factory import create_bus
from callscope.settings import Settings, parse_listen
from callscope.telemetry import Telemetry
from callscope.tokens import ensure_api_token
from schemas.topics import ALL_TOPICS

if TYPE_CHECKING:
    # The store (clickhouse-connect, and chDB once a client opens) is imported only by the
    # roles that open one: a collector process does without it (tests/test_runtime_imports.py).
    from callscope.store.client import Store

RoleName = Literal["all", "collector", "processor", "api"]
ROLE_NAMES: tuple[RoleName, ...] = ("all", "collector", "processor", "api")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the runtime owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class Started:
    """What a running pipeline exposes (for the CLI's banner and for tests)."""

    api_url: str | None = None
    metrics_url: str | None = None  # collector and processor roles: health and metrics only
    token_path: Path | None = None
    token_created: bool = False
    store_dsn: str | None = None
    bus: str | None = None
    components: list[str] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)


class Runtime:
    def __init__(self, settings: Settings, telemetry: Telemetry, role: RoleName = "all") -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.role = role
        self.log = telemetry.logger("runtime")
        self.bus: Bus | None = None
        self.store: Store | None = None
        self.started = Started()
        self.ready = asyncio.Event()
        self._api_socket: socket.socket | None = None
        self._producer: Producer | None = None

    @property
    def wants_store(self) -> bool:
        return self.role in ("all", "processor", "api")

    @property
    def wants_api(self) -> bool:
        """The whole HTTP API (query routes, ingest); other roles serve only health and metrics."""
        return self.role in ("all", "api")

    @property
    def wants_processors(self) -> bool:
        return self.role in ("all", "processor")

    @property
    def wants_collectors(self) -> bool:
        return self.role in ("all", "collector")

    def open_resources(self) -> None:
        """Synchronous start-up checks that must pass before anything runs.

        Raises :class:`schemas.errors.StartupError` (data directory held, port in use)
        or :class:`schemas.errors.ConfigError`.
        """
        # Every role serves HTTP on api.listen: the full API for all/api, and /healthz,
        # /readyz and /metrics alone for collector and processor processes (Prometheus
        # scrapes each process; Kubernetes probes each pod).
        host, port = parse_listen(self.settings.api.listen)
        self._api_socket = _bind_tcp(host, port)
        if self.wants_store:
            from callscope.store.client import Store
            from callscope.store.migrations import apply_migrations

            store_config = self.settings.resolved_store()
            self.store = Store.open(store_config)
            applied = apply_migrations(self.store, store_config)
            if applied:
                self.log.info("migrations applied", migrations=applied)
            self.started.store_dsn = store_config.dsn

    async def run(
        self, stop: asyncio.Event, on_started: Callable[[Started], Awaitable[None] | None] | None = None
    ) -> None:
        """Run until ``stop`` is set. :meth:`open_resources` must have succeeded."""
        settings = self.settings
        self.bus = create_bus(settings.bus, self.telemetry)
        self.started.bus = settings.bus.kind
        tasks: list[asyncio.Task[Any]] = []
        intake_tasks: list[asyncio.Task[Any]] = []
        server: _Server | None = None
        processor_stop = asyncio.Event()
        collector_stop = asyncio.Event()
        try:
            if not await _until_stopped(self.bus.start(), stop):
                return  # stopped while the bus was still unreachable
            await self.bus.ensure_topics(ALL_TOPICS)
            self._producer = self.bus.producer()

            if self.wants_processors:
                assert self.store is not None
                from processors.registry import build_processors

                for proc in build_processors(settings, self.bus, self.store, self.telemetry):
                    tasks.append(asyncio.create_task(proc.run(processor_stop), name=proc.name))
                    self.started.components.append(f"processor:{proc.name}")
                    await _wait_ready(proc.ready, tasks[-1])
                    # Lag of the topics the group reads: a topic it never commits would count as all lag.
                    topics = tuple(getattr(proc, "topics", ALL_TOPICS))
                    tasks.append(asyncio.create_task(self._report_lag(proc.group, topics, processor_stop), name="lag"))

            if settings.memory.trim_interval_secs > 0 and heap_trimmer() is not None:
                tasks.append(
                    asyncio.create_task(
                        self._trim_heap(settings.memory.trim_interval_secs, processor_stop), name="trim_heap"
                    )
                )

            if self.wants_collectors:
                from collectors.registry import build_collectors

                for coll in build_collectors(settings, self._producer, self.telemetry):
                    intake_tasks.append(asyncio.create_task(coll.run(collector_stop), name=coll.name))
                    await _wait_ready(coll.ready, intake_tasks[-1])
                    self.started.components.append(f"collector:{coll.name}")
                    self.started.endpoints[coll.name] = coll.describe()

            server = self._make_server()
            assert self._api_socket is not None
            tasks.append(asyncio.create_task(server.serve(sockets=[self._api_socket]), name="api"))
            while not server.started:
                if tasks[-1].done():
                    tasks[-1].result()
                await asyncio.sleep(0.01)
            if self.wants_api:
                self.started.components.append("api")

            self.ready.set()
            if on_started is not None:
                result = on_started(self.started)
                if asyncio.iscoroutine(result):
                    await result

            stop_task = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stop_task, *intake_tasks, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            for task in done:
                if task is not stop_task and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.log.info("stopping")
            # Intake first (collectors, API), then processors flush and commit what was read.
            collector_stop.set()
            if server is not None:
                server.should_exit = True
            await self._gather(intake_tasks)
            if self._producer is not None:
                await self._producer.flush()
            processor_stop.set()
            await self._gather(tasks)
            if self._producer is not None:
                await self._producer.close()
            if self.bus is not None:
                await self.bus.stop()
            self.close()
            self.log.info("stopped")

    async def _gather(self, tasks: list[asyncio.Task[Any]]) -> None:
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, res in zip(tasks, results, strict=True):
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                self.log.error("component failed", component=task.get_name(), error=repr(res))

    async def _report_lag(self, group: str, topics: tuple[str, ...], stop: asyncio.Event) -> None:
        """Measure a processor group's lag on ``topics`` now and then; the bus sets callscope_bus_lag_messages."""
        assert self.bus is not None
        interval = self.settings.processors.lag_report_secs
        while not stop.is_set():
            try:
                await self.bus.lag(group, topics)
            except Exception as exc:  # a failed measurement must not stop the pipeline
                self.telemetry.errors.labels("runtime", "lag").inc()
                self.log.warning("lag measurement failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _trim_heap(self, interval: float, stop: asyncio.Event) -> None:
        """Call :func:`trim_heap` every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if not stop.is_set():
                await asyncio.to_thread(trim_heap)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._api_socket is not None:
            self._api_socket.close()
            self._api_socket = None

    def _make_server(self) -> _Server:
        from api.app import create_app
        from api.context import ApiContext

        settings = self.settings
        tokens = list(settings.api.auth.tokens)
        if self.wants_api and settings.api.auth.enabled and not tokens:
            token, path, created = ensure_api_token(settings.data_dir)
            self.started.token_path, self.started.token_created = path, created
            from callscope.settings import TokenConfig

            tokens.append(TokenConfig(name="generated-admin", token=token, scope="admin"))
        checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        if self.bus is not None:
            checks["bus"] = self.bus.ping
        store = self.store
        if store is not None:

            async def store_ok() -> bool:
                return await asyncio.to_thread(store.ping)

            checks["store"] = store_ok
        ctx = ApiContext(
            settings=settings,
            telemetry=self.telemetry,
            producer=self._producer,
            ready_checks=checks,
            store=store,
            tokens=tuple(tokens),
        )
        app = create_app(ctx, query_routes=self.wants_api)
        assert self._api_socket is not None
        host, port = self._api_socket.getsockname()[:2]
        url = f"http://{_url_host(host)}:{port}"
        if self.wants_api:
            self.started.api_url = url
        else:
            self.started.metrics_url = url
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        return _Server(config)


async def _until_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first (then cancel it and return False)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True


async def _wait_ready(event: asyncio.Event, task: asyncio.Task[Any]) -> None:
    waiter = asyncio.create_task(event.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        task.result()  # re-raises the component's start-up error


@functools.cache
def heap_trimmer() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


def trim_heap() -> bool:
    """Give the free pages of the C heap (every malloc arena) back to the OS.

    True when some memory was released. It holds the allocator's locks while it walks the
    heap (milliseconds for a few hundred MiB), and ctypes drops the GIL meanwhile.
    """
    trimmer = heap_trimmer()
    return bool(trimmer()) if trimmer is not None else False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind_tcp(host: str, port: int) -> socket.socket:
    from schemas.errors import StartupError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"api.listen: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
