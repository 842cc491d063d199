"""The hook runner with real programs: sorted order, arguments, environment, failures and
timeouts counted (a hanging hook's children die too), a bounded queue that never blocks
the caller, directory changes, and the stop deadline."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from goavail.dns.model import FailOpen
from goavail.hooks import HookEvent, HookRunner, HookStats, list_hooks

EVENT = HookEvent(
    action="delete",
    target="192.0.2.10",
    name="www.example.test",
    record_type="A",
    dry_run=False,
    reason="target 192.0.2.10 down",
    outcome="applied",
    provider="zonefile",
)


def hook(directory: Path, name: str, body: str, *, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def recorder(directory: Path, name: str, log: Path) -> Path:
    """A hook appending one line per run: its name, its arguments, the GOAVAIL_* variables."""
    return hook(
        directory,
        name,
        f'echo "$(basename "$0") args=[$*] '
        f"action=$GOAVAIL_ACTION target=$GOAVAIL_TARGET name=$GOAVAIL_NAME "
        f"type=$GOAVAIL_RECORD_TYPE dry_run=$GOAVAIL_DRY_RUN node=$GOAVAIL_NODE "
        f"outcome=$GOAVAIL_OUTCOME provider=$GOAVAIL_PROVIDER reason=$GOAVAIL_REASON "
        f'token=${{CLOUDFLARE_API_TOKEN:-unset}}" >> {log}\n',
    )


async def until(predicate: object, within: float = 10.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def hooks_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "hooks.d"
    directory.mkdir()
    return directory


async def test_every_executable_runs_in_sorted_order_with_the_event(
    tmp_path: Path,
    hooks_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "SECRET-TOKEN")
    log = tmp_path / "log"
    for name in ("20-page", "10-drain", "30-update-lb", "9-early"):
        recorder(hooks_dir, name, log)
    hook(hooks_dir, "README", "exit 0\n", mode=0o644)  # not executable: skipped
    recorder(hooks_dir, ".hidden", log)
    recorder(hooks_dir, "10-drain~", log)  # an editor's backup
    (hooks_dir / "40-directory").mkdir()
    runner = HookRunner(hooks_dir, timeout=5.0, node="agent-a", dry_run=False)
    runner.start()
    with caplog.at_level(logging.INFO, logger="goavail.hooks"):
        runner.offer(EVENT)
        await until(lambda: len(lines(log)) == 4)
        await runner.close(5.0)
    common = (
        "args=[delete 192.0.2.10 www.example.test false] action=delete target=192.0.2.10 "
        "name=www.example.test type=A dry_run=false node=agent-a outcome=applied "
        "provider=zonefile reason=target 192.0.2.10 down token=unset"
    )
    assert lines(log) == [
        f"{name} {common}" for name in ("10-drain", "20-page", "30-update-lb", "9-early")
    ]
    assert runner.stats == HookStats(events=1, runs=4, ok=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"hooks: {hooks_dir / 'README'} is not executable: skipped"]


async def test_fail_open_and_dry_run_events(tmp_path: Path, hooks_dir: Path) -> None:
    log = tmp_path / "log"
    recorder(hooks_dir, "hook", log)
    runner = HookRunner(hooks_dir, timeout=5.0, node="b", dry_run=True)
    runner.start()
    case = FailOpen("www.example.test", "A", ("192.0.2.10", "192.0.2.11"))
    runner.fail_open(case, True)
    runner.audit_record(
        {"action": "create", "address": "192.0.2.12", "name": "www.example.test", "type": "A",
         "dry_run": True, "outcome": "planned", "reason": "target 192.0.2.12 up",
         "provider": "cloudflare"}
    )  # fmt: skip
    runner.audit_record({"action": "delete", "outcome": "error", "error": "boom"})  # not run
    runner.fail_open(case, False)
    await until(lambda: len(lines(log)) == 3)
    await runner.close(5.0)
    assert [line.split(" node=")[0] for line in lines(log)] == [
        "hook args=[fail_open_engaged 192.0.2.10,192.0.2.11 www.example.test true] "
        "action=fail_open_engaged target=192.0.2.10,192.0.2.11 name=www.example.test type=A "
        "dry_run=true",
        "hook args=[create 192.0.2.12 www.example.test true] action=create target=192.0.2.12 "
        "name=www.example.test type=A dry_run=true",
        "hook args=[fail_open_released 192.0.2.10,192.0.2.11 www.example.test true] "
        "action=fail_open_released target=192.0.2.10,192.0.2.11 name=www.example.test type=A "
        "dry_run=true",
    ]
    assert runner.stats.events == 3


async def test_a_failing_hook_is_counted_and_the_next_still_runs(
    tmp_path: Path, hooks_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "log"
    hook(hooks_dir, "10-fails", "echo 'cannot reach the load balancer' >&2\nexit 3\n")
    recorder(hooks_dir, "20-records", log)
    runner = HookRunner(hooks_dir, timeout=5.0, node="a", dry_run=False)
    runner.start()
    with caplog.at_level(logging.INFO, logger="goavail.hooks"):
        runner.offer(EVENT)
        await until(lambda: len(lines(log)) == 1)
        await runner.close(5.0)
    assert runner.stats == HookStats(events=1, runs=2, ok=1, failed=1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "hook 10-fails delete 192.0.2.10 www.example.test: exit status 3; "
        "last output: cannot reach the load balancer"
    ]


async def test_a_hanging_hook_is_killed_with_its_children(tmp_path: Path, hooks_dir: Path) -> None:
    log, pids = tmp_path / "log", tmp_path / "pids"
    hook(hooks_dir, "10-hangs", f"sleep 60 &\necho $! > {pids}\necho $$ >> {pids}\nwait\n")
    recorder(hooks_dir, "20-records", log)
    runner = HookRunner(hooks_dir, timeout=0.5, node="a", dry_run=False)
    runner.start()
    runner.offer(EVENT)
    await until(lambda: len(lines(log)) == 1)  # the next hook ran after the timeout
    await runner.close(5.0)
    assert runner.stats == HookStats(events=1, runs=2, ok=1, timed_out=1)
    for pid in map(int, pids.read_text().split()):
        await until(lambda pid=pid: not alive(pid))


async def test_offer_never_waits_and_the_queue_is_bounded(tmp_path: Path, hooks_dir: Path) -> None:
    started = tmp_path / "started"
    hook(hooks_dir, "hangs", f'echo "$2" >> {started}\nsleep 60\n')
    runner = HookRunner(hooks_dir, timeout=30.0, node="a", dry_run=False, queue_size=3)
    runner.start()
    runner.offer(EVENT)
    await until(lambda: len(lines(started)) == 1)  # the first event's hook is hanging
    for i in range(9):  # the caller (the reconciler) goes on at once
        runner.offer(HookEvent("create", f"192.0.2.{i}", "www.example.test", "A", False))
    assert runner.stats.events == 10
    assert runner.stats.dropped == 6  # only the newest 3 wait
    await runner.close(0.3)  # the hanging hook is killed at the stop deadline
    assert runner.stats.dropped == 9  # ... and the 3 waiting events are dropped
    assert lines(started) == ["192.0.2.10"]


async def test_close_kills_a_running_hook(tmp_path: Path, hooks_dir: Path) -> None:
    pid_file = tmp_path / "pid"
    hook(hooks_dir, "hangs", f"echo $$ > {pid_file}\nsleep 60\n")
    runner = HookRunner(hooks_dir, timeout=30.0, node="a", dry_run=False)
    runner.start()
    runner.offer(EVENT)
    await until(lambda: pid_file.exists() and pid_file.read_text().strip())
    pid = int(pid_file.read_text())
    await runner.close(0.2)
    await until(lambda: not alive(pid))


async def test_no_hooks_dir_does_nothing(tmp_path: Path) -> None:
    runner = HookRunner(None, timeout=1.0, node="a", dry_run=False)
    runner.start()
    runner.offer(EVENT)
    runner.audit_record({"action": "delete", "outcome": "applied"})
    await runner.close(1.0)
    assert runner.stats == HookStats()


async def test_directory_read_at_each_event_and_reconfigured(
    tmp_path: Path, hooks_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "log"
    runner = HookRunner(hooks_dir, timeout=5.0, node="a", dry_run=False)
    runner.start()
    runner.offer(EVENT)  # empty directory: nothing runs
    recorder(hooks_dir, "added-later", log)  # picked up without a reload
    runner.offer(EVENT)
    await until(lambda: len(lines(log)) >= 1)
    other = tmp_path / "other.d"
    other.mkdir()
    recorder(other, "other", log)
    runner.reconfigure(other, 2.0)
    runner.offer(EVENT)
    await until(lambda: any(line.startswith("other ") for line in lines(log)))
    os.rename(other, tmp_path / "gone.d")  # the directory vanishes: logged and counted
    with caplog.at_level(logging.ERROR, logger="goavail.hooks"):
        runner.offer(EVENT)
        await until(lambda: runner.stats.errors == 1)
    await runner.close(5.0)
    assert runner.timeout == 2.0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"hooks: cannot read {other}: No such file or directory"
    ]


def test_hooks_are_executable_files_only(hooks_dir: Path) -> None:
    a = hook(hooks_dir, "b", "")
    b = hook(hooks_dir, "a", "")
    plain = hook(hooks_dir, "c", "", mode=0o644)
    link = hooks_dir / "d-link"
    link.symlink_to(a)
    assert stat.S_ISLNK(link.lstat().st_mode)
    assert list_hooks(hooks_dir) == ([b, a, link], [plain])
