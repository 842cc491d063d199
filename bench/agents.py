"""Real goavail agents in their own network namespaces, for the cluster benchmarks.

Layout: the three-agent network of the cluster end-to-end tests
(:class:`tests.e2e.cluster_net.Topology`), built inside the harness's private
network namespace ``P`` (``bench.run.ensure_private_netns``): a bridge in ``P``,
one named namespace per agent (``goavail-e2e-<pid>-a/b/c``, address 192.0.2.1-3),
the Cloudflare stand-in on the bridge (192.0.2.254). Targets are addresses of
``P`` itself: 198.51.100.1 and .2 (the topology's own), and for the loss study
the benchmarking range 198.18.0.0/22 (RFC 2544), made local to ``P`` with one
``local`` route on ``lo``. Nothing is linked to the machine's own namespace.

Each agent is the real ``python -m goavail monitor`` started with
``ip netns exec``; a reader thread stamps every output line with
``time.monotonic()`` on arrival (log timestamps only have seconds) and parses
the lines the benchmarks need (:class:`AgentLog`).

:class:`BenchTable` is an nftables table of the benchmark's own in an agent
namespace: counters of echo requests sent and replies arriving, and the
``numgen random`` loss rule (with its own counter of dropped replies).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from bench.run import REPO, _die_with_parent, sample
from tests.cfstub.server import CloudflareStub, RequestLogEntry
from tests.e2e.cluster_net import (
    ADDRESSES,
    GATEWAY,
    NODES,
    SERF_PORT,
    NetError,
    Topology,
    namespace_pids,
    run,
)
from tests.netns import in_private_netns

LOSS_NET: Final = "198.18.0.0/22"
"""Targets of the loss study: RFC 2544 benchmarking addresses, local to the private namespace."""
TARGET_NET: Final = "198.18.0.0/15"
"""Every RFC 2544 benchmarking address (the loss study's and the scale run's targets): one
``local`` route on ``lo`` makes them addresses of the private namespace."""
ZONE: Final = "bench.test"
WWW: Final = f"www.{ZONE}"
CRYPTO_KEY: Final = "goavail-bench-key-0123456789abcd"  # 32 bytes: AES-256 (a test key)
BENCH_TABLE: Final = "goavail_bench"
CLOUDFLARE_NO_DRY_RUN: Final = ("--dns-provider", "cloudflare", "--no-dry-run")
ZONEFILE_DRY_RUN: Final = ("--dns-provider", "zonefile", "--dry-run")
"""``goavail monitor`` options: the Cloudflare stand-in for real, or a zone file read only."""
TRAFFIC_TABLE: Final = "goavail_bench_traffic"
SYNC_PORT: Final = SERF_PORT + 1
"""The agents' sync port (goavail's default: ``members_port + 1``)."""

_PROBE: Final = re.compile(rb"goavail\.agent: probe (\S+) (ok|failed) (.*)$")
TIMEOUT: Final = 0
OK: Final = 1
OTHER_ERROR: Final = 2
"""Probe result codes of :attr:`AgentLog.probe_code`."""
_TRANSITION: Final = re.compile(r"target (\S+) (\w+) -> (\w+) after")
_VOTE: Final = re.compile(r"peer (\S+) votes (\S+) (up|down)")
_DECISION: Final = re.compile(r"decision for (\S+): (\w+)(?: \(votes: (.*)\))?$")
_AUDIT: Final = re.compile(r"DNS (create|delete) (\S+) (A|AAAA) (\S+) .*outcome=(\S+)")
_JOINED: Final = re.compile(r"peer (\S+) joined")
_DECISION_PREFIX: Final = "decision for "
_OLD_EVENT: Final = re.compile(r"received old event \S+ from time (\d+) \(current: (\d+)\)")
_ALL_DECIDED: Final = "every target decided: "
_FIRST_DECISIONS: Final = re.compile(r"first decisions on (\d+) more targets: (\d+) up")
_QUORUM_UNMET: Final = "QUORUM UNMET"


def loss_targets(n: int) -> list[str]:
    """``n`` addresses of :data:`LOSS_NET` (198.18.0.1 on, host bytes 0 and 255 skipped).

    Raises:
        ValueError: more than 1,016 asked for.
    """
    if n > 4 * 254:
        raise ValueError(f"at most {4 * 254} loss-study targets")
    return bench_targets(n)


def bench_targets(n: int) -> list[str]:
    """``n`` addresses of :data:`TARGET_NET` in order (198.18.0.1, ..., 198.18.0.254,
    198.18.1.1, ...: host bytes 0 and 255 skipped); the first 1,016 are :func:`loss_targets`.

    Raises:
        ValueError: more than 512 * 254 = 130,048 asked for.
    """
    if n > 512 * 254:
        raise ValueError(f"at most {512 * 254} benchmark targets")
    out: list[str] = []
    for block in range(512):
        for host in range(1, 255):
            if len(out) == n:
                return out
            out.append(f"198.{18 + block // 256}.{block % 256}.{host}")
    return out


# -- parsed agent output ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One parsed log line: ``at`` (monotonic s, on arrival), ``kind`` and its fields.

    kinds and fields: ``transition`` (target, old, new), ``vote`` (peer, target,
    state), ``decision`` (target, state, votes: ``"a(self)=down b=up"``, empty in
    single-node mode), ``audit`` (action, name, type, address,
    outcome), ``joined`` (peer).
    """

    at: float
    kind: str
    fields: tuple[str, ...]


@dataclass
class AgentLog:
    """What a reader thread collected from one agent's output.

    Probe results (``--debug`` lines) are kept compactly: arrival time, target
    index (in ``targets``) and outcome, in parallel arrays.

    Attributes:
        node: the agent's node name.
        targets: target address -> index used in ``probe_target``.
        events: parsed non-probe lines (see :class:`Event`).
        probe_at, probe_target, probe_code: one entry per probe result line; the
            code is :data:`TIMEOUT`, :data:`OK` or :data:`OTHER_ERROR`.
        probe_errors: failed probes by reason other than ``timeout``.
        warnings: WARNING/ERROR lines and tracebacks (first 200).
        warning_count: all of them.
        serf_old_events: Serf's "received old event" warnings (a user event that
            arrived after its Lamport time left Serf's event buffer: dropped).
        serf_old_event_ages: of each of those, Serf's event clock minus the event's
            Lamport time ("from time T (current: C)": C - T). Serf keeps the last 512
            event times; an age just above 512 is an event at the edge of a peer's buffer,
            which Serf's push/pull state exchange sends again (a duplicate, not a loss).
        first_decision: target -> arrival time of its first "decision for T: up" line
            (kept even when ``keep_events`` is False).
        other_decisions: "decision for" lines of any other state.
        decided_at: arrival of goavail's ``every target decided`` line (None before).
        decided_up: targets decided up so far, from the per-target lines at INFO and the
            summaries of those at DEBUG (``first decisions on N more targets: U up``;
            goavail logs at most 10 first decisions per second one by one, see
            goavail/firstlines.py). With ``--debug`` the summarised lines appear too and
            are counted in ``first_decision`` as well.
        joined: peer -> arrival of its ``peer P joined`` line (the first one).
        cluster_ready_at: arrival of the first line showing the agent talks to its Serf
            (``QUORUM UNMET`` or a ``joined`` line); None before.
        keep_events: keep every parsed line in ``events`` (False: only decisions are
            noted, in ``first_decision``; for the 10,000-target scale run).
    """

    node: str
    targets: dict[str, int]
    events: list[Event] = field(default_factory=list)
    probe_at: array[float] = field(default_factory=lambda: array("d"))
    probe_target: array[int] = field(default_factory=lambda: array("I"))
    probe_code: bytearray = field(default_factory=bytearray)
    probe_errors: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    warning_count: int = 0
    serf_old_events: int = 0
    serf_old_event_ages: list[int] = field(default_factory=list)
    first_decision: dict[str, float] = field(default_factory=dict)
    other_decisions: int = 0
    decided_at: float | None = None
    decided_up: int = 0
    joined: dict[str, float] = field(default_factory=dict)
    cluster_ready_at: float | None = None
    keep_events: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, at: float, raw: bytes) -> str | None:
        """Parse one line; return its text unless it is a probe line (not logged to file)."""
        m = _PROBE.search(raw)
        if m is not None:
            index = self.targets.get(m.group(1).decode())
            if index is not None:
                reason = m.group(3).strip()
                if m.group(2) == b"ok":
                    code = OK
                elif reason == b"timeout":
                    code = TIMEOUT
                else:
                    code = OTHER_ERROR
                with self.lock:
                    self.probe_at.append(at)
                    self.probe_target.append(index)
                    self.probe_code.append(code)
                    if code == OTHER_ERROR:
                        text = reason.decode(errors="replace")
                        self.probe_errors[text] = self.probe_errors.get(text, 0) + 1
            return None
        text = raw.decode(errors="replace").rstrip("\n")
        event = _parse(at, text) if self.keep_events else None
        with self.lock:
            if event is not None:
                self.events.append(event)
            start = text.find(_DECISION_PREFIX)
            if start >= 0:
                target, _, rest = text[start + len(_DECISION_PREFIX) :].partition(": ")
                if rest.startswith("up"):
                    if target not in self.first_decision and " DEBUG " not in text:
                        self.decided_up += 1
                    self.first_decision.setdefault(target, at)
                else:
                    self.other_decisions += 1
            elif (summary := _FIRST_DECISIONS.search(text)) is not None:
                self.decided_up += int(summary.group(2))
            elif _ALL_DECIDED in text and self.decided_at is None:
                self.decided_at = at
            elif (joined := _JOINED.search(text)) is not None:
                self.joined.setdefault(joined.group(1), at)
                if self.cluster_ready_at is None:
                    self.cluster_ready_at = at
            elif _QUORUM_UNMET in text and self.cluster_ready_at is None:
                self.cluster_ready_at = at
            if " WARNING " in text or " ERROR " in text or "Traceback" in text:
                self.warning_count += 1
                if "received old event" in text:
                    self.serf_old_events += 1
                    old = _OLD_EVENT.search(text)
                    if old is not None:
                        self.serf_old_event_ages.append(int(old.group(2)) - int(old.group(1)))
                if len(self.warnings) < 200:
                    self.warnings.append(text)
        return text

    def select(self, kind: str, since: float = 0.0, until: float = float("inf")) -> list[Event]:
        """Events of ``kind`` that arrived in ``[since, until)``."""
        with self.lock:
            return [e for e in self.events if e.kind == kind and since <= e.at < until]

    def count(self, kind: str, *fields: str) -> int:
        """Events of ``kind`` whose fields start with ``fields``."""
        with self.lock:
            return sum(
                1 for e in self.events if e.kind == kind and e.fields[: len(fields)] == fields
            )


def _parse(at: float, text: str) -> Event | None:
    for kind, pattern in (
        ("transition", _TRANSITION),
        ("vote", _VOTE),
        ("decision", _DECISION),
        ("audit", _AUDIT),
        ("joined", _JOINED),
    ):
        m = pattern.search(text)
        if m is not None:
            return Event(at, kind, tuple(g or "" for g in m.groups()))
    return None


# -- one agent process -----------------------------------------------------------------------


class AgentProcess:
    """``python -m goavail monitor`` inside a namespace, its output parsed as it arrives.

    Args:
        node: node name (also the log's name).
        prefix: argv words that enter the namespace (``ip netns exec NS``; the last
            word is the namespace name).
        config: the goavail.toml to use.
        targets: the addresses whose probe lines are kept.
        env: extra environment variables (the stand-in's URL and token).
        workdir: where the log file (every line but the probe lines) goes; ``TMPDIR``
            of the agent (Serf's state directory) is a subdirectory of it.
        debug: pass ``--debug`` (a line per probe).
        keep_events: keep every parsed line (see :class:`AgentLog`).
        provider_args: how the agent reaches DNS (default: the Cloudflare stand-in,
            ``--no-dry-run``; :data:`ZONEFILE_DRY_RUN` for a zone file, dry run).
    """

    def __init__(
        self,
        node: str,
        prefix: Sequence[str],
        config: Path,
        targets: Sequence[str],
        env: dict[str, str],
        workdir: Path,
        *,
        debug: bool = False,
        keep_events: bool = True,
        provider_args: Sequence[str] = CLOUDFLARE_NO_DRY_RUN,
    ) -> None:
        self.node = node
        self.namespace = prefix[-1]
        self.log = AgentLog(
            node, {t: i for i, t in enumerate(targets)} if debug else {}, keep_events=keep_events
        )
        self.log_path = workdir / f"goavail-{node}.log"
        tmp = workdir / f"tmp-{node}"
        tmp.mkdir(exist_ok=True)
        child_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "CF_API_"))
        }
        child_env.update(env, PYTHONUNBUFFERED="1", TMPDIR=str(tmp))
        argv = [
            *prefix,
            *(sys.executable, "-m", "goavail", "monitor", "--config-file", str(config)),
            *provider_args,
            *(["--debug"] if debug else []),
        ]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=child_env,
            preexec_fn=_die_with_parent,
        )
        self._thread = threading.Thread(target=self._read, name=f"read-{node}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        with self.log_path.open("w", encoding="utf-8") as f:
            for raw in out:
                at = time.monotonic()
                text = self.log.feed(at, raw)
                if text is not None:
                    f.write(f"{at:.3f} {text}\n")
                    f.flush()  # read while the agent runs (warm-up breakdowns)

    def namespace_cpu(self) -> float:
        """CPU seconds (user + system) of every process in the agent's namespace so far
        (goavail and its Serf child); processes that already exited are not counted."""
        total = 0.0
        for pid in namespace_pids(self.namespace):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += sample(pid).cpu
        return total

    def usage(self) -> dict[str, tuple[float, float]]:
        """``{"goavail": (cpu s, RSS MB), "serf": (cpu s, RSS MB)}`` now: the agent's
        process and the sum over every other process of its namespace (its Serf child)."""
        out = {"goavail": (0.0, 0.0), "serf": (0.0, 0.0)}
        for pid in namespace_pids(self.namespace):
            with contextlib.suppress(OSError, ValueError, IndexError):
                s = sample(pid)
                kind = "goavail" if pid == self.pid else "serf"
                cpu, rss = out[kind]
                out[kind] = (cpu + s.cpu, rss + s.rss_mb)
        return out

    @property
    def pid(self) -> int:
        """The agent's pid (``ip netns exec`` execs it in place)."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM (the agent leaves the Serf cluster), SIGKILL after ``grace`` s; reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        self._thread.join(timeout=10)

    def tail(self, n: int = 30) -> str:
        """The last ``n`` logged lines (for error messages)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def agent_config(
    *,
    node: str,
    targets: Sequence[str],
    nodes: Sequence[str],
    failure_threshold: int,
    interval: float,
    timeout: str,
    min_peers_agree: int | None,
    announce_interval: str | None = None,
    zone_file: Path | None = None,
    pool_size: int | None = None,
) -> str:
    """goavail.toml of one agent: Cloudflare provider on the stand-in (or, with
    ``zone_file``, the zone file provider on that file, which :func:`write_zone` wrote),
    ``www`` with every target (the original's shape), or with ``pool_size`` the targets
    in pools of that many addresses, each published under a name of its own
    (:func:`pool_names`: ``[[pools]]`` + ``[[names]]``); ``[Members]`` (Serf on the
    bridge, every other node of ``nodes`` a peer, the other cluster settings at their
    defaults, ``announce_interval`` if given) unless ``min_peers_agree`` is None."""
    hostnames = "" if pool_size else 'hostnames = ["www"]\n'
    if zone_file is None:
        provider = f'[Cloudflare]\ndns_domain = "{ZONE}"\n{hostnames}ttl = 120\n'
    else:
        provider = f'[Zonefile]\npath = "{zone_file}"\norigin = "{ZONE}"\n{hostnames}ttl = 120\n'
    if pool_size:
        pools = pool_names(targets, pool_size)
        published = "".join(
            f'[[pools]]\nname = "{label}"\naddresses = {json.dumps(pool)}\n'
            f'[[names]]\nname = "{label}.{ZONE}"\npools = ["{label}"]\n'
            for label, pool in pools.items()
        )
        provider += f"\n{published}"
    else:
        addresses = ",\n".join(f'  "{t}"' for t in targets)
        provider += f"ip_addresses = [\n{addresses}\n]\n"
    text = (
        f'node_name = "{node}"\nfailure_threshold = {failure_threshold}\n'
        f'interval = {interval:g}\ntimeout = "{timeout}"\n\n{provider}'
    )
    if min_peers_agree is not None:
        peers = ", ".join(f'"{ADDRESSES[n]}:{SERF_PORT}"' for n in nodes if n != node)
        text += (
            f'\n[Members]\nlocal_addr = "{ADDRESSES[node]}:{SERF_PORT}"\npeers = [{peers}]\n'
            f"members_port = {SERF_PORT}\nmin_peers_agree = {min_peers_agree}\n"
            f'crypto_key = "{CRYPTO_KEY}"\n'
        )
        if announce_interval is not None:
            text += f'announce_interval = "{announce_interval}"\n'
    return text


def pool_names(targets: Sequence[str], pool_size: int) -> dict[str, list[str]]:
    """``targets`` cut into pools of ``pool_size`` addresses (the last one may be
    smaller), in order: pool and name label ``p0``, ``p1``, ... -> its addresses.

    Raises:
        ValueError: ``pool_size`` < 1.
    """
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    return {
        f"p{i // pool_size}": list(targets[i : i + pool_size])
        for i in range(0, len(targets), pool_size)
    }


def write_zone(path: Path, targets: Sequence[str], pool_size: int | None = None) -> None:
    """Write a zone file for :data:`ZONE` with a ``www`` A record (TTL 120) per target,
    or with ``pool_size`` an A record per target at its pool's name (:func:`pool_names`)."""
    if pool_size:
        records = [
            f"{label} 120 IN A {t}"
            for label, pool in pool_names(targets, pool_size).items()
            for t in pool
        ]
    else:
        records = [f"www 120 IN A {t}" for t in targets]
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 3600",
        "@ IN SOA ns1 hostmaster 2024010100 3600 600 604800 300",
        "  IN NS ns1",
        "ns1 IN A 192.0.2.254",
        *records,
    ]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


# -- the stand-in --------------------------------------------------------------------------


def is_delete(entry: RequestLogEntry) -> int:
    """Records a successful request deleted: 1 for a DELETE, the deletes of a batch, else 0."""
    if entry.status >= 300:
        return 0
    if entry.method == "DELETE":
        return 1
    if entry.route.endswith("/batch"):
        return len((entry.body or {}).get("deletes") or [])
    return 0


class TimedStub:
    """The Cloudflare stand-in on the bridge, noting when each write request arrived.

    Attributes:
        stub: the :class:`CloudflareStub`.
        writes: ``(monotonic time, method, status, records deleted)`` per write request.
    """

    def __init__(self) -> None:
        self.stub = CloudflareStub(host=GATEWAY)
        self.writes: list[tuple[float, str, int, int]] = []
        self._lock = threading.Lock()
        note = self.stub.state.note

        def timed_note(entry: RequestLogEntry) -> None:
            if entry.method in ("POST", "PATCH", "PUT", "DELETE"):
                with self._lock:
                    self.writes.append(
                        (time.monotonic(), entry.method, entry.status, is_delete(entry))
                    )
            note(entry)

        self.stub.state.note = timed_note  # type: ignore[method-assign]

    def start(self, targets: Sequence[str]) -> None:
        """Start serving; create the zone with a ``www`` A record for every target."""
        self.stub.start()
        self.stub.add_zone(ZONE)
        for t in targets:
            self.stub.add_record(ZONE, WWW, "A", t, ttl=120)
        # seeding is not part of any measurement
        with self._lock:
            self.writes.clear()

    def deletes_since(self, since: float, until: float = float("inf")) -> list[float]:
        """Arrival times of successful record deletions in ``[since, until)`` (one per record)."""
        with self._lock:
            return [at for at, _m, _s, n in self.writes if since <= at < until for _ in range(n)]

    def write_summary(self, since: float, until: float) -> dict[str, int]:
        """Write requests in ``[since, until)`` by ``METHOD status``."""
        out: dict[str, int] = {}
        with self._lock:
            for at, method, status, _n in self.writes:
                if since <= at < until:
                    key = f"{method} {status}"
                    out[key] = out.get(key, 0) + 1
        return out

    def present(self) -> set[str]:
        """Addresses ``www`` holds now."""
        return {r["content"] for r in self.stub.records(ZONE) if r["name"] == WWW}

    def env(self) -> dict[str, str]:
        """Variables pointing goavail's Cloudflare SDK at the stand-in."""
        assert self.stub.token is not None
        return {"CLOUDFLARE_BASE_URL": self.stub.base_url, "CLOUDFLARE_API_TOKEN": self.stub.token}

    def stop(self) -> None:
        """Stop serving."""
        self.stub.stop()


# -- nftables in an agent namespace ----------------------------------------------------------


class BenchTable:
    """The benchmark's nftables table in one agent namespace (input and output hooks).

    Counters (rule comments): ``sent`` (echo requests to :data:`LOSS_NET` leaving),
    ``arrived`` (echo replies from it arriving, before any drop), ``dropped`` (the
    replies the loss rule dropped). :meth:`set_loss` adds the
    ``numgen random mod 100 < pct drop`` rule; it drops on *input*, i.e. the reply:
    one drop chance per probe, so a probe fails with probability ``pct / 100``.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._nft(f"add table inet {BENCH_TABLE}")
        self._nft(
            f"add chain inet {BENCH_TABLE} out "
            "{ type filter hook output priority -10; policy accept; }"
        )
        self._nft(
            f"add chain inet {BENCH_TABLE} in "
            "{ type filter hook input priority -10; policy accept; }"
        )
        self._nft(
            f"add rule inet {BENCH_TABLE} out ip daddr {LOSS_NET} icmp type echo-request "
            'counter comment "sent"'
        )
        self._nft(
            f"add rule inet {BENCH_TABLE} in ip saddr {LOSS_NET} icmp type echo-reply "
            'counter comment "arrived"'
        )

    def _nft(self, *args: str) -> str:
        if not in_private_netns():
            raise NetError("refusing to change nftables outside the private bench namespace")
        return run("ip", "netns", "exec", self.namespace, "nft", *args).stdout

    def set_loss(self, pct: int) -> None:
        """Drop ``pct`` % of the echo replies from :data:`LOSS_NET`, at random."""
        self._nft(
            f"add rule inet {BENCH_TABLE} in ip saddr {LOSS_NET} icmp type echo-reply "
            f'numgen random mod 100 < {pct} counter drop comment "dropped"'
        )

    def freeze(self) -> None:
        """Stop every further echo request to :data:`LOSS_NET` before it is counted
        (``sendto`` then fails with EPERM): from now on the counters only change by the
        replies of probes already sent, so totals can be compared with the agent's."""
        self._nft(
            f"insert rule inet {BENCH_TABLE} out ip daddr {LOSS_NET} icmp type echo-request "
            'drop comment "frozen"'
        )

    def counters(self) -> dict[str, int]:
        """Packets counted so far by the ``sent``, ``arrived`` and ``dropped`` rules."""
        doc = json.loads(self._nft("-j", "list", "table", "inet", BENCH_TABLE))
        out: dict[str, int] = {}
        for item in doc.get("nftables", []):
            rule = item.get("rule")
            if not rule or "comment" not in rule:
                continue
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    out[str(rule["comment"])] = int(expr["counter"]["packets"])
        return out

    def delete(self) -> None:
        """Delete the table (best effort)."""
        with contextlib.suppress(NetError):
            self._nft("delete", "table", "inet", BENCH_TABLE)


class TrafficTable:
    """Counters of the cluster's traffic in one agent namespace (nftables, both directions).

    Rules (comment = counter name, ``_out`` leaving the namespace, ``_in`` arriving):

    * ``gossip_udp``: UDP to or from :data:`SERF_PORT` (Serf's gossip and failure
      detection; one datagram carries one Serf message or a compound of several);
    * ``gossip_tcp``: TCP to or from :data:`SERF_PORT` (Serf's push/pull state sync and
      its TCP fall-back probes), client and server side;
    * ``sync``: TCP to or from :data:`SYNC_PORT` (goavail's verdict pulls), client and
      server side.

    Packets and bytes are counted at the IP layer (headers included). Loopback traffic
    (Serf's RPC between goavail and its Serf child) is on other ports and not counted.
    """

    RULES: Final = (
        ("out", f"udp dport {SERF_PORT}", "gossip_udp_out"),
        ("in", f"udp dport {SERF_PORT}", "gossip_udp_in"),
        ("out", f"tcp dport {SERF_PORT}", "gossip_tcp_out.c"),
        ("out", f"tcp sport {SERF_PORT}", "gossip_tcp_out.s"),
        ("in", f"tcp dport {SERF_PORT}", "gossip_tcp_in.s"),
        ("in", f"tcp sport {SERF_PORT}", "gossip_tcp_in.c"),
        ("out", f"tcp dport {SYNC_PORT}", "sync_out.c"),
        ("out", f"tcp sport {SYNC_PORT}", "sync_out.s"),
        ("in", f"tcp dport {SYNC_PORT}", "sync_in.s"),
        ("in", f"tcp sport {SYNC_PORT}", "sync_in.c"),
    )

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._nft(f"add table inet {TRAFFIC_TABLE}")
        for hook in ("in", "out"):
            self._nft(
                f"add chain inet {TRAFFIC_TABLE} {hook} "
                f"{{ type filter hook {'input' if hook == 'in' else 'output'} priority -20; "
                "policy accept; }"
            )
        for hook, match, name in self.RULES:
            self._nft(f'add rule inet {TRAFFIC_TABLE} {hook} {match} counter comment "{name}"')

    def _nft(self, *args: str) -> str:
        if not in_private_netns():
            raise NetError("refusing to change nftables outside the private bench namespace")
        return run("ip", "netns", "exec", self.namespace, "nft", *args).stdout

    def counters(self) -> dict[str, tuple[int, int]]:
        """``{name: (packets, bytes)}`` so far, client and server sides summed
        (``gossip_udp_out``, ``gossip_udp_in``, ``gossip_tcp_out``, ``gossip_tcp_in``,
        ``sync_out``, ``sync_in``)."""
        doc = json.loads(self._nft("-j", "list", "table", "inet", TRAFFIC_TABLE))
        out: dict[str, tuple[int, int]] = {}
        for item in doc.get("nftables", []):
            rule = item.get("rule")
            if not rule or "comment" not in rule:
                continue
            name = str(rule["comment"]).partition(".")[0]
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    packets, size = out.get(name, (0, 0))
                    out[name] = (
                        packets + int(expr["counter"]["packets"]),
                        size + int(expr["counter"]["bytes"]),
                    )
        return out

    def delete(self) -> None:
        """Delete the table (best effort)."""
        with contextlib.suppress(NetError):
            self._nft("delete", "table", "inet", TRAFFIC_TABLE)


def scrape_gossip(namespace: str) -> dict[str, float]:
    """The ``goavail_gossip_*``, ``goavail_probes_total`` and ``goavail_reconcile_*``
    samples of the agent's ``/metrics`` in ``namespace`` (the default ``[Server] listen``,
    127.0.0.1:8080):
    ``{metric name + "{" + labels + "}": value}`` as exposed, ``{}`` when the page cannot
    be read."""
    done = run(
        "ip", "netns", "exec", namespace, "curl", "-sf", "--max-time", "5",
        "http://127.0.0.1:8080/metrics", check=False,
    )  # fmt: skip
    out: dict[str, float] = {}
    if done.returncode != 0:
        return out
    for line in done.stdout.splitlines():
        if line.startswith(("goavail_gossip_", "goavail_probes_total", "goavail_reconcile_")):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


# -- the whole network -----------------------------------------------------------------------


class BenchNet:
    """Topology + targets + stand-in, as a context manager that always cleans up.

    Args:
        loss_targets: also make :data:`TARGET_NET` (which holds :data:`LOSS_NET`) local
            to the private namespace.
        nodes: the agents' node names (``a``, ``b``, ... up to ``h``; default three).

    Attributes:
        topo: the agents' topology.
        stand_in: the timed Cloudflare stand-in (started with :meth:`start_stub`).
        agents: every agent process started through :meth:`start_agent`.
    """

    def __init__(self, *, loss_targets: bool = False, nodes: Sequence[str] = NODES) -> None:
        if not in_private_netns():
            raise NetError("refusing to build the bench network outside the private namespace")
        self.topo = Topology(nodes)
        self._loss = loss_targets
        self.stand_in = TimedStub()
        self._stub_started = False  # a fresh stand-in per experiment: start_stub
        self.agents: list[AgentProcess] = []
        self.tables: dict[str, BenchTable] = {}

    def __enter__(self) -> Self:
        try:
            self.topo.build()
            if self._loss:
                run("ip", "route", "add", "local", TARGET_NET, "dev", "lo", "table", "local")
        except BaseException:
            self.close()
            raise
        return self

    def start_stub(self, targets: Sequence[str]) -> TimedStub:
        """Start a fresh stand-in on the bridge with ``www`` = ``targets`` (stopping the
        previous one); agents started afterwards use it."""
        if self._stub_started:
            self.stand_in.stop()
            self._stub_started = False
        self.stand_in = TimedStub()
        self.stand_in.start(targets)
        self._stub_started = True
        return self.stand_in

    def table(self, node: str) -> BenchTable:
        """The bench nftables table of ``node``'s namespace (created on first use)."""
        if node not in self.tables:
            self.tables[node] = BenchTable(self.topo[node].name)
        return self.tables[node]

    def start_agent(
        self,
        node: str,
        config_text: str,
        targets: Sequence[str],
        workdir: Path,
        debug: bool,
        *,
        keep_events: bool = True,
        provider_args: Sequence[str] = CLOUDFLARE_NO_DRY_RUN,
    ) -> AgentProcess:
        """Write ``node``'s config and start its agent in its namespace."""
        config = workdir / f"goavail-{node}.toml"
        config.write_text(config_text, encoding="ascii")
        agent = AgentProcess(
            node,
            self.topo[node].exec_prefix,
            config,
            targets,
            self.stand_in.env(),
            workdir,
            debug=debug,
            keep_events=keep_events,
            provider_args=provider_args,
        )
        self.agents.append(agent)
        return agent

    def stop_agents(self) -> None:
        """Stop every agent started (SIGTERM in parallel, then reap)."""
        for agent in self.agents:
            if agent.alive():
                agent.proc.send_signal(signal.SIGTERM)
        for agent in self.agents:
            agent.stop()
        self.agents.clear()

    def drop_tables(self) -> None:
        """Delete every bench nftables table."""
        for table in self.tables.values():
            table.delete()
        self.tables.clear()

    def close(self) -> None:
        """Stop agents, the stand-in; delete tables, route, namespaces, links (best effort)."""
        try:
            self.stop_agents()
        finally:
            self.drop_tables()
            if self._stub_started:
                self.stand_in.stop()
                self._stub_started = False
            if self._loss:
                run("ip", "route", "delete", "local", TARGET_NET, "dev", "lo", "table", "local",
                    check=False)  # fmt: skip
            self.topo.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def keep_logs(workdir: Path, dest: Path | None, name: str) -> None:
    """Copy the logs and configs of ``workdir`` to ``dest/name`` (nothing when ``dest`` is
    None); Serf's state directories are left out (they hold its RPC key)."""
    if dest is None:
        return
    shutil.copytree(
        workdir, dest / name, ignore=shutil.ignore_patterns("tmp-*"), dirs_exist_ok=True
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``predicate`` until true.

    Raises:
        RuntimeError: not true within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def check_alive(agents: Sequence[AgentProcess]) -> None:
    """Raise RuntimeError with the log tail when an agent has exited."""
    for agent in agents:
        if not agent.alive():
            raise RuntimeError(
                f"agent {agent.node} exited with {agent.proc.returncode}:\n{agent.tail()}"
            )


__all__ = [
    "LOSS_NET",
    "TARGET_NET",
    "WWW",
    "ZONE",
    "AgentLog",
    "AgentProcess",
    "BenchNet",
    "BenchTable",
    "Event",
    "TimedStub",
    "TrafficTable",
    "agent_config",
    "bench_targets",
    "check_alive",
    "loss_targets",
    "pool_names",
    "scrape_gossip",
    "wait_for",
    "write_zone",
]
