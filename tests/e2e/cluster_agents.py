"""Real ``goavail monitor`` agents on a :class:`~tests.e2e.cluster_net.Topology`.

Shared by the cluster end-to-end tests (three agents in ``test_cluster.py``, five
in ``test_cluster_five.py``): a :class:`Spec` says how many agents there are and
how they are tuned, :func:`agent_config` writes one agent's goavail.toml, and
:class:`Cluster` starts the agents inside their namespaces, waits for their log
lines, reads the Cloudflare stand-in and stops everything again.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cfstub.server import CloudflareStub
from tests.e2e.cluster_net import (
    ADDRESSES,
    NODES,
    SERF_PORT,
    TARGETS,
    SerfChild,
    Topology,
    kill_namespace_processes,
)
from tests.e2e.harness import (
    FAST,
    STOP_BOUND,
    WRITE_METHODS,
    GoavailProcess,
    addresses_of,
    cloudflare_toml,
    hold,
    stub_env,
    wait_until,
    write_requests,
)

ZONE = "example.com"
WWW = "www.example.com"
KEY = "goavail-e2e-key-0123456789abcdef"  # 32 bytes: AES-256, raw text as in the original
WAIT = 20.0
"""Seconds allowed for anything that has to cross the cluster (gossip, failure detection)."""
FAIL_WAIT = 40.0
"""Seconds allowed for Serf to declare a silent member failed."""
HOLD = 4.0
"""Seconds a "nothing changes" condition must hold."""
GRACE_PAST = 3.0
"""Seconds past a change after which a (wrong) takeover by another writer would have shown."""
LISTEN = "127.0.0.1:8080"
"""Where an agent's HTTP server listens, inside the agent's own namespace."""
TOKEN = "cluster-e2e-admin-token"
_FETCH = """
import sys, urllib.error, urllib.request
method, url, body, token = sys.argv[1:5]
request = urllib.request.Request(url, data=body.encode() or None, method=method)
request.add_header("Authorization", "Bearer " + token)
request.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        status, text = answer.status, answer.read().decode()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read().decode()
print(status)
print(text, end="")
"""
"""Run inside an agent's namespace: one HTTP request, prints the status line then the body."""


@dataclass(frozen=True, slots=True)
class Spec:
    """How many agents a cluster test runs and how they are tuned.

    Attributes:
        nodes: the node names (each agent's namespace is the topology's of that name).
        min_peers_agree: ``[Members] min_peers_agree``.
        timing: top-level TOML lines for probe timings (default: the harness's fast ones).
        announce_interval: ``[Members] announce_interval`` (a TOML duration string).
        writer_grace: ``[Members] writer_grace`` (a TOML duration string).
    """

    nodes: tuple[str, ...] = NODES
    min_peers_agree: int = 1
    timing: str = FAST
    announce_interval: str = "1s"
    writer_grace: str = "2s"


def agent_config(
    node: str,
    spec: Spec,
    key: str = KEY,
    listen: str | None = None,
    name: str | None = None,
) -> str:
    """goavail.toml of agent ``node``: probes of both targets timed by ``spec``, its serf
    on the bridge joining every other node of ``spec``, its HTTP server on ``listen``
    inside its own namespace (None: no server), its node name ``name`` (default:
    ``node``)."""
    peers = ", ".join(f'"{ADDRESSES[n]}:{SERF_PORT}"' for n in spec.nodes if n != node)
    top = f'node_name = "{name or node}"\n'
    text = cloudflare_toml(list(TARGETS), top=top, listen=listen)
    assert text.startswith(FAST)
    return (
        spec.timing
        + text.removeprefix(FAST)
        + "\n[Members]\n"
        + f'local_addr = "{ADDRESSES[node]}:{SERF_PORT}"\n'
        + f"peers = [{peers}]\n"
        + f"members_port = {SERF_PORT}\n"
        + f"min_peers_agree = {spec.min_peers_agree}\n"
        + f'crypto_key = "{key}"\n'
        + 'serf_profile = "local"\n'
        + f'announce_interval = "{spec.announce_interval}"\n'
        + f'writer_grace = "{spec.writer_grace}"\n'
    )


def votes(node: str, local: str, **peers: str) -> str:
    """Regex of the exact vote list of a log line: ``(votes: a(self)=down b=down c=up)``;
    a peer's vote may be given as a regex group, e.g. ``"(up|down)"``."""
    words = [re.escape(f"{node}(self)={local}")]
    for peer, vote in sorted(peers.items()):
        words.append(re.escape(f"{peer}=") + (vote if vote.startswith("(") else re.escape(vote)))
    return r"\(votes: " + " ".join(words) + r"\)"


def decided(target: str, state: str, node: str, local: str, **peers: str) -> str:
    """Regex of ``node``'s log line deciding ``target`` ``state`` with exactly these votes."""
    return rf"decision for {re.escape(target)}: {state} " + votes(node, local, **peers)


def undecided(target: str, node: str, local: str, needs: int = 1, **peers: str) -> str:
    """Regex of ``node``'s log line refusing to decide ``target`` for want of ``needs``
    agreeing peers, with these votes."""
    return rf"no decision yet for {re.escape(target)}: needs {needs} agreeing peer\(s\) " + votes(
        node, local, **peers
    )


def applied(proc: GoavailProcess, action: str, target: str, since: int = 0) -> list[str]:
    """The agent's audit lines of a change it made itself (``outcome=applied``)."""
    return proc.matching(
        rf"DNS {action} {re.escape(WWW)} A {re.escape(target)} .*outcome=applied", since=since
    )


def successful(cf: CloudflareStub, method: str) -> int:
    """How many ``method`` requests the stand-in answered with success (2xx).

    A duplicate create (81058) or a delete of a missing record is an error
    answer here: goavail treats it as already done, and the race the design
    accepts (two writers: one wasted API call) never counts twice.
    """
    return sum(1 for r in cf.requests if r.method == method and 200 <= r.status < 300)


_NOISE = re.compile(r" goavail\.serf: | goavail\.agent: probe ")
"""Lines left out of failure messages: Serf's own output and --debug probe lines."""


class Cluster:
    """The agents of one test (started on demand, all killed by :meth:`close`).

    Args:
        net: the topology (one namespace per node of ``spec``).
        cf: the Cloudflare stand-in.
        workdir: where each started agent gets a directory of its own.
        spec: the agents and their tuning.

    Attributes:
        procs: the running agent of each node started so far.
    """

    def __init__(
        self, net: Topology, cf: CloudflareStub, workdir: Path, spec: Spec = Spec()
    ) -> None:
        self.net = net
        self.cf = cf
        self.workdir = workdir
        self.spec = spec
        self.procs: dict[str, GoavailProcess] = {}
        self.state_dirs: list[Path] = []
        """Serf state directories seen (removed by :meth:`close` if still there)."""
        self._all: list[GoavailProcess] = []

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names of the spec."""
        return self.spec.nodes

    def __getitem__(self, node: str) -> GoavailProcess:
        return self.procs[node]

    def start(
        self,
        node: str,
        key: str = KEY,
        *,
        debug: bool = False,
        server: bool = False,
        name: str | None = None,
    ) -> GoavailProcess:
        """Start agent ``node`` (``goavail monitor --no-dry-run`` inside its namespace);
        ``debug`` adds ``--debug`` (a line per probe and per rejected message); ``server``
        starts its HTTP server on :data:`LISTEN` of its namespace, with :data:`TOKEN`;
        ``name`` sets its node_name (default: ``node``)."""
        workdir = self.workdir / f"{node}{len(self._all)}"
        workdir.mkdir()
        proc = GoavailProcess(
            workdir,
            agent_config(node, self.spec, key, LISTEN if server else None, name),
            args=["--no-dry-run", *(["--debug"] if debug else [])],
            env={**stub_env(self.cf), **({"GOAVAIL_ADMIN_TOKEN": TOKEN} if server else {})},
            prefix=self.net[node].exec_prefix,
        )
        self._all.append(proc)
        self.procs[node] = proc.start()
        return proc

    def start_all(self, *, debug: bool = False, server: bool = False) -> None:
        """Start every agent and wait until each has decided both targets up
        (which needs peers' votes, so gossip works) and sees every peer."""
        for node in self.nodes:
            self.start(node, debug=debug, server=server)
        for node in self.nodes:
            self.wait_ready(node)

    def wait_ready(
        self,
        node: str,
        peers: tuple[str, ...] | None = None,
        voters: tuple[str, ...] | None = None,
        *,
        since: int = 0,
    ) -> None:
        """Wait until ``node`` sees ``peers`` joined, holds every one of ``voters``' "up"
        vote for every target, and has decided every target up (so vote lists in
        later log lines are complete); both default to every node of the spec. Only
        lines from ``since`` on count."""
        for peer in self.nodes if peers is None else peers:
            if peer != node:
                self.expect(node, rf"peer {peer} joined", since=since)
        for target in TARGETS:
            for voter in self.nodes if voters is None else voters:
                if voter != node:
                    self.expect(node, rf"peer {voter} votes {re.escape(target)} up", since=since)
            self.expect(node, rf"decision for {re.escape(target)}: up", since=since)

    def api(self, node: str, method: str, path: str, body: object = None) -> tuple[int, str]:
        """An HTTP request to ``node``'s server, made from inside its namespace (where
        it listens on loopback); returns (status, body text)."""
        argv = [
            *self.net[node].exec_prefix,
            sys.executable,
            "-c",
            _FETCH,
            method,
            f"http://{LISTEN}{path}",
            json.dumps(body) if body is not None else "",
            TOKEN,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        status, _, text = result.stdout.partition("\n")
        return int(status), text

    def dns(self) -> set[str]:
        """The addresses www has in the stand-in."""
        return addresses_of(self.cf, ZONE, WWW)

    def writes_from(self, node: str) -> list[str]:
        """The write requests (``METHOD status``) the stand-in received from ``node``'s
        address, oldest first."""
        address = ADDRESSES[node]
        return [
            f"{r.method} {r.path} {r.status}"
            for r in self.cf.requests
            if r.remote == address and r.method in WRITE_METHODS
        ]

    def wait_dns(self, expected: set[str], timeout: float = WAIT) -> None:
        """Wait until www holds exactly ``expected``."""
        wait_until(
            lambda: self.dns() == expected,
            timeout,
            message=lambda: (
                f"www has {sorted(self.dns())}, want {sorted(expected)}\n" + self.tails()
            ),
        )

    def hold_dns(self, expected: set[str], duration: float, *, writes: int | None = None) -> None:
        """Assert that www holds exactly ``expected`` for ``duration`` seconds and, given
        ``writes``, that the stand-in's count of write requests stays at it."""

        def unchanged() -> bool:
            same = writes is None or write_requests(self.cf) == writes
            return same and self.dns() == expected

        hold(
            unchanged,
            duration,
            message=lambda: (
                f"www has {sorted(self.dns())}, want {sorted(expected)}; "
                f"writes {write_requests(self.cf)}, want {writes}\n" + self.tails()
            ),
        )

    def expect(self, node: str, pattern: str, timeout: float = WAIT, *, since: int = 0) -> str:
        """Wait for a line of ``node``'s output (from line ``since`` on) matching ``pattern``.

        Raises:
            AssertionError: none within ``timeout`` s; shows every agent's recent lines.
        """
        try:
            return self.procs[node].wait_for(pattern, timeout, since=since)
        except AssertionError as exc:
            first = str(exc).splitlines()[0]
            raise AssertionError(f"{node}: {first}\n{self.tails()}") from None

    def marks(self) -> dict[str, int]:
        """Every running agent's :meth:`GoavailProcess.mark`, by node."""
        return {node: proc.mark() for node, proc in self.procs.items()}

    def tails(self, n: int = 30) -> str:
        """The last lines of every agent (Serf's own chatter left out), for failure messages."""
        parts = []
        for node, proc in self.procs.items():
            lines = [line for line in proc.lines if not _NOISE.search(line)]
            parts.append(f"--- {node}:\n" + "\n".join(lines[-n:]))
        return "\n".join(parts)

    def serf_of(self, node: str) -> SerfChild:
        """The serf child running in ``node``'s namespace (exactly one)."""
        children = wait_until(lambda: self.net[node].serf_children(), WAIT)
        assert len(children) == 1, children
        self.state_dirs.append(children[0].config_file.parent)
        return children[0]

    def close(self) -> None:
        """Stop every agent (SIGTERM, all at once; SIGKILL after STOP_BOUND), then kill
        whatever is left in the namespaces (an orphaned serf) and remove the state
        directories goavail could not remove itself (it was killed)."""
        state_dirs = [
            child.config_file.parent for ns in self.net for child in ns.serf_children()
        ] + self.state_dirs
        for proc in self._all:
            if proc.alive:
                proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_BOUND
        for proc in self._all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait_exit(max(0.1, deadline - time.monotonic()))
            proc.kill()
        self.procs.clear()
        for ns in self.net:
            kill_namespace_processes(ns.name)
            ns.fw.clear()
        for path in state_dirs:
            shutil.rmtree(path, ignore_errors=True)
