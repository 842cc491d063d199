"""Private network namespace and nftables helpers for network tests.

The whole pytest process moves into a fresh network namespace at start-up
(``unshare(CLONE_NEWNET)``, see ``tests/conftest.py``): it holds only a loopback
interface and has no link to the machine's own namespace, so no packet a test
sends can leave the machine. Everything the tests start (goavail, the
Cloudflare stand-in, nftables rules) lives in it and vanishes with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterable, Iterator

CLONE_NEWNET = 0x40000000
_ENV_FLAG = "GOAVAIL_TEST_PRIVATE_NETNS"


def enter_private_netns() -> bool:
    """Move this process into a new network namespace with loopback up.

    Must run before any thread is started (a namespace change applies to the
    calling thread and what it starts afterwards). Returns False, doing
    nothing, when not root or when ``unshare`` is refused.
    """
    if os.geteuid() != 0:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return False
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True)
    names = [line.split(":")[1].strip() for line in links.stdout.splitlines()]
    if names != ["lo"]:
        raise RuntimeError(f"private network namespace is not empty: {names}")
    os.environ[_ENV_FLAG] = "1"
    return True


def in_private_netns() -> bool:
    """True when this process runs in the private namespace made by the test session."""
    return os.environ.get(_ENV_FLAG) == "1"


DOCUMENTATION_V6 = ipaddress.IPv6Network("2001:db8::/32")
"""IPv6 documentation prefix (RFC 3849): the only IPv6 addresses tests add to ``lo``."""


@contextlib.contextmanager
def loopback_addresses(*addrs: str) -> Iterator[list[str]]:
    """Put IPv6 addresses from 2001:db8::/32 on the private namespace's ``lo`` for a block.

    Only ``::1`` is local by default (while all of 127.0.0.0/8 is), so IPv6
    targets need this. The addresses are added as /128 without duplicate
    address detection (usable at once) and removed afterwards. Yields them in
    canonical form.

    Raises:
        RuntimeError: outside the private test namespace.
        ValueError: an address outside 2001:db8::/32.
    """
    if not in_private_netns():
        raise RuntimeError("refusing to add addresses outside the private test namespace")
    canonical = [str(ipaddress.IPv6Address(a)) for a in addrs]
    for addr in canonical:
        if ipaddress.IPv6Address(addr) not in DOCUMENTATION_V6:
            raise ValueError(f"{addr} is not in {DOCUMENTATION_V6}")
    added: list[str] = []
    try:
        for addr in canonical:
            subprocess.run(
                ["ip", "-6", "addr", "add", f"{addr}/128", "dev", "lo", "nodad"],
                check=True,
                capture_output=True,
                text=True,
            )
            added.append(addr)
        _wait_usable(canonical)
        yield canonical
    finally:
        for addr in added:
            subprocess.run(
                ["ip", "-6", "addr", "del", f"{addr}/128", "dev", "lo"],
                check=False,
                capture_output=True,
            )


def _wait_usable(addrs: list[str], timeout: float = 10.0) -> None:
    """Wait until the kernel has finished adding ``addrs``: each has its ``local`` route.

    ``ip addr add`` returns before the kernel completes a new IPv6 address (the
    local route goes in from a work queue, even with ``nodad``); until then a
    packet to it is dropped, which on a busy machine made the first probe of a
    fresh address time out.
    """
    deadline = time.monotonic() + timeout
    while True:
        shown = subprocess.run(
            ["ip", "-6", "route", "show", "table", "local", "type", "local"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        # lines look like "local 2001:db8:6::1 dev lo proto kernel metric 0 pref medium"
        local = {line.split()[1] for line in shown.splitlines() if line.startswith("local ")}
        tentative = subprocess.run(
            ["ip", "-6", "-o", "addr", "show", "dev", "lo", "tentative"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        missing = (set(addrs) - local) | {a for a in addrs if f" {a}/" in tentative}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"IPv6 addresses not usable after {timeout}s: {sorted(missing)}")
        time.sleep(0.01)


_table_ids = itertools.count(1)


class Nft:
    """An nftables table of a test's own, dropping packets to chosen loopback targets.

    * ``blackhole(addr)``: a dead host. Packets to ``addr`` are sent but dropped
      on arrival (input hook), so probes get no answer and time out.
    * ``drop(addr)``: a local firewall. Packets to ``addr`` are dropped on the way
      out (output hook); the sender's ``sendto``/``connect`` sees EPERM at once.
    * ``loss(addrs, pct)``: ``pct`` % of the packets arriving for ``addrs`` vanish
      at random (``numgen random mod 100 < pct``).
    * ``block_tcp(port, addrs)``: a service down on a live host: TCP to ``port`` at
      ``addrs`` is dropped on arrival (connects time out), ICMP still answers.
    * ``block_source(addr)``: packets arriving *from* ``addr`` are dropped (its requests
      vanish; what it answers from other addresses still goes out).
    * ``tally(key, addr, match)`` counts the packets arriving for ``addr`` that
      ``match`` (an nft expression); ``tallies()`` reads every count. Tallies live in a
      chain of their own that ``clear()`` leaves alone, and see packets before any
      drop.
    * ``clear()`` restores everything; ``close()`` deletes the table. Use as a
      context manager.
    """

    ECHO_REQUEST = "icmp type echo-request"
    """``tally`` match: ICMP echo requests (one per ping probe)."""

    @staticmethod
    def syn(port: int) -> str:
        """``tally`` match: TCP connection attempts to ``port`` (one per tcp probe)."""
        return f"tcp dport {port} tcp flags & (syn | ack) == syn"

    def __init__(self) -> None:
        self.table = f"goavail_test_{os.getpid()}_{next(_table_ids)}"
        self._nft(f"add table inet {self.table}")
        self._nft(
            f"add chain inet {self.table} out "
            "{ type filter hook output priority 0; policy accept; }"
        )
        self._nft(
            f"add chain inet {self.table} in "
            "{ type filter hook input priority 0; policy accept; }"
        )
        self._nft(
            f"add chain inet {self.table} tally "
            "{ type filter hook input priority -10; policy accept; }"
        )

    @staticmethod
    def _nft(command: str) -> None:
        if not in_private_netns():
            raise RuntimeError("refusing to change nftables outside the private test namespace")
        subprocess.run(["nft", command], check=True, capture_output=True, text=True)

    @staticmethod
    def _family(addr: str) -> str:
        return "ip6" if ":" in addr else "ip"

    def blackhole(self, *addrs: str) -> None:
        """Drop every packet arriving for ``addrs`` (host down: probes time out)."""
        for addr in addrs:
            self._nft(f"add rule inet {self.table} in {self._family(addr)} daddr {addr} drop")

    def drop(self, *addrs: str) -> None:
        """Drop every packet sent to ``addrs`` on the way out (sends fail with EPERM)."""
        for addr in addrs:
            self._nft(f"add rule inet {self.table} out {self._family(addr)} daddr {addr} drop")

    def loss(self, addrs: Iterable[str], pct: int) -> None:
        """Drop ``pct`` percent of packets arriving for ``addrs``, at random."""
        for addr in addrs:
            self._nft(
                f"add rule inet {self.table} in {self._family(addr)} daddr {addr} "
                f"numgen random mod 100 < {pct} drop"
            )

    def block_tcp(self, port: int, *addrs: str) -> None:
        """Drop TCP segments arriving for ``port`` at ``addrs`` (the service is down)."""
        for addr in addrs:
            self._nft(
                f"add rule inet {self.table} in {self._family(addr)} daddr {addr} "
                f"tcp dport {port} drop"
            )

    def block_source(self, *addrs: str) -> None:
        """Drop every packet arriving from ``addrs`` (a host whose own requests are lost,
        e.g. a DNS secondary's transfers, while it still answers queries)."""
        for addr in addrs:
            self._nft(f"add rule inet {self.table} in {self._family(addr)} saddr {addr} drop")

    def tally(self, key: str, addr: str, match: str) -> None:
        """Count the packets arriving for ``addr`` that ``match``, under ``key``."""
        self._nft(
            f"add rule inet {self.table} tally {self._family(addr)} daddr {addr} {match} "
            f'counter comment "{key}"'
        )

    def tallies(self) -> dict[str, int]:
        """Every ``tally``'s packet count so far, by key."""
        if not in_private_netns():
            raise RuntimeError("refusing to read nftables outside the private test namespace")
        listed = subprocess.run(
            ["nft", "-j", "list", "chain", "inet", self.table, "tally"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        counts: dict[str, int] = {}
        for item in json.loads(listed)["nftables"]:
            rule = item.get("rule")
            if rule is None or "comment" not in rule:
                continue
            for expr in rule["expr"]:
                if "counter" in expr:
                    counts[rule["comment"]] = int(expr["counter"]["packets"])
        return counts

    def clear(self) -> None:
        """Remove every rule (all targets answer again)."""
        self._nft(f"flush chain inet {self.table} out")
        self._nft(f"flush chain inet {self.table} in")

    def close(self) -> None:
        """Delete the table."""
        self._nft(f"delete table inet {self.table}")

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
