"""The deployment files: Dockerfile (hadolint), s6 scripts (shellcheck, run as they are),
systemd unit (``systemd-analyze verify`` and ``security``).

The s6 tree under a real s6-svscan is in ``tests/e2e/test_s6.py``; the unit's
command lines driving a real goavail in ``tests/e2e/test_systemd_unit.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from goavail.config import Members, ServerSection
from tests.deploy import DOCKERFILE, REPO, UNIT, dockerfile, exec_form, only, unit_entries

TREE = REPO / "s6" / "services"
SCRIPTS = sorted(p for p in TREE.rglob("*") if p.name in ("run", "finish", "crash") and p.is_file())
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A linter installed with the test dependencies (next to this interpreter) or on PATH."""
    path = shutil.which(name, path=f"{BIN}:{os.environ.get('PATH', '')}")
    assert path is not None, f"{name} not found: `make test` installs it (pyproject test extra)"
    return path


# -- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--format", "json", str(DOCKERFILE)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert (done.returncode, json.loads(done.stdout or "[]")) == (0, []), done.stdout
    # the only rule silenced in the file is DL3008 (no apt version pins), explained there
    done = subprocess.run(
        [tool("hadolint"), "--format", "json", "--disable-ignore-pragma", str(DOCKERFILE)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert {finding["code"] for finding in json.loads(done.stdout)} == {"DL3008"}


def test_dockerfile_agrees_with_the_s6_tree_and_goavail() -> None:
    # both stages start from the BASE_IMAGE build argument, by default the official image
    assert [i.args for i in dockerfile() if i.keyword == "FROM"] == [
        "${BASE_IMAGE} AS venv",
        "${BASE_IMAGE}",
    ]
    name, _, default = only("ARG").args.partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"python:3\.1[1-9]-slim-bookworm", default), default
    [install] = [i.args for i in dockerfile() if i.keyword == "RUN" and "apt-get install" in i.args]
    assert {"s6", "serf", "--no-install-recommends"} <= set(install.split())

    # s6-svscan, PID 1, scans the directory the tree was copied to
    [copy] = [i.args for i in dockerfile() if i.keyword == "COPY" and "s6/services" in i.args]
    source, scandir = copy.split()[-2:]
    assert source == "s6/services"
    assert exec_form(only("CMD").args) == ["s6-svscan", scandir]

    # gossip on Serf's port over TCP and UDP, and the HTTP server's port, on which the
    # HEALTHCHECK asks the server's default address for /_health
    ports = set(only("EXPOSE").args.split())
    serf_port = Members.model_fields["members_port"].default
    assert {f"{serf_port}/tcp", f"{serf_port}/udp"} <= ports
    server = ServerSection()
    assert f"{server.host_port()[1]}/tcp" in ports
    assert f"'http://{server.listen}/_health'" in only("HEALTHCHECK").args

    # ENV matches what the run script defaults to, and names the user the image creates
    env = dict(word.split("=", 1) for word in only("ENV").args.split())
    run_script = (TREE / "goavail" / "run").read_text()
    assert f"${{GOAVAIL_CONFIG:-{env['GOAVAIL_CONFIG']}}}" in run_script
    [users] = [i.args for i in dockerfile() if i.keyword == "RUN" and "useradd" in i.args]
    assert re.search(rf"useradd .* {re.escape(env['GOAVAIL_USER'])}(\s|$)", users)


# -- s6 scripts -------------------------------------------------------------------------------


def test_s6_scripts_are_executable_posix_sh_and_pass_shellcheck() -> None:
    names = {str(p.relative_to(TREE)) for p in SCRIPTS}
    assert {"goavail/run", "goavail/finish", "goavail/log/run", "serf/run", "serf/finish",
            ".s6-svscan/finish", ".s6-svscan/crash"} <= names  # fmt: skip
    for script in SCRIPTS:
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        assert script.read_text().startswith("#!/bin/sh\n"), script
    done = subprocess.run(
        [tool("shellcheck"), "--shell=sh", "--severity=style", *map(str, SCRIPTS)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_svscan_crash_script_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(TREE / ".s6-svscan" / "crash")],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip
    assert done.returncode == 111
    assert "s6-svscan: crashed" in done.stderr
    assert "no longer supervised" in done.stderr


@pytest.mark.parametrize(
    ("last_exit", "reported"),
    [
        ("0 0", "exit code 0"),
        ("2 0", "exit code 2"),
        ("256 9", "killed by signal 9"),
        (None, "unknown (it never ran)"),
    ],
)
def test_svscan_finish_reports_goavails_last_exit(
    tmp_path: Path, last_exit: str | None, reported: str
) -> None:
    # finish runs in the scan directory, where goavail/finish left goavail/data/last-exit
    if last_exit is not None:
        (tmp_path / "goavail" / "data").mkdir(parents=True)
        (tmp_path / "goavail" / "data" / "last-exit").write_text(last_exit + "\n")
    done = subprocess.run(
        [str(TREE / ".s6-svscan" / "finish")],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip
    assert done.returncode == 0
    assert done.stdout == f"s6-svscan: supervision tree stopped; goavail's last exit: {reported}\n"


# -- systemd unit -----------------------------------------------------------------------------


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's goavail pointed at this environment's (verify checks it exists)."""
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/goavail " in text
    copy = tmp_path / "goavail.service"
    copy.write_text(text.replace("/usr/local/bin/goavail ", f"{BIN / 'goavail'} "))
    return copy


def test_systemd_unit_verifies(unit_copy: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit_copy)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    # no error, and no warning either (an unknown or misspelt key is only a warning)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_systemd_unit_is_hardened(unit_copy: Path) -> None:
    entries = unit_entries()
    for key, value in {
        "Service.User": "goavail",
        "Service.AmbientCapabilities": "CAP_NET_RAW",
        "Service.CapabilityBoundingSet": "CAP_NET_RAW",
        "Service.NoNewPrivileges": "yes",
        "Service.ProtectSystem": "strict",
        "Service.Restart": "on-failure",
        "Service.ExecReload": "/bin/kill -HUP $MAINPID",
    }.items():
        assert entries[key] == [value], key
    # systemd's own exposure score (0 = locked down, 10 = unprotected): "OK" is below 5;
    # the threshold is the score times ten
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit_copy)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    score = re.search(r"Overall exposure level for goavail\.service: (\d+\.\d+)", done.stdout)
    assert score is not None and float(score.group(1)) <= 2.0, done.stdout[-300:]
