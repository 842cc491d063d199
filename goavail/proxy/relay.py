"""The data path: bytes between a client and a backend, both directions, on the event loop.

Two implementations of one contract (:func:`relay`):

* **splice** (Linux): each direction moves data socket → pipe → socket with
  ``splice(2)`` (``os.splice``, Python ≥ 3.10), so the payload never enters Python
  (flopsy's default). Every fd is non-blocking (``SPLICE_F_NONBLOCK`` and
  ``O_NONBLOCK`` pipes) and an ``EAGAIN`` parks the direction on
  ``loop.add_reader``/``add_writer`` of the one fd it waits for: the event loop is
  never blocked, and one thread serves every connection. (A thread per connection
  pair with blocking splices was the other choice; BENCHMARKS.md, "Failover proxy
  (issue 17)", has the measurement that decided it.)
* **stream** (everywhere): ``loop.sock_recv_into`` into one buffer of
  :data:`CHUNK` bytes per direction, ``loop.sock_sendall`` of what was read.

Both give:

* **half-close**: when one side ends its direction (FIN), the other side gets a FIN
  (``shutdown(SHUT_WR)``) once every byte before it was delivered, and the other
  direction keeps flowing until it ends too; then both sockets are closed;
* **backpressure**: a direction reads only what it can hold (one pipe, or one
  buffer) and reads again only after that was written, so a slow reader slows its
  writer down through TCP's own flow control; nothing is buffered without bound;
* **errors**: a reset or a broken pipe in either direction ends both; cancelling
  :func:`relay` (a drain deadline, shutdown) ends both at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Callable

CHUNK = 256 * 1024
"""Bytes one direction moves per system call at most (the stream path's buffer size)."""

PIPE_SIZE = 1024 * 1024
"""Bytes of the splice path's pipe per direction, asked for with ``F_SETPIPE_SZ`` (1 MiB
is Linux's default ``/proc/sys/fs/pipe-max-size``; the kernel's 64 KiB stays when the
request is refused)."""

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)

SPLICE_AVAILABLE = hasattr(os, "splice")
"""Whether this platform (Linux, Python ≥ 3.10) has ``os.splice``."""

_ENDED = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT, errno.ECONNABORTED)


class _Ended(Exception):
    """A direction ended by a reset or a broken pipe: the connection is over."""


Counter = Callable[[int], None]
"""Called with the number of bytes just written to the far side of a direction."""


def resolve_mode(mode: str) -> str:
    """``"auto"`` → ``"splice"`` where available, else ``"stream"``.

    Raises:
        ValueError: ``"splice"`` asked for where ``os.splice`` does not exist, or an
            unknown mode.
    """
    if mode == "auto":
        return "splice" if SPLICE_AVAILABLE else "stream"
    if mode == "splice" and not SPLICE_AVAILABLE:
        raise ValueError("relay = 'splice' needs Linux and Python >= 3.10 (os.splice)")
    if mode not in ("splice", "stream"):
        raise ValueError(f"unknown relay mode {mode!r}")
    return mode


async def _wait(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    """Until ``fd`` is readable (``write=False``) or writable."""
    waiter: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def _pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd


async def _splice_direction(
    loop: asyncio.AbstractEventLoop, src: socket.socket, dst: socket.socket, count: Counter
) -> None:
    """Move ``src``'s bytes to ``dst`` through a pipe until ``src``'s FIN, then FIN ``dst``.

    ``pending`` is what sits in the pipe: reading stops while the pipe holds data that
    ``dst`` does not take (backpressure), and the FIN goes out only once it is empty.
    """
    src_fd, dst_fd = src.fileno(), dst.fileno()
    read_fd, write_fd = _pipe()
    try:
        pending = 0
        eof = False
        while True:
            if not eof:
                try:
                    n = os.splice(src_fd, write_fd, CHUNK, flags=_SPLICE_FLAGS)
                except BlockingIOError:  # src has nothing, or the pipe is full
                    if not pending:
                        await _wait(loop, src_fd, write=False)
                        continue
                else:
                    if n == 0:
                        eof = True
                    pending += n
            if pending:
                try:
                    n = os.splice(read_fd, dst_fd, pending, flags=_SPLICE_FLAGS)
                except BlockingIOError:
                    await _wait(loop, dst_fd, write=True)
                    continue
                pending -= n
                count(n)
            elif eof:
                break
    finally:
        os.close(read_fd)
        os.close(write_fd)
    _shutdown_write(dst)


async def _stream_direction(
    loop: asyncio.AbstractEventLoop, src: socket.socket, dst: socket.socket, count: Counter
) -> None:
    """Move ``src``'s bytes to ``dst`` through one buffer until ``src``'s FIN, then FIN
    ``dst``."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        n = await loop.sock_recv_into(src, buffer)
        if n == 0:
            break
        await loop.sock_sendall(dst, view[:n])
        count(n)
    _shutdown_write(dst)


def _shutdown_write(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer may be gone already
        sock.shutdown(socket.SHUT_WR)


async def relay(
    client: socket.socket,
    backend: socket.socket,
    *,
    mode: str,
    upstream: Counter,
    downstream: Counter,
) -> None:
    """Relay between ``client`` and ``backend`` until both directions ended, then close
    both sockets.

    Args:
        client, backend: connected, non-blocking TCP sockets (closed on return).
        mode: ``"splice"`` or ``"stream"`` (see :func:`resolve_mode`).
        upstream: counts bytes delivered to the backend.
        downstream: counts bytes delivered to the client.

    A reset or broken pipe ends both directions (not an error: the relay returns);
    other ``OSError``s propagate (in an ``ExceptionGroup``) after both sockets are closed.
    """
    loop = asyncio.get_running_loop()
    direction = _splice_direction if mode == "splice" else _stream_direction

    async def guarded(src: socket.socket, dst: socket.socket, count: Counter) -> None:
        try:
            await direction(loop, src, dst, count)
        except OSError as exc:
            if exc.errno in _ENDED:
                raise _Ended from None  # ends the other direction too
            raise

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(guarded(client, backend, upstream))
            group.create_task(guarded(backend, client, downstream))
    except* _Ended:
        pass
    finally:
        client.close()
        backend.close()


__all__ = ["CHUNK", "PIPE_SIZE", "SPLICE_AVAILABLE", "relay", "resolve_mode"]
