"""Script checks and the program runner under them, with real processes: exit codes,
arguments and environment, timeouts that kill the script's children too, bounded
output, and closing the engine while scripts run."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from goavail.checks.base import CLOSED, ProbeResult
from goavail.checks.script import ScriptProbe, command_problem
from goavail.proc import OUTPUT_LIMIT, run_program

TARGET = "192.0.2.7"  # never contacted: scripts only receive it as text


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


async def gone(pid: int, within: float = 5.0) -> bool:
    """Wait until ``pid`` is dead; True when it died within ``within`` seconds."""
    async with asyncio.timeout(within):
        while alive(pid):
            await asyncio.sleep(0.02)
    return True


async def test_exit_zero_is_healthy(tmp_path: Path) -> None:
    probe = ScriptProbe([str(script(tmp_path / "ok", "exit 0\n"))], 5.0, check_id="db")
    result = await probe.probe(TARGET)
    assert result.ok
    assert result.rtt is not None and result.rtt > 0
    assert result.error is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("exit 3\n", "exit status 3"),
        ("echo starting\necho 'replica lag 42s' >&2\nexit 1\n", "exit status 1: replica lag 42s"),
        ("echo 'last words'\necho\nexit 2\n", "exit status 2: last words"),
        ("kill -SEGV $$\n", "killed by SIGSEGV"),
    ],
)
async def test_non_zero_exit_is_a_failure(tmp_path: Path, body: str, error: str) -> None:
    probe = ScriptProbe([str(script(tmp_path / "check", body))], 5.0)
    assert await probe.probe(TARGET) == ProbeResult(ok=False, error=error)


async def test_arguments_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "SECRET-TOKEN")
    monkeypatch.setenv("GOAVAIL_TEST_OTHER", "not passed on")
    out = tmp_path / "out"
    check = script(
        tmp_path / "check",
        f'for a in "$@"; do echo "arg=$a"; done > {out}\nenv | sort >> {out}\n',
    )
    probe = ScriptProbe([str(check), "--port", "5432", "two words"], 5.0, check_id="db")
    assert (await probe.probe(TARGET)).ok
    lines = out.read_text().splitlines()
    args = [line.removeprefix("arg=") for line in lines if line.startswith("arg=")]
    assert args == ["--port", "5432", "two words", TARGET]  # the target comes last
    env = dict(line.split("=", 1) for line in lines if not line.startswith("arg=") and "=" in line)
    assert env["GOAVAIL_TARGET"] == TARGET
    assert env["GOAVAIL_CHECK"] == "db"
    assert env["GOAVAIL_TIMEOUT"] == "5"
    assert env["PATH"] == os.environ["PATH"]
    assert "CLOUDFLARE_API_TOKEN" not in env  # goavail's credentials stay with goavail
    assert "GOAVAIL_TEST_OTHER" not in env


async def test_timeout_kills_the_script_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    check = script(
        tmp_path / "hang",
        f"sleep 60 &\necho $! > {pids}\nsh -c 'sleep 60' &\necho $! >> {pids}\n"
        f"echo $$ >> {pids}\necho 'waiting for the database'\nwait\n",
    )
    probe = ScriptProbe([str(check)], 0.5)
    result = await probe.probe(TARGET)
    assert result == ProbeResult(ok=False, error="timeout: waiting for the database")
    numbers = [int(p) for p in pids.read_text().split()]
    assert len(numbers) == 3
    for pid in numbers:  # the script, its sleep and the sh that runs another sleep
        assert await gone(pid), f"process {pid} survived the timeout"


async def test_children_left_behind_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    check = script(tmp_path / "bg", f"sleep 60 &\necho $! > {pid_file}\nexit 0\n")
    assert (await ScriptProbe([str(check)], 5.0).probe(TARGET)).ok
    assert await gone(int(pid_file.read_text()))


async def test_program_that_cannot_run(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    missing = await ScriptProbe([str(tmp_path / "missing")], 1.0).probe(TARGET)
    assert missing == ProbeResult(
        ok=False, error=f"cannot run {tmp_path / 'missing'}: no such file or directory"
    )
    denied = await ScriptProbe([str(plain)], 1.0).probe(TARGET)
    assert denied == ProbeResult(ok=False, error=f"cannot run {plain}: permission denied")


async def test_submit_calls_back_once_per_probe(tmp_path: Path) -> None:
    check = script(tmp_path / "check", 'test "$1" = 192.0.2.1\n')
    probe = ScriptProbe([str(check)], 5.0)
    await probe.start()
    results: dict[str, list[ProbeResult]] = {}
    done = asyncio.Event()

    def callback(target: str, result: ProbeResult) -> None:
        results.setdefault(target, []).append(result)
        if sum(map(len, results.values())) == 2:
            done.set()

    probe.submit("192.0.2.1", callback)
    probe.submit("192.0.2.2", callback)
    async with asyncio.timeout(10):
        await done.wait()
    assert [r.ok for r in results["192.0.2.1"]] == [True]
    assert results["192.0.2.2"] == [ProbeResult(ok=False, error="exit status 1")]
    await probe.close()


async def test_close_kills_running_scripts(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    check = script(tmp_path / "hang", f"echo $$ > {pid_file}\nsleep 60\n")
    probe = ScriptProbe([str(check)], 30.0)
    await probe.start()
    results: list[ProbeResult] = []
    probe.submit(TARGET, lambda _t, r: results.append(r))
    async with asyncio.timeout(10):
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.02)
    await probe.close()
    assert results == [CLOSED]
    assert await gone(int(pid_file.read_text()))
    probe.submit(TARGET, lambda _t, r: results.append(r))  # closed: answered at once
    await asyncio.sleep(0)
    assert results == [CLOSED, CLOSED]


async def test_output_is_bounded_to_its_tail(tmp_path: Path) -> None:
    check = script(tmp_path / "chatty", "head -c 3000000 /dev/zero | tr '\\0' x\necho; echo END\n")
    result = await run_program([str(check)], env={"PATH": os.environ["PATH"]}, time_limit=10)
    assert result.ok
    assert len(result.output) <= OUTPUT_LIMIT
    assert result.output.endswith("END\n")
    assert result.last_line() == "END"


def test_command_problem(tmp_path: Path) -> None:
    ok = script(tmp_path / "ok", "exit 0\n")
    (tmp_path / "plain").write_text("")
    assert command_problem([str(ok)]) is None
    assert command_problem(["sh", "-c", "true"]) is None
    assert command_problem([str(tmp_path / "plain")]) == f"'{tmp_path / 'plain'}' is not executable"
    assert command_problem([str(tmp_path)]) == f"'{tmp_path}' does not exist or is not a file"
    assert command_problem(["no-such-program-goavail"]) == (
        "'no-such-program-goavail' not found in PATH"
    )


async def test_a_bug_in_the_probe_is_a_failed_result(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("goavail.checks.script.run_program", broken)
    probe = ScriptProbe(["true"], 1.0)
    await probe.start()
    results: list[ProbeResult] = []
    probe.submit(TARGET, lambda _t, r: results.append(r))
    async with asyncio.timeout(5):
        while not results:
            await asyncio.sleep(0.01)
    assert results == [ProbeResult(ok=False, error="internal error: RuntimeError: bug")]
    await probe.close()
