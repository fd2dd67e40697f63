"""The HEP collector's I/O shell: UDP and TCP in, envelopes on the bus.

- UDP: a plain socket read with ``recv_into`` in a dedicated thread (asyncio datagram
  endpoints lose most packets past ~40k pkt/s; see FACTS.md) into a bounded queue.
  A full queue drops the packet and counts it (``events_dropped{reason="queue_full"}``).
- TCP: an asyncio server on the same address (the OS-given UDP port is reused when the
  port is 0); streams are framed by the HEP3 length. A connection that sends bytes that
  are not HEP3 is counted, dead-lettered (its first bytes) and closed; one that ends inside
  a packet has that partial packet decoded, so it is dead-lettered too. TCP waits for room
  in the queue instead of dropping (the sender's window is the backpressure).
- One consumer coroutine drains the queue in batches: decode, auth key check (constant
  time), keep-alives skipped, :func:`collectors.hep.events.envelope_from_hep`, then
  ``send_many`` per topic. Whatever fails to decode goes to ``callscope.deadletter``.
- With an auth key (``collectors.hep.auth_key``) nothing unauthenticated reaches the bus: a
  packet with another key or none, and a packet or TCP stream too malformed to carry one, are
  counted (``events_dropped{reason="auth"}``; a malformed one also in ``errors{reason}``) and
  dropped, never dead-lettered. An authenticated packet whose payload does not decode is
  dead-lettered as without a key.

Delivery: at-most-once from the wire (UDP has no retry); once a packet is in the queue it
is published or counted, and ``run`` returns only after the queue is drained and the
producer flushed.

Bus outage budget: while the bus takes nothing (Kafka away), UDP intake goes on. Packets
wait first in the producer's buffer (``bus.kafka.buffer_max_messages``), then in this
collector's queue (``collectors.hep.queue_max_packets``), and up to one batch in hand
(``batch_max_messages``); that sum is how many packets an outage may hold without loss
(302,000 by default: five minutes at 1,000 packets/s). Past
it, UDP packets are dropped, counted (``callscope_events_dropped_total{component="hep",
reason="queue_full"}``) and logged every second while it lasts; TCP senders are slowed
by their window instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import socket
import threading
import time
import weakref
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from callscope.bus.base import Producer
from callscope.settings import Settings, parse_listen
from callscope.telemetry import Telemetry
from collectors.hep import speedups
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepError, decode, frame_stream
from collectors.hep.events import envelope_from_hep
from collectors.hep.recv import BatchReceiver, batch_receiver
from schemas.errors import DecodeError, StartupError
from schemas.topics import DEADLETTER, deadletter_record, topic_for

COMPONENT = "hep"
_DRAIN_CHUNK = 512  # packets processed between yields to the event loop
_DEADLETTER_HEAD = 256  # bytes of a bad TCP stream kept in its dead-letter record
_BIND_ATTEMPTS = 20
_TCP_READ = 65536
_TCP_GRACE_SECS = 0.5  # at stop, open TCP connections may finish for this long before they are cut
_DROP_REPORT_SECS = 1.0  # UDP drops on a full queue are counted and logged this often

_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def packets_counter(telemetry: Telemetry) -> Counter:
    """``callscope_hep_packets_total{transport, result}``, registered once per registry."""
    counter = _METRICS.get(telemetry.registry)
    if counter is None:
        counter = Counter(
            "callscope_hep_packets_total",
            "HEP packets the collector read, by transport and outcome.",
            ["transport", "result"],
            registry=telemetry.registry,
        )
        _METRICS[telemetry.registry] = counter
    return counter


class HepCollector:
    """HEP v1/v2/v3 over UDP and TCP (Kamailio, OpenSIPS, rtpengine, heplify, sngrep)."""

    name = COMPONENT

    def __init__(self, config: HepConfig, settings: Settings, producer: Producer, telemetry: Telemetry) -> None:
        self.config = config
        self.settings = settings
        self.producer = producer
        self.telemetry = telemetry
        self.ready = asyncio.Event()
        self.log = telemetry.logger(COMPONENT)
        self.address: tuple[str, int] | None = None  # the bound (host, port), once ready
        self.rcvbuf: int | None = None  # SO_RCVBUF the kernel granted
        self._auth = config.auth_key.encode() if config.auth_key is not None else None
        self._queue: deque[tuple[bytes, int, str]] = deque()  # (packet, received_us, transport)
        self._udp: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # set by the consumer when it took packets off the queue
        self._sleeping = False
        self._stopping = False
        self._closing_udp = False
        self._running = False
        self._queue_full_udp = 0  # counted in the receive thread, published by the consumer
        self._queue_full_published = 0
        self._packets = packets_counter(telemetry)
        self._received = {k: telemetry.events_received.labels(COMPONENT, k) for k in ("sip", "rtcp", "log")}
        # Messages decoded per kind since the counters last moved: they move once per drained chunk
        # (before the consumer awaits anything), not per packet (a Counter.inc takes a lock).
        self._received_counts: dict[str, int] = {}
        self._sent = {k: telemetry.events_sent.labels(COMPONENT, k) for k in ("sip", "rtcp", "log")}

    # ------------------------------------------------------------------ protocol
    def describe(self) -> str:
        transports = "+".join(t for t, on in (("udp", self.config.udp), ("tcp", self.config.tcp)) if on)
        if self.address is None:
            return f"{transports} {self.config.listen} (HEP v1/v2/v3, not bound)"
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"{transports} {shown}:{port} (HEP v1/v2/v3)"

    def healthcheck(self) -> bool:
        if not self._running or self._stopping:
            return False
        if self.config.udp and (self._thread is None or not self._thread.is_alive()):
            return False
        return not (self.config.tcp and (self._server is None or not self._server.is_serving()))

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        await self._bind()
        consumer = asyncio.create_task(self._consume(), name="hep-consumer")
        drops = asyncio.create_task(self._report_udp_drops(), name="hep-drops")
        self._running = True
        self.telemetry.component_up.labels(COMPONENT).set(1)
        self.log.info("listening", listen=self.describe(), rcvbuf=self.rcvbuf, decoder=speedups.PATH)
        self.ready.set()
        try:
            stop_wait = asyncio.create_task(stop.wait())
            await asyncio.wait([stop_wait, consumer], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if consumer.done():
                consumer.result()  # the consumer failed: re-raise
        finally:
            self.telemetry.component_up.labels(COMPONENT).set(0)
            await self._close_intake()
            self._stopping = True
            self._wake.set()
            self._room.set()
            if not consumer.done():
                await consumer
            drops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drops
            self._log_udp_drops(self._publish_udp_drops(), 0)
            await self.producer.flush()
            self._running = False
            self.log.info("stopped")

    # ------------------------------------------------------------------ binding
    async def _bind(self) -> None:
        host, port = parse_listen(self.config.listen)
        last: OSError | None = None
        for _ in range(_BIND_ATTEMPTS if port == 0 else 1):
            udp = self._bind_udp(host, port) if self.config.udp else None
            want = udp.getsockname()[1] if udp is not None else port
            try:
                if self.config.tcp:
                    self._server = await asyncio.start_server(
                        self._handle_tcp, host, want, reuse_address=True, backlog=1024, limit=_TCP_READ * 2
                    )
                    want = self._server.sockets[0].getsockname()[1]
            except OSError as exc:
                if udp is not None:
                    udp.close()
                last = exc
                if exc.errno == errno.EADDRINUSE and port == 0:
                    continue  # the OS gave UDP a port that TCP has in use: ask again
                break
            self._udp = udp
            self.address = (host, want)
            if udp is not None:
                self._thread = threading.Thread(target=self._recv_loop, args=(udp,), name="hep-udp", daemon=True)
                self._thread.start()
            return
        detail = last.strerror if last is not None and last.strerror else str(last)
        raise StartupError(f"collectors.hep.listen: cannot listen on {self.config.listen} (tcp): {detail}")

    def _bind_udp(self, host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            want = self.config.recv_buffer_bytes
            try:  # root (CAP_NET_ADMIN) may exceed net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), want)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
            self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if self.rcvbuf < want:
                self.log.warning(
                    "udp receive buffer smaller than asked (raise net.core.rmem_max)", asked=want, got=self.rcvbuf
                )
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise StartupError(
                f"collectors.hep.listen: cannot listen on {self.config.listen} (udp): {exc.strerror or exc}"
            ) from None
        return sock

    # ------------------------------------------------------------------ UDP thread
    def _recv_loop(self, sock: socket.socket) -> None:
        """Read datagrams until the socket is shut down; never touches the event loop but to wake it.

        In batches through ``recvmmsg`` where the platform has it (:mod:`.recv`: one GIL
        hand-off per batch, not per packet), else one ``recv_into`` per packet.
        """
        batch = self.config.recv_batch_packets
        receiver = batch_receiver(sock, batch=batch, slot_bytes=self.config.max_packet_bytes + 1) if batch > 1 else None
        if receiver is not None:
            self._recv_batches(receiver)
            return
        buf = bytearray(self.config.max_packet_bytes + 1)
        view = memoryview(buf)
        queue = self._queue
        limit = self.config.queue_max_packets
        recv_into = sock.recv_into
        now = time.time_ns
        wake = self._wake_threadsafe
        while True:
            try:
                n = recv_into(buf)
            except OSError:
                if self._closing_udp:
                    return
                continue
            if n == 0 and self._closing_udp:
                return
            if len(queue) >= limit:
                self._queue_full_udp += 1
            else:
                queue.append((bytes(view[:n]), now() // 1000, "udp"))
            if self._sleeping:
                wake()

    def _recv_batches(self, receiver: BatchReceiver) -> None:
        queue = self._queue
        limit = self.config.queue_max_packets
        now = time.time_ns
        wake = self._wake_threadsafe
        while True:
            try:
                packets = receiver.receive()
            except OSError:
                if self._closing_udp:
                    return
                continue
            if self._closing_udp and (not packets or not packets[-1]):  # shut down, or woken by the empty datagram
                packets = [pkt for pkt in packets if pkt]
                closing = True
            else:
                closing = False
            ts = now() // 1000
            room = limit - len(queue)
            if room < len(packets):
                self._queue_full_udp += len(packets) - max(room, 0)
                packets = packets[: max(room, 0)]
            queue.extend([(pkt, ts, "udp") for pkt in packets])
            if self._sleeping:
                wake()
            if closing:
                return

    def _wake_threadsafe(self) -> None:
        self._sleeping = False
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ TCP
    async def _handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        buf = bytearray()
        bad = False
        peer = writer.get_extra_info("peername")
        try:
            while True:
                chunk = await reader.read(_TCP_READ)
                if not chunk:
                    return
                buf += chunk
                while True:  # frame_stream hands out the good packets before it raises for what follows
                    try:
                        packets = frame_stream(buf)
                    except HepError as exc:
                        bad = True
                        await self._bad_stream(exc, bytes(buf[:_DEADLETTER_HEAD]), peer)
                        return
                    if not packets:
                        break
                    await self._enqueue_tcp(packets)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.telemetry.errors.labels(COMPONENT, "tcp_reset").inc()
        finally:
            self._conns.discard(task)
            if buf and not bad:
                self._partial_packet(bytes(buf))
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _partial_packet(self, data: bytes) -> None:
        """A connection ended (closed, reset, or cut at stop) inside a packet: decode what arrived of it.

        The decoder refuses it (a HEP3 header declaring more bytes than arrived: ``length`` or
        ``chunk``), so it is counted and dead-lettered like a malformed UDP packet. One packet per
        connection, queued past ``queue_max_packets`` if need be: it is never dropped.
        """
        self.telemetry.errors.labels(COMPONENT, "tcp_truncated").inc()
        self._queue.append((data, time.time_ns() // 1000, "tcp"))
        self._wake.set()

    async def _enqueue_tcp(self, packets: list[bytes]) -> None:
        limit = self.config.queue_max_packets
        received = time.time_ns() // 1000
        for pkt in packets:
            while len(self._queue) >= limit and not self._stopping:
                self._room.clear()  # backpressure: the peer's TCP window fills meanwhile
                await self._room.wait()
            if len(self._queue) >= limit:
                self._drop("tcp", "queue_full")
                continue
            self._queue.append((pkt, received, "tcp"))
        self._wake.set()

    async def _bad_stream(self, exc: HepError, head: bytes, peer: Any) -> None:
        self.log.warning("closing a TCP connection that is not HEP3", peer=str(peer), reason=exc.reason)
        self._packets.labels("tcp", "bad_stream").inc()
        self.telemetry.errors.labels(COMPONENT, f"tcp_{exc.reason}").inc()
        if self._auth is not None:  # unauthenticated bytes: counted, never on the bus
            self.telemetry.events_dropped.labels(COMPONENT, "auth").inc()
            return
        self.telemetry.deadletters.labels(COMPONENT, exc.reason).inc()
        record = deadletter_record(
            component=COMPONENT,
            reason=exc.reason,
            detail=f"tcp stream from {peer}: {exc}",
            raw=head,
            node=self.settings.node,
        )
        await self.producer.send(DEADLETTER, record, None)

    # ------------------------------------------------------------------ consumer
    async def _consume(self) -> None:
        queue = self._queue
        max_batch = self.config.batch_max_messages
        max_age = self.config.batch_max_age_ms / 1000
        out: dict[str, list[tuple[bytes | None, bytes]]] = {}
        pending = 0
        oldest = 0.0
        while True:
            if not queue:
                if pending:
                    pending = await self._publish(out)
                if self._stopping:
                    return
                self._wake.clear()
                self._sleeping = True
                if not queue:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), max_age)
                self._sleeping = False
                continue
            if not pending:
                oldest = time.monotonic()
            popleft = queue.popleft
            for _ in range(min(len(queue), _DRAIN_CHUNK, max_batch - pending)):
                raw, received_us, transport = popleft()
                pending += self._process(raw, received_us, transport, out)
            self._count_received()
            self._room.set()
            if pending >= max_batch or time.monotonic() - oldest >= max_age:
                pending = await self._publish(out)
            else:
                await asyncio.sleep(0)  # let the TCP readers, the API and the processors run

    def _process(
        self, raw: bytes, received_us: int, transport: str, out: dict[str, list[tuple[bytes | None, bytes]]]
    ) -> int:
        """Decode one packet into ``out``; return how many messages it added (0 or 1)."""
        try:
            pkt = decode(raw)
        except HepError as exc:
            if self._auth is not None:  # no key can be read from it: unauthenticated
                self.telemetry.errors.labels(COMPONENT, exc.reason).inc()
                self._drop(transport, "auth")
                return 0
            return self._deadletter(exc, raw, transport, out)
        if self._auth is not None and not hmac.compare_digest(pkt.auth_key or b"", self._auth):
            self._drop(transport, "auth")
            return 0
        if pkt.keepalive:
            self._packets.labels(transport, "keepalive").inc()
            return 0
        try:
            kind, key, envelope = envelope_from_hep(
                pkt,
                topology=self.settings.topology,
                hep=self.config,
                received_us=received_us,
                collector_node=self.settings.node,
            )
        except DecodeError as exc:
            return self._deadletter(exc, raw, transport, out)
        topic = topic_for(kind)
        batch = out.get(topic)
        if batch is None:
            batch = out[topic] = []
        # An exact-size copy: orjson's bytes keep its whole output buffer (8 KiB for a 1.4 KiB SIP
        # envelope), and up to batch_max_messages of them wait here for the bus. Copied now, the
        # buffer is freed at once and serves the next packet's encoding (20 MiB less RSS at a
        # 100,000-message backlog, tests/hep_collector/test_memory.py).
        batch.append((key.encode(), memoryview(envelope).tobytes()))
        counts = self._received_counts
        counts[kind] = counts.get(kind, 0) + 1
        return 1

    def _count_received(self) -> None:
        """Move the received counters by what :meth:`_process` decoded since the last call."""
        counts = self._received_counts
        if counts:
            for kind, n in counts.items():
                self._counter(self._received, self.telemetry.events_received, kind).inc(n)
            counts.clear()

    def _deadletter(
        self, exc: DecodeError, raw: bytes, transport: str, out: dict[str, list[tuple[bytes | None, bytes]]]
    ) -> int:
        reason = exc.reason
        self._packets.labels(transport, "invalid").inc()
        self.telemetry.errors.labels(COMPONENT, reason).inc()
        self.telemetry.deadletters.labels(COMPONENT, reason).inc()
        record = deadletter_record(
            component=COMPONENT, reason=reason, detail=str(exc), raw=raw, node=self.settings.node
        )
        out.setdefault(DEADLETTER, []).append((None, record))
        return 1

    def _drop(self, transport: str, reason: str) -> None:
        self._packets.labels(transport, reason).inc()
        self.telemetry.events_dropped.labels(COMPONENT, reason).inc()

    def _publish_udp_drops(self) -> int:
        """Count the datagrams the receive thread dropped on a full queue since the last call; returns them."""
        # Only the receive thread writes _queue_full_udp; only the event loop reads it and
        # writes _queue_full_published.
        n = self._queue_full_udp - self._queue_full_published
        if n:
            self._queue_full_published += n
            self._packets.labels("udp", "queue_full").inc(n)
            self.telemetry.events_dropped.labels(COMPONENT, "queue_full").inc(n)
        return n

    def _log_udp_drops(self, dropped: int, episode: int) -> None:
        if dropped:
            self.log.warning(
                "hep queue full, udp packets dropped",
                dropped=dropped,
                dropped_in_episode=episode + dropped,
                queue_max_packets=self.config.queue_max_packets,
                bus_buffered=getattr(self.producer, "buffered", None),
            )

    async def _report_udp_drops(self) -> None:
        """Count and log UDP drops once a second, also while the consumer waits for the bus.

        The consumer waits in ``send_many`` while the bus takes nothing (a Kafka outage past the
        producer's ``buffer_max_messages``); the queue then fills to ``queue_max_packets`` and the
        receive thread drops what arrives. Those drops show while they happen: one warning per
        second with the count, and one line when the drops stop.
        """
        episode = 0
        while True:
            await asyncio.sleep(_DROP_REPORT_SECS)
            n = self._publish_udp_drops()
            if n:
                self._log_udp_drops(n, episode)
                episode += n
            elif episode:
                self.log.warning("hep queue has room again", dropped_in_episode=episode)
                episode = 0

    async def _publish(self, out: dict[str, list[tuple[bytes | None, bytes]]]) -> int:
        for topic, items in list(out.items()):
            if not items:
                continue
            await self.producer.send_many(topic, items)
            kind = topic.rsplit(".", 1)[-1]
            if topic != DEADLETTER:
                self._counter(self._sent, self.telemetry.events_sent, kind).inc(len(items))
                self.telemetry.last_event_ts.labels(COMPONENT).set(time.time())
            self._packets.labels("all", "published" if topic != DEADLETTER else "deadlettered").inc(len(items))
        out.clear()
        return 0

    @staticmethod
    def _counter(cache: dict[str, Any], metric: Counter, kind: str) -> Any:
        child = cache.get(kind)
        if child is None:
            child = cache[kind] = metric.labels(COMPONENT, kind)
        return child

    # ------------------------------------------------------------------ shutdown
    async def _close_intake(self) -> None:
        """Stop reading: close the listeners, let open TCP connections finish what they sent, stop the thread."""
        if self._server is not None:
            self._server.close()
            if self._conns:  # connections that are closing get a moment to hand over what they sent
                await asyncio.wait(list(self._conns), timeout=_TCP_GRACE_SECS)
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                await asyncio.gather(*self._conns, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        udp = self._udp
        if udp is not None:
            self._closing_udp = True
            _shutdown_udp(udp, self.address)
            thread = self._thread
            if thread is not None:
                await asyncio.to_thread(thread.join, 5)
            self._udp = None
            udp.close()


def _shutdown_udp(sock: socket.socket, address: tuple[str, int] | None) -> None:
    """Wake a thread blocked in ``recv_into``: shutdown() (Linux wakes readers) and an empty datagram."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    if address is None:
        return
    host, port = address
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as waker:
        waker.sendto(b"", (host, port))
