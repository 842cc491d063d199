"""The container's proxy service (s6/services/proxy/run and finish) maps flopsy's Docker
settings to ``goavail proxy`` flags: run as it is, with a recording stand-in for goavail."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.deploy import REPO

SERVICE = REPO / "s6" / "services" / "proxy"


def run_script(tmp_path: Path, env: dict[str, str]) -> tuple[int, list[str], str]:
    record = tmp_path / "argv"
    fake = tmp_path / "goavail"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {record}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    done = subprocess.run(
        ["sh", str(SERVICE / "run")],
        env={"PATH": os.environ["PATH"], "GOAVAIL_BIN": str(fake), **env},
        capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path,
    )  # fmt: skip
    argv = record.read_text().splitlines() if record.exists() else []
    return done.returncode, argv, done.stdout


def test_flopsys_variables_and_paths_become_flags(tmp_path: Path) -> None:
    flopsy = tmp_path / "flopsy"
    (flopsy / "triggers.d").mkdir(parents=True)
    check = flopsy / "check-host.sh"
    check.write_text("#!/bin/sh\nexit 0\n")
    check.chmod(0o755)
    code, argv, _ = run_script(
        tmp_path,
        {"PORT": "5432", "HOSTS": "db1:5432,db2:5432", "MAX_BACKOFF": "10",
         "FLOPSY_DIR": str(flopsy), "GOAVAIL_CONFIG": str(tmp_path / "absent.toml")},
    )  # fmt: skip
    assert code == 0
    assert argv == [
        "proxy", "--port", "5432", "--hosts", "db1:5432,db2:5432", "--max-backoff", "10",
        "--check", str(check), "--on-failover", str(flopsy / "triggers.d"),
        "--status-listen", "off",
    ]  # fmt: skip


def test_a_check_that_is_not_executable_is_ignored_and_the_file_is_used(tmp_path: Path) -> None:
    flopsy = tmp_path / "flopsy"
    flopsy.mkdir()
    (flopsy / "check-host.sh").write_text("exit 0\n")
    config = tmp_path / "goavail.toml"
    config.write_text("")
    code, argv, out = run_script(
        tmp_path,
        {"GOAVAIL_PROXY": "1", "FLOPSY_DIR": str(flopsy), "GOAVAIL_CONFIG": str(config),
         "GOAVAIL_PROXY_STATUS": "127.0.0.1:8081"},
    )  # fmt: skip
    assert code == 0
    assert "ignored: it is not executable" in out
    assert argv == ["proxy", "--config-file", str(config), "--status-listen", "127.0.0.1:8081"]


def test_without_hosts_the_service_stays_down(tmp_path: Path) -> None:
    code, argv, out = run_script(tmp_path, {})
    assert (code, argv) == (0, [])
    assert "not enabled" in out
    finish = subprocess.run(
        ["sh", str(SERVICE / "finish"), "0", "0"],
        env={"PATH": os.environ["PATH"]}, timeout=30, check=False,
    )  # fmt: skip
    assert finish.returncode == 125  # s6-supervise: do not restart
    enabled = subprocess.run(
        ["sh", str(SERVICE / "finish"), "1", "0"],
        env={"PATH": os.environ["PATH"], "HOSTS": "a:1"}, timeout=30, check=False,
    )  # fmt: skip
    assert enabled.returncode == 0
