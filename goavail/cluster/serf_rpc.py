"""Asyncio client for the RPC protocol of the Serf agent (msgpack over TCP).

Only the handful of commands goavail needs: ``handshake``, ``auth``, ``members``,
``event``, ``stream``/``stop`` and ``leave``. Protocol source: Serf's
``website/source/docs/agent/rpc.html.markdown`` and the reference client
``client/rpc_client.go`` + ``client/const.go`` (Serf 0.8).

Wire format: every request is a msgpack map ``{"Command": str, "Seq": int}``,
followed by a msgpack body for commands that take one. Every response is a map
``{"Seq": int, "Error": str}``, followed by a body for the commands that return
one (``members``). A ``stream`` gets one plain response and then, for as long as
it runs, one header + body record per event, all tagged with the stream's Seq.
Serf encodes strings as msgpack str and byte slices (event payloads, member
addresses) as msgpack bin.

One reader task demultiplexes everything arriving on the socket by Seq; calls
wait on futures, streams on queues. The auth key is sent once and never kept or
logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import msgpack

from goavail.errors import GoavailError

log = logging.getLogger(__name__)

IPC_VERSION: Final = 1
"""The only version of the RPC protocol Serf speaks (``handshake`` body)."""

DEFAULT_EVENT_TYPES: Final = "user,member-join,member-leave,member-failed,member-update,member-reap"
"""Stream filter for every user event and every membership change."""

LEAVE_TIMEOUT: Final = 15.0
"""Seconds to wait for the answer to ``leave`` (the agent answers after broadcasting it)."""

# Responses carrying these errors never have a body, whatever the command
# (the agent refuses the command before running it).
_NO_BODY_ERRORS: Final = frozenset({"Authentication required", "Handshake required"})
_READ_CHUNK: Final = 65536


class SerfError(GoavailError):
    """Base class of the errors raised by :class:`SerfRPC`."""


class SerfRPCError(SerfError):
    """The agent answered a command with an error (``Error`` in the response header).

    ``command`` is the RPC command, ``error`` the agent's text, for example
    ``"Invalid authentication token"`` or ``"Authentication required"``.
    """

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"Serf RPC {command!r} failed: {error}")
        self.command = command
        self.error = error


class SerfConnectionError(SerfError):
    """The RPC connection could not be opened, was lost, or an answer did not come in time."""


@dataclass(frozen=True, slots=True)
class Member:
    """One cluster member as the agent sees it.

    ``addr`` is the IP address as text (IPv4-mapped addresses shown as IPv4),
    ``port`` the gossip port, ``status`` one of ``"alive"``, ``"leaving"``,
    ``"left"``, ``"failed"`` (or ``"none"``).
    """

    name: str
    addr: str
    port: int
    tags: dict[str, str] = field(default_factory=dict, hash=False)
    status: str = "alive"


@dataclass(frozen=True, slots=True)
class UserEvent:
    """A user event from a stream.

    ``payload`` is the exact bytes sent, ``ltime`` the event's Lamport time.
    """

    name: str
    payload: bytes
    ltime: int
    coalesce: bool


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A membership change from a stream.

    ``event`` is ``"member-join"``, ``"member-leave"``, ``"member-failed"``,
    ``"member-update"`` or ``"member-reap"``; ``members`` are the members concerned.
    """

    event: str
    members: list[Member] = field(hash=False)


StreamEvent = UserEvent | MemberEvent
"""What an :class:`EventStream` yields."""


@dataclass(slots=True)
class _Call:
    command: str
    future: asyncio.Future[tuple[str, Any]]
    expects_body: bool


class _End:
    """Queue sentinel: the stream is over (``error`` None: ended on purpose)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


_MISSING: Final = object()


def _is_header(obj: object) -> bool:
    return isinstance(obj, dict) and set(obj) == {"Seq", "Error"}


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):  # a str-typed field; undecodable bytes kept by surrogateescape
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list | tuple):
        return bytes(value)
    if value is None:
        return b""
    raise TypeError(f"expected bytes, got {type(value).__name__}")


def _ip_text(value: object) -> str:
    """IP address text from Serf's ``net.IP`` (4 or 16 raw bytes)."""
    raw = _as_bytes(value)
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return raw.hex()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _member(raw: Mapping[str, Any]) -> Member:
    tags = raw.get("Tags") or {}
    return Member(
        name=str(raw["Name"]),
        addr=_ip_text(raw.get("Addr")),
        port=int(raw.get("Port") or 0),
        tags={str(k): str(v) for k, v in tags.items()},
        status=str(raw.get("Status") or ""),
    )


def _stream_event(raw: Mapping[str, Any]) -> StreamEvent | None:
    kind = raw.get("Event")
    if kind == "user":
        return UserEvent(
            name=str(raw.get("Name") or ""),
            payload=_as_bytes(raw.get("Payload")),
            ltime=int(raw.get("LTime") or 0),
            coalesce=bool(raw.get("Coalesce")),
        )
    if isinstance(kind, str) and kind.startswith("member-"):
        return MemberEvent(event=kind, members=[_member(m) for m in raw.get("Members") or ()])
    return None  # queries and future event kinds: not used by goavail


class EventStream(AsyncIterator[StreamEvent]):
    """An event subscription made by :meth:`SerfRPC.stream`; iterate it with ``async for``.

    Iteration ends (``StopAsyncIteration``) after :meth:`aclose` or
    :meth:`SerfRPC.close`; it raises :class:`SerfConnectionError` when the
    connection is lost and :class:`SerfRPCError` when more than ``max_queued``
    events were left unread (the stream is then stopped: resubscribe and
    re-read ``members``). :meth:`aclose` sends ``stop`` to the agent. Also an
    async context manager that closes it.
    """

    def __init__(self, client: SerfRPC, seq: int, event_types: str, max_queued: int) -> None:
        self._client = client
        self._seq = seq
        self._event_types = event_types
        self._max_queued = max_queued
        self._queue: asyncio.Queue[StreamEvent | _End] = asyncio.Queue()
        self._ended = False  # no more events will be queued
        self._finished = False  # the consumer has seen the end

    @property
    def seq(self) -> int:
        """The Seq of the ``stream`` request that tags every record of this stream."""
        return self._seq

    @property
    def event_types(self) -> str:
        """The event filter this stream was opened with."""
        return self._event_types

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self._finished = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop the stream (``stop`` command, best effort) and end the iteration."""
        if self._ended:
            return
        self._end(None)
        await self._client._stop_stream(self._seq)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _deliver(self, event: StreamEvent) -> None:
        if self._ended:
            return
        if self._queue.qsize() >= self._max_queued:
            log.error(
                "Serf event stream %d overflowed (%d events unread); stopping it",
                self._seq,
                self._max_queued,
            )
            while not self._queue.empty():
                self._queue.get_nowait()
            self._end(SerfRPCError("stream", f"more than {self._max_queued} events left unread"))
            self._client._stop_stream_soon(self._seq)
            return
        self._queue.put_nowait(event)

    def _end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_End(error))


class SerfRPC:
    """One RPC connection to a Serf agent. Make it with :meth:`connect`.

    Calls may run concurrently (responses are matched by Seq). Every call
    raises :class:`SerfRPCError` when the agent answers with an error and
    :class:`SerfConnectionError` when the connection is closed or lost, or
    no answer arrives within ``timeout`` seconds (the connection stays open
    then; a late answer is discarded).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        host: str,
        port: int,
        timeout: float,
    ) -> None:
        """Wrap an open connection; use :meth:`connect` instead."""
        self._reader = reader
        self._writer = writer
        self._host = host
        self._port = port
        self._timeout = timeout
        self._seq = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._streams: dict[int, EventStream] = {}
        self._stopped: set[int] = set()  # Seqs of streams whose late records are dropped
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._close_reason: SerfConnectionError | None = None
        self._closed_event = asyncio.Event()
        self._read_task = asyncio.create_task(
            self._read_loop(), name=f"serf-rpc-reader-{host}:{port}"
        )

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        auth_key: str | None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - also the bound of every later call
    ) -> SerfRPC:
        """Connect to the agent's RPC address, then ``handshake`` (version 1) and ``auth``.

        ``auth_key`` is the agent's ``rpc_auth`` (None or "" when it has none).
        ``timeout`` (seconds) bounds the connection set-up and, later, each call.
        Raises :class:`SerfConnectionError` when the agent cannot be reached in
        time and :class:`SerfRPCError` when it refuses the handshake or the key
        (``"Invalid authentication token"``).
        """
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise SerfConnectionError(
                f"no connection to the Serf RPC at {host}:{port} within {timeout} s"
            ) from None
        except OSError as exc:
            raise SerfConnectionError(
                f"cannot connect to the Serf RPC at {host}:{port}: {exc}"
            ) from exc
        client = cls(reader, writer, host=host, port=port, timeout=timeout)
        try:
            await client._call("handshake", {"Version": IPC_VERSION})
            if auth_key:
                await client._call("auth", {"AuthKey": auth_key})
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def address(self) -> tuple[str, int]:
        """The agent's RPC address (host, port)."""
        return (self._host, self._port)

    @property
    def closed(self) -> bool:
        """True once the connection is closed (by :meth:`close`, or lost)."""
        return self._closed

    @property
    def close_reason(self) -> SerfConnectionError | None:
        """Why the connection ended when it was lost; None while open or after :meth:`close`."""
        return self._close_reason

    async def wait_closed(self) -> None:
        """Return once the connection is closed or lost (see :attr:`close_reason`)."""
        await self._closed_event.wait()

    async def members(self) -> list[Member]:
        """Every member the agent knows, itself included, whatever its status."""
        body = await self._call("members", None, expects_body=True)
        try:
            return [_member(m) for m in body.get("Members") or ()]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SerfRPCError("members", f"malformed response: {exc!r}") from exc

    async def user_event(self, name: str, payload: bytes, *, coalesce: bool = False) -> None:
        """Fire a user event to the whole cluster.

        ``payload`` is opaque bytes. Serf 0.8 refuses events whose name and
        payload together exceed 512 bytes (:class:`SerfRPCError`). With
        ``coalesce`` the agents may merge events of the same name.
        """
        await self._call("event", {"Name": name, "Payload": bytes(payload), "Coalesce": coalesce})

    async def stream(
        self, event_types: str = DEFAULT_EVENT_TYPES, *, max_queued: int = 10_000
    ) -> EventStream:
        """Subscribe to events; returns once the agent has accepted the subscription.

        ``event_types`` uses Serf's event-handler filter syntax, comma separated:
        ``"user"``, ``"user:NAME"``, ``"member-join"``, ``"member-leave"``,
        ``"member-failed"``, ``"member-update"``, ``"member-reap"`` or ``"*"``.
        Raises :class:`SerfRPCError` for an invalid filter.
        """
        seq = next(self._seq)
        stream = EventStream(self, seq, event_types, max_queued)
        self._streams[seq] = stream
        try:
            await self._call("stream", {"Type": event_types}, seq=seq)
        except BaseException:
            self._streams.pop(seq, None)
            self._stopped.add(seq)
            raise
        return stream

    async def leave(self) -> None:
        """Make the agent leave the cluster gracefully and shut down.

        Peers then see this node as ``left`` instead of ``failed``. The agent
        answers once the leave is broadcast (waits up to ``LEAVE_TIMEOUT``
        seconds or the client timeout, whichever is longer) and closes the
        connection right after.
        """
        await self._call("leave", None, answer_within=max(LEAVE_TIMEOUT, self._timeout))

    async def close(self) -> None:
        """Close the connection; pending calls fail and streams end. Idempotent."""
        self._shutdown(None)
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
        for task in list(self._background):
            task.cancel()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> SerfRPC:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- internals -------------------------------------------------------------

    async def _call(
        self,
        command: str,
        body: Mapping[str, Any] | None,
        *,
        expects_body: bool = False,
        seq: int | None = None,
        answer_within: float | None = None,
    ) -> Any:
        """Send one request and wait for its response; returns the body (or None)."""
        if self._closed:
            raise self._close_reason or SerfConnectionError("Serf RPC client is closed")
        if seq is None:
            seq = next(self._seq)
        limit = self._timeout if answer_within is None else answer_within
        future: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[seq] = _Call(command, future, expects_body)
        data = msgpack.packb({"Command": command, "Seq": seq}, use_bin_type=True)
        if body is not None:
            data += msgpack.packb(body, use_bin_type=True)
        try:
            async with asyncio.timeout(limit):
                self._writer.write(data)
                await self._writer.drain()
                error, response = await future
        except TimeoutError:
            raise SerfConnectionError(
                f"Serf RPC {command!r} got no answer within {limit} s"
            ) from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: transport closing
            if self._close_reason is not None:
                raise self._close_reason from exc
            raise SerfConnectionError(f"Serf RPC {command!r}: connection lost: {exc}") from exc
        finally:
            self._calls.pop(seq, None)
        if error:
            raise SerfRPCError(command, error)
        return response

    async def _stop_stream(self, seq: int) -> None:
        self._streams.pop(seq, None)
        self._stopped.add(seq)
        if self._closed:
            return
        try:
            await self._call("stop", {"Stop": seq})
        except SerfError as exc:
            log.debug("stopping Serf event stream %d failed: %s", seq, exc)

    def _stop_stream_soon(self, seq: int) -> None:
        task = asyncio.get_running_loop().create_task(self._stop_stream(seq))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _read_loop(self) -> None:
        unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")
        awaiting: Callable[[object], None] | None = None
        reason: SerfConnectionError
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    reason = SerfConnectionError(
                        f"Serf RPC connection to {self._host}:{self._port} closed by the agent"
                    )
                    break
                unpacker.feed(data)
                for obj in unpacker:
                    awaiting = self._dispatch(obj, awaiting)
        except OSError as exc:
            reason = SerfConnectionError(
                f"Serf RPC connection to {self._host}:{self._port} lost: {exc}"
            )
        except (ValueError, msgpack.UnpackException) as exc:
            reason = SerfConnectionError(f"Serf RPC protocol error: {exc!r}")
        if awaiting is not None:
            awaiting(_MISSING)
        self._shutdown(reason)

    def _dispatch(
        self, obj: object, awaiting: Callable[[object], None] | None
    ) -> Callable[[object], None] | None:
        """Route one decoded msgpack object; returns who receives the next one as a body."""
        if awaiting is not None:
            if not _is_header(obj):
                awaiting(obj)
                return None
            awaiting(_MISSING)  # a header where a body was due: the body never came
        if not isinstance(obj, dict) or not _is_header(obj):
            log.debug("ignoring a Serf RPC object that answers no pending request")
            return None
        seq = obj["Seq"]
        error = str(obj["Error"] or "")
        call = self._calls.pop(seq, None)
        if call is not None:
            if call.expects_body and error not in _NO_BODY_ERRORS:
                return _body_receiver(call, error)
            if not call.future.done():
                call.future.set_result((error, None))
            return None
        stream = self._streams.get(seq)
        if stream is not None:
            return _record_receiver(stream)
        if seq in self._stopped:
            return _discard
        log.debug("ignoring a Serf RPC response for unknown Seq %s", seq)
        return None

    def _shutdown(self, reason: SerfConnectionError | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        if reason is not None:
            log.debug("%s", reason)
        failure = reason or SerfConnectionError("Serf RPC client closed")
        for call in self._calls.values():
            if not call.future.done():
                call.future.set_exception(failure)
        self._calls.clear()
        for stream in self._streams.values():
            stream._end(reason)
        self._streams.clear()
        self._writer.close()
        self._closed_event.set()


def _body_receiver(call: _Call, error: str) -> Callable[[object], None]:
    def receive(body: object) -> None:
        if call.future.done():
            return
        if body is _MISSING:
            call.future.set_exception(
                SerfConnectionError(f"Serf RPC {call.command!r}: response body missing")
            )
        else:
            call.future.set_result((error, body))

    return receive


def _record_receiver(stream: EventStream) -> Callable[[object], None]:
    def receive(body: object) -> None:
        if body is _MISSING or not isinstance(body, dict):
            log.warning("Serf event stream %d: record without a body", stream.seq)
            return
        try:
            event = _stream_event(body)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("Serf event stream %d: malformed record skipped: %r", stream.seq, exc)
            return
        if event is None:
            log.debug("Serf event stream %d: %r event skipped", stream.seq, body.get("Event"))
            return
        stream._deliver(event)

    return receive


def _discard(body: object) -> None:
    """Body of a record for a stream that was stopped: dropped."""
