"""A real Knot DNS for the tests, and a DNS-over-TCP proxy that fails requests on purpose.

* :class:`KnotServer` writes a ``knot.conf`` into a temporary directory (listen
  on 127.0.0.1 and a free port, one TSIG key, one zone whose update ACL names
  that key, every file in the directory, no systemd), starts ``knotd -c`` as a
  subprocess, waits until it answers, and stops it and removes the directory
  at the end. Debian package ``knot``.
* A **secondary**: ``KnotServer(zone, primary=server, via="127.0.0.2")`` transfers the
  zone from ``server`` (AXFR/IXFR, on its NOTIFY), its own queries sent from ``via``,
  so that ``Nft.block_source(via)`` stops its transfers and nothing else; the primary
  must be made with ``secondaries=[port]`` (that port, from :func:`free_port`, is then
  the secondary's ``port``) to notify it and allow the transfer.
* A **zone file server**: ``KnotServer(zone, zonefile=path)`` serves the file at ``path``
  (written by goavail's zonefile provider), re-read on :meth:`KnotServer.reload_argv`.
* :class:`DnsFaultProxy` listens on 127.0.0.1 and relays DNS over TCP
  (RFC 1035 §4.2.2 framing) to the server; ``fail_next(n)`` makes it answer
  the next ``n`` requests itself with a TSIG-signed SERVFAIL (what Knot sends
  when it cannot do the work), or close the connection without an answer.

Test code checks the server with real DNS queries (:meth:`KnotServer.addresses`).
Everything binds 127.0.0.1 inside the test session's private network namespace.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import shutil
import socket
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from goavail.proc import die_with_parent
from tests.netns import in_private_netns

HOST = "127.0.0.1"
KEY_NAME = "goavail-key."

Fault = Literal["servfail", "close"]


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 a moment ago (Knot binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
                return port


class KnotServer:
    """``knotd`` serving ``zone`` from a fresh temporary directory.

    Args:
        zone: the zone's name, e.g. ``"example.test"``.
        records: extra zone-file lines (relative names), e.g. ``["www IN TXT x"]``.
        algorithm: the TSIG key's algorithm.
        soa: the SOA's serial, refresh, retry, expire and minimum fields (a
            secondary's refresh and retry timers come from here).
        secondaries: the ports of secondaries (on 127.0.0.1) to notify; transfers are
            allowed from 127.0.0.0/8.
        primary: make this server a secondary of ``primary`` (no zone file of its own).
        via: a secondary's source address for its queries to the primary.
        port: the port to listen on (0: a free one).
        zonefile: serve this existing zone file instead of a fresh one (no updates).

    Attributes:
        port: the port it listens on (TCP and UDP), after :meth:`start`.
        secret: the TSIG key's base64 secret (random per server).
        key: the key as a dnspython :class:`dns.tsig.Key`.

    Raises (from :meth:`start`):
        RuntimeError: outside the private test namespace, or knotd did not
            answer within 15 s (the message holds its log).
    """

    def __init__(
        self,
        zone: str = "example.test",
        *,
        records: Iterable[str] = (),
        algorithm: str = "hmac-sha256",
        soa: str = "1 3600 600 604800 60",
        secondaries: Iterable[int] = (),
        primary: KnotServer | None = None,
        via: str | None = None,
        port: int = 0,
        zonefile: Path | None = None,
    ) -> None:
        self.zone = zone.rstrip(".")
        self.soa = soa
        self.secondaries = list(secondaries)
        self.primary = primary
        self.via = via
        self.zonefile = zonefile
        self._port = port
        self.records = list(records)
        self.algorithm = algorithm
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.key = dns.tsig.Key(KEY_NAME, self.secret, algorithm)
        self.port = 0
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _zone_config(self, directory: Path) -> str:
        if self.primary is not None:
            via = f"\n    via: {self.via}" if self.via else ""
            return f"""\
remote:
  - id: primary
    address: {HOST}@{self.primary.port}{via}
acl:
  - id: from-primary
    address: 127.0.0.0/8
    action: notify
zone:
  - domain: {self.zone}.
    file: zone.db
    master: primary
    acl: from-primary
"""
        if self.zonefile is not None:
            return f"""\
zone:
  - domain: {self.zone}.
    file: "{self.zonefile}"
    journal-content: none
    zonefile-load: whole
"""
        remotes = "".join(
            f"  - id: secondary{i}\n    address: {HOST}@{port}\n"
            for i, port in enumerate(self.secondaries)
        )
        notify = ""
        if self.secondaries:
            ids = ", ".join(f"secondary{i}" for i in range(len(self.secondaries)))
            notify = f"    notify: [{ids}]\n"
        return (
            (f"remote:\n{remotes}" if remotes else "")
            + f"""\
acl:
  - id: goavail-update
    key: {KEY_NAME}
    action: update
  - id: transfer
    address: 127.0.0.0/8
    action: transfer
zone:
  - domain: {self.zone}.
    file: zone.db
    acl: [goavail-update, transfer]
"""
            + notify
        )

    def _config(self, directory: Path) -> str:
        return f"""\
server:
    rundir: "{directory}"
    listen: {HOST}@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{directory / "db"}"
key:
  - id: {KEY_NAME}
    algorithm: {self.algorithm}
    secret: {self.secret}
template:
  - id: default
    storage: "{directory}"
    zonefile-sync: -1
    journal-content: all
""" + self._zone_config(directory)

    def start(self) -> Self:
        if not in_private_netns():
            raise RuntimeError("refusing to start knotd outside the private test namespace")
        knotd = shutil.which("knotd") or "/usr/sbin/knotd"
        self.dir = Path(tempfile.mkdtemp(prefix="goavail-knot-"))
        (self.dir / "db").mkdir()
        if self.primary is None and self.zonefile is None:
            (self.dir / "zone.db").write_text(
                f"$ORIGIN {self.zone}.\n$TTL 300\n"
                f"@ IN SOA ns1 hostmaster {self.soa}\n"
                "@ IN NS ns1\nns1 IN A 127.0.0.1\n" + "".join(f"{line}\n" for line in self.records)
            )
        self.port = self._port or free_port()
        conf = self.dir / "knot.conf"
        conf.write_text(self._config(self.dir))
        with (self.dir / "knotd.log").open("wb") as log:
            self._proc = subprocess.Popen(
                [knotd, "-c", str(conf)],
                preexec_fn=die_with_parent(),  # no orphan if pytest is killed
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while True:
            try:
                answer = dns.query.tcp(
                    dns.message.make_query(self.zone + ".", "SOA"), HOST, 1.0, self.port
                )
                if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                    return self
            except (OSError, EOFError, dns.exception.DNSException):
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                text = self.log()
                self.stop()
                raise RuntimeError(f"knotd did not start:\n{text}")
            time.sleep(0.05)

    def reload_argv(self) -> list[str]:
        """The command that makes knotd re-read the zone (a zonefile ``reload_command``)."""
        assert self.dir is not None
        knotc = shutil.which("knotc") or "/usr/sbin/knotc"
        return [knotc, "-c", str(self.dir / "knot.conf"), "zone-reload", self.zone + "."]

    @property
    def address(self) -> str:
        """``"127.0.0.1:port"``: how goavail's ``verify.servers`` names this server."""
        return f"{HOST}:{self.port}"

    def log(self) -> str:
        """knotd's output so far."""
        if self.dir is None:
            return ""
        path = self.dir / "knotd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop knotd and remove its directory (idempotent)."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- real DNS from the test's side ------------------------------------------------------

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """A query over TCP straight to knotd (TSIG-signed at a primary taking updates:
        a secondary or a zone file server knows the key but uses it in no ACL, and Knot
        answers BADKEY then)."""
        query = dns.message.make_query(name.rstrip(".") + ".", rdtype)
        if self.primary is None and self.zonefile is None:
            query.use_tsig(self.key)
        return dns.query.tcp(query, HOST, 5.0, self.port)

    def rdatas(self, name: str, rdtype: str) -> set[str]:
        """The rdata texts of (``name``, ``rdtype``) as knotd answers them."""
        answer = self.query(name, rdtype)
        wanted = dns.rdatatype.from_text(rdtype)
        return {
            rd.to_text()
            for rrset in answer.answer
            if rrset.rdtype == wanted and rrset.name.to_text().rstrip(".") == name.rstrip(".")
            for rd in rrset
        }

    def addresses(self, name: str) -> set[str]:
        """A and AAAA addresses of ``name`` as knotd answers them."""
        return self.rdatas(name, "A") | self.rdatas(name, "AAAA")

    def ttl(self, name: str, rdtype: str) -> int | None:
        """The TTL of (``name``, ``rdtype``), or None when there is no such RRset."""
        for rrset in self.query(name, rdtype).answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                ttl: int = rrset.ttl
                return ttl
        return None

    def update(self, *lines: tuple[str, str, int, str, str]) -> None:
        """Send one signed UPDATE: each line is (action "add"/"delete", name, ttl, type, rdata).

        Raises:
            AssertionError: knotd did not answer NOERROR.
        """
        update = dns.update.UpdateMessage(self.zone + ".", keyring=self.key)
        for action, name, ttl, rdtype, rdata in lines:
            if action == "add":
                update.add(name.rstrip(".") + ".", ttl, rdtype, rdata)
            else:
                update.delete(name.rstrip(".") + ".", rdtype, rdata)
        answer = dns.query.tcp(update, HOST, 5.0, self.port)
        assert answer.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(answer.rcode())


class DnsFaultProxy:
    """DNS over TCP from 127.0.0.1:``port`` to 127.0.0.1:``upstream_port``, with faults.

    Args:
        upstream_port: the real server's port.
        key: the TSIG key, to sign the SERVFAIL answers it makes up (a signed
            request gets a signed answer, or the client rejects it).

    Use as a context manager. ``requests`` counts the requests received.
    """

    def __init__(self, upstream_port: int, key: dns.tsig.Key | None) -> None:
        self.upstream_port = upstream_port
        self.key = key
        self.requests = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.server_address[1]
        return port

    def fail_next(self, n: int, fault: Fault = "servfail") -> None:
        """Answer the next ``n`` requests with ``fault`` instead of relaying them."""
        with self._lock:
            self._faults.extend([fault] * n)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            return self._faults.pop(0) if self._faults else None

    def start(self) -> Self:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                client.settimeout(10)
                with contextlib.suppress(OSError, EOFError):
                    while True:
                        wire = _read_frame(client)
                        fault = proxy._next_fault()
                        if fault == "close":
                            return
                        if fault == "servfail":
                            client.sendall(_frame(proxy._servfail(wire)))
                            continue
                        with socket.create_connection((HOST, proxy.upstream_port), 10) as up:
                            up.sendall(_frame(wire))
                            client.sendall(_frame(_read_frame(up)))

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((HOST, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dns-proxy", daemon=True
        )
        self._thread.start()
        return self

    def _servfail(self, wire: bytes) -> bytes:
        keyring = {self.key.name: self.key} if self.key is not None else None
        request = dns.message.from_wire(wire, keyring=keyring)
        response = dns.message.make_response(request)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire()

    def stop(self) -> None:
        """Stop listening and join the thread (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
    return _recv_exactly(sock, length)


def _frame(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire
