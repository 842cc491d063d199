"""A three-agent test network for the cluster end-to-end tests, and a Serf RPC helper.

Layout (everything below lives inside the private network namespace ``P`` of the
test session, see ``tests/conftest.py``; nothing is ever linked to the machine's
own namespace)::

    P:  gabr0 (bridge) 192.0.2.254/24      lo: 198.51.100.1/32, .2/32 (the targets)
          |             |            |
        gav<pid>a     gav<pid>b    gav<pid>c     (veth host ends, enslaved to gabr0)
          |             |            |
    goavail-e2e-<pid>-a  -b          -c          (named namespaces from ``ip netns add``)
        eth0 192.0.2.1  192.0.2.2   192.0.2.3    default route via 192.0.2.254

The targets are addresses of ``P`` itself (on ``lo``: these kernels have no
dummy links), so packets for them are delivered
locally there (no forwarding needed); the Cloudflare stand-in listens on
192.0.2.254. Outages and partitions are nftables rules in an agent's own
namespace (:class:`Firewall`), so they only change what that agent sees; a
partition is such rules in the namespaces on both sides.

Named namespaces are bind mounts under ``/run/netns`` (shared with the machine):
:meth:`Topology.close` kills every process left in them (orphaned serf children
included), deletes them and the links, and :func:`remove_stale` deletes those a
crashed earlier run left behind (only when that run's pid is gone).

Run as a module, this file is the helper the replay test starts inside an agent's
namespace (``ip netns exec NS python -m tests.e2e.cluster_net ...``)::

    capture --rpc HOST:PORT --auth-file serf.json --event NAME [--timeout S]
            [--node N] [--min-version V]
        print the base64 payload of the next notice (user event NAME) seen by that Serf
        agent that opens with the crypto key in $GOAVAIL_E2E_KEY and matches the filters
    send --rpc HOST:PORT --auth-file serf.json --event NAME --payload BASE64
        fire user event NAME with that payload (coalescing off)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.netns import in_private_netns

PREFIX = "goavail-e2e-"
"""Prefix of every named namespace this module creates (then ``<pid>-<node>``)."""

BRIDGE = "gabr0"
GATEWAY = "192.0.2.254"
"""Address of the bridge in ``P``: default route of the agents, the stand-in listens here."""

ALL_NODES = ("a", "b", "c", "d", "e", "f", "g", "h")
"""Every node name a topology may hold, in order."""
ADDRESSES = {node: f"192.0.2.{i}" for i, node in enumerate(ALL_NODES, start=1)}
"""Bridge address of each node's namespace."""
NODES = ALL_NODES[:3]
"""The default three agents."""
TARGETS = ("198.51.100.1", "198.51.100.2")
SERF_PORT = 7946
KEY_ENV = "GOAVAIL_E2E_KEY"
"""Environment variable giving the helper the cluster's crypto_key (to pick a verdict)."""
TABLE = "goavail_e2e"
"""Name of the nftables table each agent namespace gets (one per namespace)."""


class NetError(RuntimeError):
    """A command that builds or changes the test network failed."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output.

    Raises:
        NetError: ``check`` and the command failed; the message holds its stderr.
    """
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise NetError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespace_names() -> list[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_stale() -> list[str]:
    """Delete namespaces with :data:`PREFIX` left by an earlier run whose pid is gone.

    Another test session running right now (its pid alive) is left alone.
    Returns the names deleted.
    """
    removed = []
    for name in namespace_names():
        if not name.startswith(PREFIX):
            continue
        pid_text = name.removeprefix(PREFIX).split("-")[0]
        if pid_text.isdigit() and _pid_alive(int(pid_text)):
            continue
        kill_namespace_processes(name)
        run("ip", "netns", "delete", name, check=False)
        removed.append(name)
    return removed


def namespace_pids(name: str) -> list[int]:
    """Process ids of every process whose network namespace is ``name`` (``ip netns pids``)."""
    out = run("ip", "netns", "pids", name, check=False).stdout
    return [int(word) for word in out.split() if word.isdigit()]


def kill_namespace_processes(name: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process in namespace ``name`` and wait until none is left.

    Returns the pids that were killed (orphans included: the caller may assert on them).
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := namespace_pids(name):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
        if time.monotonic() >= deadline:
            raise NetError(f"processes {pids} in namespace {name} survive SIGKILL")
        time.sleep(0.05)
    return killed


def process_argv(pid: int) -> list[str]:
    """The command line of process ``pid`` (empty when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [word.decode(errors="replace") for word in raw.split(b"\0") if word]


def parent_pid(pid: int) -> int | None:
    """The parent pid of process ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


@dataclass(frozen=True, slots=True)
class SerfChild:
    """A ``serf agent`` process found in an agent's namespace.

    Attributes:
        pid: its process id.
        ppid: its parent's process id (goavail's, unless orphaned).
        rpc: its RPC address ``host:port`` (reachable inside its namespace only).
        config_file: the JSON file holding its ``rpc_auth`` key.
    """

    pid: int
    ppid: int | None
    rpc: str
    config_file: Path


class Firewall:
    """An nftables table of the test's own inside one agent namespace.

    Every rule drops packets *arriving* in the namespace (input hook), so nothing
    fails at the sender: a dropped packet just never gets an answer, as with a
    dead host or a cut link. (Dropping on the way out would make ``sendto``
    fail with EPERM, which Serf's failure detector treats as "could not probe",
    never as "peer dead".)

    * :meth:`blackhole` ``(target, ...)``: the targets' answers never reach this
      agent; its probes time out, the other agents still see the targets up.
      :meth:`heal` lifts every blackhole (and nothing else).
    * :meth:`ignore` ``(addr, ...)``: nothing from those agent addresses reaches
      this agent (one half of a partition, see :meth:`Topology.partition`).
    * :meth:`clear`: no more rules.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._nft(f"add table inet {TABLE}")
        for chain in ("targets", "peers"):
            self._nft(
                f"add chain inet {TABLE} {chain} "
                "{ type filter hook input priority 0; policy accept; }"
            )

    def _nft(self, command: str) -> None:
        if not in_private_netns():  # pragma: no cover - the e2e marker skips first
            raise NetError("refusing to change nftables outside the private test namespace")
        run("ip", "netns", "exec", self.namespace, "nft", command)

    def blackhole(self, *targets: str) -> None:
        """Drop what ``targets`` send to this agent (they look down to it only)."""
        for target in targets:
            self._nft(f"add rule inet {TABLE} targets ip saddr {target} drop")

    def heal(self) -> None:
        """Lift every :meth:`blackhole` (a partition stays)."""
        self._nft(f"flush chain inet {TABLE} targets")

    def ignore(self, *peers: str) -> None:
        """Drop every packet arriving from the agent addresses ``peers``."""
        for peer in peers:
            self._nft(f"add rule inet {TABLE} peers ip saddr {peer} drop")

    def clear(self) -> None:
        """Remove every rule of the table."""
        self._nft(f"flush chain inet {TABLE} targets")
        self._nft(f"flush chain inet {TABLE} peers")

    def rules(self) -> str:
        """The table as ``nft list`` shows it (for failure messages)."""
        cmd = ("ip", "netns", "exec", self.namespace, "nft", "list", "table", "inet", TABLE)
        return run(*cmd).stdout


@dataclass(slots=True)
class AgentNamespace:
    """One agent's network namespace.

    Attributes:
        node: the agent's node name (``a``, ``b`` or ``c``).
        name: the namespace name (``goavail-e2e-<pid>-<node>``).
        address: its address on the bridge.
        veth: the host (``P``) end of its veth pair.
        firewall: its nftables table (set by :meth:`Topology.build`).
    """

    node: str
    name: str
    address: str
    veth: str
    firewall: Firewall | None = None

    @property
    def exec_prefix(self) -> list[str]:
        """argv words that run a command inside this namespace."""
        return ["ip", "netns", "exec", self.name]

    @property
    def fw(self) -> Firewall:
        """The namespace's firewall (after :meth:`Topology.build`)."""
        assert self.firewall is not None, "topology not built"
        return self.firewall

    def pids(self) -> list[int]:
        """Every process running in this namespace."""
        return namespace_pids(self.name)

    def serf_children(self) -> list[SerfChild]:
        """The ``serf agent`` processes running in this namespace."""
        found = []
        for pid in self.pids():
            argv = process_argv(pid)
            if len(argv) < 2 or Path(argv[0]).name != "serf" or argv[1] != "agent":
                continue
            opts = dict(a.removeprefix("-").split("=", 1) for a in argv[2:] if "=" in a)
            found.append(
                SerfChild(pid, parent_pid(pid), opts["rpc-addr"], Path(opts["config-file"]))
            )
        return found


class Topology:
    """The bridge, the targets and three agent namespaces (see the module docstring).

    Use as a context manager: :meth:`build` on entry, :meth:`close` on exit (also
    when building failed half-way).
    """

    def __init__(self, nodes: Sequence[str] = NODES) -> None:
        pid = os.getpid()
        self.namespaces = {
            node: AgentNamespace(node, f"{PREFIX}{pid}-{node}", ADDRESSES[node], f"gav{pid}{node}")
            for node in nodes
        }

    def __getitem__(self, node: str) -> AgentNamespace:
        return self.namespaces[node]

    def __iter__(self) -> Iterator[AgentNamespace]:
        return iter(self.namespaces.values())

    def build(self) -> None:
        """Create the bridge, the targets and the namespaces.

        Raises:
            NetError: a command failed (or this is not the private test namespace).
        """
        if not in_private_netns():
            raise NetError("refusing to build the test network outside the private namespace")
        remove_stale()
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        for target in TARGETS:
            run("ip", "addr", "add", f"{target}/32", "dev", "lo")
        for ns in self:
            run("ip", "netns", "add", ns.name)
            inside = ns.exec_prefix
            run(*inside, "ip", "link", "set", "lo", "up")
            run(
                "ip",
                "link",
                "add",
                ns.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name,
            )
            run("ip", "link", "set", ns.veth, "master", BRIDGE, "up")
            run(*inside, "ip", "addr", "add", f"{ns.address}/24", "dev", "eth0")
            run(*inside, "ip", "link", "set", "eth0", "up")
            run(*inside, "ip", "route", "add", "default", "via", GATEWAY)
            ns.firewall = Firewall(ns.name)

    def partition(self, node: str) -> None:
        """Cut ``node`` off from the other agents, both ways (the stand-in and the
        targets stay reachable): it ignores them and they ignore it."""
        isolated = self[node]
        others = [ns for ns in self if ns.node != node]
        isolated.fw.ignore(*(ns.address for ns in others))
        for ns in others:
            ns.fw.ignore(isolated.address)

    def close(self) -> None:
        """Kill every process in the namespaces, delete them, the veths, targets and bridge.

        Best effort throughout: every step runs even when an earlier one failed;
        the first error is raised at the end.
        """
        errors: list[BaseException] = []
        for ns in self:
            try:
                kill_namespace_processes(ns.name)
            except NetError as exc:
                errors.append(exc)
            if ns.name in namespace_names():
                run("ip", "netns", "delete", ns.name, check=False)
            run("ip", "link", "delete", ns.veth, check=False)  # gone with the namespace
            ns.firewall = None
        for target in TARGETS:
            run("ip", "addr", "delete", f"{target}/32", "dev", "lo", check=False)
        run("ip", "link", "delete", BRIDGE, check=False)
        leftover = [ns.name for ns in self if ns.name in namespace_names()]
        if leftover:
            errors.append(NetError(f"namespaces not deleted: {leftover}"))
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- the Serf RPC helper run inside an agent namespace -----------------------------------------


def helper_argv(ns: AgentNamespace, *args: str) -> list[str]:
    """argv running this module's helper (``capture``/``send``) inside ``ns``."""
    return [*ns.exec_prefix, sys.executable, "-m", "tests.e2e.cluster_net", *args]


def _rpc_auth(config_file: Path) -> str | None:
    value = json.loads(config_file.read_text()).get("rpc_auth")
    return value if isinstance(value, str) else None


async def _capture(
    rpc: str, auth: str | None, event: str, within: float, want: Callable[[bytes], bool]
) -> bytes:
    from goavail.cluster.serf_rpc import SerfRPC, UserEvent

    host, _, port = rpc.rpartition(":")
    client = await SerfRPC.connect(host, int(port), auth)
    try:
        stream = await client.stream(f"user:{event}")
        async with asyncio.timeout(within):
            async for item in stream:
                if isinstance(item, UserEvent) and item.name == event and want(item.payload):
                    return item.payload
        raise TimeoutError("stream ended")
    finally:
        await client.close()


def _notice_filter(event: str, node: str | None, min_version: int) -> Callable[[bytes], bool]:
    """Accept notices that open with the key in ``$GOAVAIL_E2E_KEY``, from ``node`` (any
    when None), announcing at least ``min_version``."""
    from goavail.cluster.sync import Notice, Sealer
    from goavail.cluster.wire import WireError

    key = os.environ.get(KEY_ENV)
    sealer = Sealer(key.encode() if key else None, event)

    def want(payload: bytes) -> bool:
        try:
            notice = Notice.open(sealer, payload)
        except WireError:
            return False
        return (node is None or notice.node == node) and notice.version >= min_version

    return want


async def _send(rpc: str, auth: str | None, event: str, payload: bytes) -> None:
    from goavail.cluster.serf_rpc import SerfRPC

    host, _, port = rpc.rpartition(":")
    client = await SerfRPC.connect(host, int(port), auth)
    try:
        await client.user_event(event, payload, coalesce=False)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the helper: ``capture`` or ``send`` one user event (see module doc)."""
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.cluster_net")
    parser.add_argument("action", choices=("capture", "send"))
    parser.add_argument("--rpc", required=True, help="Serf RPC host:port")
    parser.add_argument("--auth-file", required=True, type=Path, help="serf.json with rpc_auth")
    parser.add_argument("--event", required=True, help="user event name")
    parser.add_argument("--payload", help="base64 payload (send)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds (capture)")
    parser.add_argument("--node", help="capture: only a notice of this node")
    parser.add_argument(
        "--min-version", type=int, default=0, help="capture: only a notice of this version or later"
    )
    args = parser.parse_args(argv)
    auth = _rpc_auth(args.auth_file)
    if args.action == "capture":
        want = _notice_filter(args.event, args.node, args.min_version)
        payload = asyncio.run(_capture(args.rpc, auth, args.event, args.timeout, want))
        print(base64.b64encode(payload).decode(), flush=True)
    else:
        if args.payload is None:
            parser.error("send needs --payload")
        asyncio.run(_send(args.rpc, auth, args.event, base64.b64decode(args.payload)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
