"""The ICMP engine's batch (target table) path, as the scheduler drives it.

Runs inside the private network namespace of the test session (see tests/netns.py):
every packet goes to 127.0.0.0/8 or ::1. Each test runs twice: with
``sendmmsg``/``recvmmsg`` and with one ``sendto``/``recv`` per packet.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from goavail.checks import icmp as icmp_module
from goavail.checks.base import ProbeResult
from goavail.checks.icmp import IcmpProbe
from goavail.checks.scheduler import ProbeScheduler
from tests.netns import Nft
from tests.test_probes_netns import drop_echo_replies_from, forged_reply, sysctl

pytestmark = pytest.mark.netns

TIMEOUT = 0.3
MARGIN = 1.0  # seconds of slack for slow CI machines


@pytest.fixture(params=[True, False], ids=["mmsg", "plain"])
async def icmp(request: pytest.FixtureRequest) -> AsyncIterator[IcmpProbe]:
    probe = IcmpProbe(timeout=TIMEOUT, batch_syscalls=request.param)
    await probe.start()
    assert probe.batch_syscalls is request.param
    yield probe
    await probe.close()


class Results:
    """Collects ``callback(target, result)`` calls; waits for a number of them."""

    def __init__(self) -> None:
        self.by_target: dict[str, list[ProbeResult]] = defaultdict(list)
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self, target: str, result: ProbeResult) -> None:
        self.by_target[target].append(result)
        self.count += 1
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT + MARGIN):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


def targets_v4(n: int, second: int = 1) -> list[str]:
    return [f"127.{second}.{i // 250}.{i % 250 + 1}" for i in range(n)]


async def test_batch_answers_every_target_once(icmp: IcmpProbe) -> None:
    targets = [*targets_v4(600), "::1", "not-an-ip"]
    results = Results()
    icmp.submit_batch(targets, 0, 300, 0, results)
    icmp.submit_batch(targets, 300, len(targets), 0, results)
    await results.wait_for(len(targets))
    await asyncio.sleep(TIMEOUT + 0.1)  # a duplicate or a late timeout would show by now
    assert sorted(results.by_target) == sorted(targets)
    for target in targets[:-1]:
        [result] = results.by_target[target]
        assert result.ok, (target, result)
        assert result.rtt is not None
        assert 0 < result.rtt < TIMEOUT
    assert results.by_target["not-an-ip"] == [ProbeResult(ok=False, error="invalid IP address")]


async def test_batch_silent_and_firewalled_targets_fail_alone(icmp: IcmpProbe) -> None:
    targets = targets_v4(50)
    silent, firewalled = targets[10], targets[20]
    results = Results()
    with Nft() as nft:
        drop_echo_replies_from(nft, silent)
        nft.drop(firewalled)  # the send itself fails (EPERM) in the middle of the batch
        icmp.submit_batch(targets, 0, len(targets), 0, results)
        await results.wait_for(len(targets))
    assert results.by_target[silent] == [ProbeResult(ok=False, error="timeout")]
    assert results.by_target[firewalled] == [ProbeResult(ok=False, error="operation not permitted")]
    others = [t for t in targets if t not in (silent, firewalled)]
    assert all(results.by_target[t] == [results.by_target[t][0]] for t in others)
    assert all(results.by_target[t][0].ok for t in others)


async def test_batch_reply_of_the_previous_round_is_not_taken(icmp: IcmpProbe) -> None:
    """A reply carrying the other round's identifier (a late one) does not count."""
    targets = ["127.0.0.5", "127.0.0.6"]
    results = Results()
    with (
        sysctl("net.ipv4.icmp_echo_ignore_all", "1"),  # only forged replies arrive
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as forger,
    ):
        forger.bind(("127.0.0.5", 0))  # the target's address as the source
        icmp.submit_batch(targets, 0, 1, 1, results)  # round 1: odd identifier
        table = icmp._table
        assert table is not None
        even, odd = table.idents[0]
        forger.sendto(forged_reply(even, 0), ("127.0.0.1", 0))  # a late reply of round 0
        forger.sendto(forged_reply(odd, 1), ("127.0.0.1", 0))  # wrong sequence (index)
        await asyncio.sleep(0.05)
        assert results.count == 0
        forger.sendto(forged_reply(odd, 0), ("127.0.0.1", 0))  # the real thing
        await results.wait_for(1)
    assert results.by_target["127.0.0.5"][0].ok


async def test_batch_previous_probe_still_in_flight_times_out_first(icmp: IcmpProbe) -> None:
    """timeout == interval: the next round's send reports the unanswered probe first."""
    targets = ["127.0.0.7"]
    results = Results()
    with sysctl("net.ipv4.icmp_echo_ignore_all", "1"):
        icmp.submit_batch(targets, 0, 1, 0, results)
        icmp.submit_batch(targets, 0, 1, 1, results)  # long before the timeout
        assert results.by_target["127.0.0.7"] == [ProbeResult(ok=False, error="timeout")]
        await results.wait_for(2)
    assert results.by_target["127.0.0.7"] == [ProbeResult(ok=False, error="timeout")] * 2


async def test_new_target_list_keeps_answers_of_the_old_one(icmp: IcmpProbe) -> None:
    old, new = targets_v4(100, 1), targets_v4(100, 2)
    results = Results()
    icmp.submit_batch(old, 0, len(old), 0, results)
    icmp.submit_batch(new, 0, len(new), 0, results)  # replaces the table at once
    await results.wait_for(200)
    assert all(results.by_target[t][0].ok for t in old + new)
    await asyncio.sleep(TIMEOUT + 0.1)  # the old table's identifiers are released
    assert {t for t, _b, _p in icmp._by_ident.values()} == {icmp._table}


async def test_more_than_65536_targets_use_one_identifier_pair_per_block(
    icmp: IcmpProbe,
) -> None:
    targets = [f"127.{1 + i // 65024}.{(i // 254) % 256}.{i % 254 + 1}" for i in range(70_000)]
    results = Results()
    icmp.submit_batch(targets, 65_530, 65_542, 0, results)  # across the block boundary
    await results.wait_for(12)
    assert sorted(results.by_target) == sorted(targets[65_530:65_542])
    assert all(r[0].ok for r in results.by_target.values())
    table = icmp._table
    assert table is not None
    assert len(table.idents) == 2
    assert len({ident for pair in table.idents for ident in pair}) == 4


async def test_close_completes_table_probes(icmp: IcmpProbe) -> None:
    results = Results()
    with sysctl("net.ipv4.icmp_echo_ignore_all", "1"):
        icmp.submit_batch(["127.0.0.8"], 0, 1, 0, results)
        await icmp.close()
    assert results.by_target["127.0.0.8"] == [ProbeResult(ok=False, error="closed")]


async def test_scheduler_uses_the_batch_path(icmp: IcmpProbe) -> None:
    interval = 0.4
    targets = [*targets_v4(400, 3), "::1"]
    silent = targets[7]
    results = Results()
    scheduler = ProbeScheduler(icmp, interval, results)
    scheduler.set_targets(targets)
    with Nft() as nft:
        drop_echo_replies_from(nft, silent)
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(3.5 * interval)
        scheduler.stop()
        await asyncio.wait_for(task, 1.0)
        await asyncio.sleep(TIMEOUT + 0.1)
    assert icmp._table is not None  # the IPv4 targets went through a table
    assert sorted(results.by_target) == sorted(targets)
    for target in targets:
        got = results.by_target[target]
        assert 3 <= len(got) <= 5, (target, got)
        if target == silent:
            assert all(r == ProbeResult(ok=False, error="timeout") for r in got)
        else:
            assert all(r.ok for r in got), (target, got)


def test_unavailable_batch_syscalls_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp_module, "_libc_mmsg", lambda: None)
    with pytest.raises(ValueError, match="sendmmsg"):
        IcmpProbe(batch_syscalls=True)
    assert not IcmpProbe().batch_syscalls  # auto: falls back to one call per packet
