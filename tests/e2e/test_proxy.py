"""``goavail proxy`` as a real process: a 1 GiB transfer relayed byte for byte on both
data paths (splice and the portable stream loop), the status server on ``[Server]``,
flopsy's flags, and a clean stop on SIGTERM.

The transfer streams: the client sends 1,024 distinct 1 MiB chunks (each starts with its
index, so a lost, repeated or reordered chunk changes the hash) and never holds more
than one; the backend hashes what arrives. Every socket has a deadline, so a stall
fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

from goavail.proxy.relay import SPLICE_AVAILABLE
from tests.e2e.harness import GoavailProcess, goavail_argv, run_goavail

pytestmark = pytest.mark.e2e

CHUNK = 1 << 20
CHUNKS = 1024  # 1 GiB
DEADLINE = 300.0  # seconds any one socket operation may take (a loaded machine)
BACKEND = ("127.0.0.2", 7201)
PROXY = ("127.0.0.1", 7200)
STATUS = ("127.0.0.1", 7202)
MODES = ["splice", "stream"] if SPLICE_AVAILABLE else ["stream"]


class HashingBackend(threading.Thread):
    """Accepts connections; hashes each one's bytes until FIN and answers with the hex
    digest and the byte count (connections without data, the proxy's selection
    probes, are closed)."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="hashing-backend")
        self.sock = socket.create_server(BACKEND)
        self.sock.settimeout(DEADLINE)
        self.answered = 0

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(DEADLINE)
                digest, size = hashlib.sha256(), 0
                buffer = bytearray(CHUNK)
                while n := conn.recv_into(buffer):
                    digest.update(memoryview(buffer)[:n])
                    size += n
                if size:
                    conn.sendall(f"{digest.hexdigest()} {size}".encode())
                    self.answered += 1

    def close(self) -> None:
        """Stop listening: shutdown wakes the thread's accept (a bare close would not)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def send_gibibyte() -> tuple[str, str]:
    """Stream 1 GiB through the proxy; (our digest and size, the backend's answer)."""
    base = os.urandom(CHUNK)
    digest = hashlib.sha256()
    with socket.create_connection(PROXY, timeout=DEADLINE) as sock:
        for i in range(CHUNKS):
            chunk = i.to_bytes(8, "big") + base[8:]
            digest.update(chunk)
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)  # half-close: the answer comes back after it
        answer = b""
        while part := sock.recv(4096):
            answer += part
    return f"{digest.hexdigest()} {CHUNK * CHUNKS}", answer.decode()


def get(path: str) -> bytes:
    with urllib.request.urlopen(f"http://{STATUS[0]}:{STATUS[1]}{path}", timeout=30) as reply:
        body: bytes = reply.read()
        return body


@pytest.mark.parametrize("mode", MODES)
def test_a_gibibyte_is_relayed_byte_for_byte(tmp_path: Path, mode: str) -> None:
    backend = HashingBackend()
    backend.start()
    config = f"""
[Server]
listen = "{STATUS[0]}:{STATUS[1]}"

[Proxy]
listen = "{PROXY[0]}:{PROXY[1]}"
hosts = ["{BACKEND[0]}:{BACKEND[1]}"]
relay = "{mode}"
"""
    try:
        with GoavailProcess(tmp_path, config, command="proxy") as proxy:
            proxy.wait_for(r"selected as the primary")
            proxy.wait_for(r"proxy status on http://")
            sent, answered = send_gibibyte()
            assert answered == sent
            status = json.loads(get("/api/status"))
            [view] = status["proxies"]
            assert (view["relay"], view["phase"], view["primary"]) == (
                mode,
                "serving",
                f"{BACKEND[0]}:{BACKEND[1]}",
            )
            assert view["bytes"]["up"] == CHUNK * CHUNKS
            assert view["connections"]["total"] == 1
            metrics = get("/metrics").decode()
            key = f'goavail_proxy_bytes_total{{direction="up",listen="{PROXY[0]}:{PROXY[1]}"}}'
            [value] = [line.split()[-1] for line in metrics.splitlines() if line.startswith(key)]
            assert float(value) == CHUNK * CHUNKS
            assert b"healthy" in get("/_health")
            assert proxy.stop() == 0
    finally:
        backend.close()
        backend.join(timeout=10)


class FlagsOnly(GoavailProcess):
    """``goavail proxy ARGS`` without ``--config-file`` (flopsy's way)."""

    @property
    def argv(self) -> list[str]:
        return [*self.prefix, *goavail_argv(self.command, *self.args)]


def test_flopsys_flags_alone_run_a_proxy(tmp_path: Path) -> None:
    """No file: ``-b``, ``-H``, ``-B`` as flopsy's; a backend that does not answer is
    skipped; no status server unless asked for."""
    backend = HashingBackend()
    backend.start()
    args = ["-b", f"{PROXY[0]}:{PROXY[1]}", "-H", f"127.0.0.9:9,{BACKEND[0]}:{BACKEND[1]}",
            "-B", "1", "--relay", "stream"]  # fmt: skip
    try:
        with FlagsOnly(tmp_path, "", command="proxy", args=args) as proxy:
            proxy.wait_for(rf"{BACKEND[0]}:{BACKEND[1]} selected as the primary")
            assert proxy.matching(r"127\.0\.0\.9:9 discarded: cannot connect")
            with socket.create_connection(PROXY, timeout=DEADLINE) as sock:
                sock.sendall(b"x" * 1000)
                sock.shutdown(socket.SHUT_WR)
                answer = sock.recv(4096).decode()
            assert answer == f"{hashlib.sha256(b'x' * 1000).hexdigest()} 1000"
            assert not proxy.matching(r"proxy status on")
            assert proxy.stop() == 0
    finally:
        backend.close()
        backend.join(timeout=10)


def test_a_bad_flag_exits_2_with_every_problem(tmp_path: Path) -> None:
    done = run_goavail("proxy", "-p", "0", "-H", "nope", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Proxy.hosts[0] (from --hosts):" in done.stderr
    assert "Proxy.port (from --port):" in done.stderr
    assert "Traceback" not in done.stderr
