"""The failover proxy's benchmark (issue 17): throughput and connections per second on
loopback, straight to the backend, through ``goavail proxy`` (splice and stream relays),
through a bench-only thread-per-direction splice relay (the design not taken), and through
``socat``, all in one run; then the failover time from the primary's death to the first
connection relayed to the next backend.

    python -m bench.proxy --mib 2048 --connections 2000 --failover-trials 5

Root: it re-executes itself under ``unshare -n`` (a private network namespace with only
``lo``); every address is 127.0.0.0/8. The backend ("sink") is a thread of this process
that reads until FIN and answers with the byte count; the client is this process's main
thread. Each throughput case sends ``--mib`` MiB once per repeat (the median is kept);
each connection case runs ``--connections`` sequential connect/1-byte/answer/close
cycles. The machine's load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bench.run import ensure_private_netns
from goavail.proc import die_with_parent

CHUNK = 1 << 20
SINK = ("127.0.0.2", 7301)
SECOND = ("127.0.0.3", 7301)
PORTS = {"goavail-splice": 7310, "goavail-stream": 7311, "threads-splice": 7312, "socat": 7313}
DEADLINE = 600.0


class Sink(threading.Thread):
    """Reads each connection until FIN, answers ``<address> <bytes>``, closes."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.sock = socket.create_server(address, backlog=1024)

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = bytearray(CHUNK)
        size = 0
        with conn, suppress(OSError):
            while n := conn.recv_into(buffer):
                size += n
            if size:
                conn.sendall(f"{self.address[0]} {size}".encode())

    def close(self) -> None:
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def transfer(address: tuple[str, int], size: int) -> float:
    """Seconds to send ``size`` bytes to ``address`` and get the sink's answer."""
    block = os.urandom(CHUNK)
    start = time.perf_counter()
    with socket.create_connection(address, timeout=DEADLINE) as sock:
        sent = 0
        while sent < size:
            sock.sendall(block)
            sent += len(block)
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(100).decode().split()
    elapsed = time.perf_counter() - start
    if int(answer[1]) != sent:
        raise SystemExit(f"bench.proxy: {address} relayed {answer[1]} of {sent} bytes")
    return elapsed


def connections(address: tuple[str, int], n: int) -> float:
    """Sequential connect / 1 byte / FIN / answer / close cycles per second."""
    start = time.perf_counter()
    for _ in range(n):
        with socket.create_connection(address, timeout=DEADLINE) as sock:
            sock.sendall(b"x")
            sock.shutdown(socket.SHUT_WR)
            if not sock.recv(100):
                raise SystemExit(f"bench.proxy: {address} gave no answer")
    return n / (time.perf_counter() - start)


def wait_port(address: tuple[str, int], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(address, timeout=1):
            return
        time.sleep(0.05)
    raise SystemExit(f"bench.proxy: nothing listens on {address}")


@contextmanager
def process(argv: list[str], ready: tuple[str, int] | None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent()
    )
    try:
        if ready is not None:
            wait_port(ready)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def goavail_proxy(port: int, hosts: str, relay: str) -> list[str]:
    return [sys.executable, "-m", "goavail", "proxy", "-b", f"127.0.0.1:{port}", "-H", hosts,
            "--relay", relay, "-B", "0.25"]  # fmt: skip


def thread_relay(listen: tuple[str, int], backend: tuple[str, int]) -> Callable[[], None]:
    """The design not taken: blocking ``splice`` in one thread per direction (bench only).
    Returns a function that stops it."""
    server = socket.create_server(listen, backlog=1024)

    def pump(src: socket.socket, dst: socket.socket) -> None:
        r, w = os.pipe()
        try:
            while n := os.splice(src.fileno(), w, CHUNK):
                while n:
                    n -= os.splice(r, dst.fileno(), n)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            os.close(r)
            os.close(w)

    def pair(client: socket.socket) -> None:
        with client, socket.create_connection(backend) as upstream:
            t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            t.start()
            pump(client, upstream)
            t.join()

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=pair, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    def stop() -> None:
        with suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()

    return stop


def measure(cases: dict[str, tuple[str, int]], mib: int, n: int, repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, address in cases.items():
        transfer(address, 16 * CHUNK)  # warm-up
        times = [transfer(address, mib * CHUNK) for _ in range(repeats)]
        rate = connections(address, n)
        gbps = mib * CHUNK / statistics.median(times) / 1e9
        results[name] = {"gb_per_s": round(gbps, 3), "connections_per_s": round(rate, 1)}
        print(f"{name:16} {gbps:7.3f} GB/s {rate:9.1f} connections/s", flush=True)
    return results


def failover(trials: int) -> dict[str, Any]:
    """Seconds from the primary's death (its listener and connections closed) to the first
    connection through the proxy answered by the second backend."""
    samples = []
    second = Sink(SECOND)
    second.start()
    try:
        for _ in range(trials):
            first = Sink(SINK)
            first.start()
            hosts = f"{SINK[0]}:{SINK[1]},{SECOND[0]}:{SECOND[1]}"
            with process(goavail_proxy(7320, hosts, "auto"), ("127.0.0.1", 7320)):
                address = ("127.0.0.1", 7320)
                while _answer(address) != SINK[0]:
                    time.sleep(0.01)
                start = time.perf_counter()
                first.close()  # the primary dies
                while _answer(address) != SECOND[0]:
                    pass
                samples.append(time.perf_counter() - start)
            first.join(5)
    finally:
        second.close()
    ms = sorted(s * 1000 for s in samples)
    print(f"failover: median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms", flush=True)
    return {"trials": trials, "median_ms": round(statistics.median(ms), 2),
            "max_ms": round(ms[-1], 2), "samples_ms": [round(s, 2) for s in ms]}  # fmt: skip


def _answer(address: tuple[str, int]) -> str:
    """The backend that answered one connection, or "" (refused, reset, closed)."""
    try:
        with socket.create_connection(address, timeout=DEADLINE) as sock:
            sock.sendall(b"x")
            sock.shutdown(socket.SHUT_WR)
            return sock.recv(100).decode().split(" ")[0]
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__)
    parser.add_argument("--mib", type=int, default=2048, help="MiB per transfer")
    parser.add_argument("--repeats", type=int, default=3, help="transfers per case")
    parser.add_argument("--connections", type=int, default=2000, help="connections per case")
    parser.add_argument("--failover-trials", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench/results/proxy.json"))
    args = parser.parse_args(argv)
    ensure_private_netns(argv, module="bench.proxy")
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    sink = Sink(SINK)
    sink.start()
    hosts = f"{SINK[0]}:{SINK[1]}"
    cases = {"direct": SINK}
    cases.update({name: ("127.0.0.1", port) for name, port in PORTS.items()})
    socat = shutil.which("socat")
    if socat is None:
        del cases["socat"]
        print("socat not installed (Debian package socat): left out", flush=True)
    stop_threads = thread_relay(cases["threads-splice"], SINK)
    splice_argv = goavail_proxy(PORTS["goavail-splice"], hosts, "splice")
    stream_argv = goavail_proxy(PORTS["goavail-stream"], hosts, "stream")
    socat_argv = [socat or "socat", f"TCP-LISTEN:{PORTS['socat']},bind=127.0.0.1,fork,reuseaddr,"
                  "backlog=1024", f"TCP:{SINK[0]}:{SINK[1]}"]  # fmt: skip
    try:
        with (
            process(splice_argv, cases["goavail-splice"]),
            process(stream_argv, cases["goavail-stream"]),
            process(socat_argv if socat else ["sleep", "3600"], cases.get("socat")),
        ):
            results = measure(cases, args.mib, args.connections, args.repeats)
    finally:
        stop_threads()
        sink.close()
    result: dict[str, Any] = {"throughput": results, "mib": args.mib, "repeats": args.repeats,
                              "connections": args.connections}  # fmt: skip
    if args.failover_trials:
        result["failover"] = failover(args.failover_trials)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f}", flush=True)
    result.update(load_before=load_before, load_after=load_after, cpus=os.cpu_count())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
