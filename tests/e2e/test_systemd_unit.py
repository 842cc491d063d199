"""The systemd unit's command lines drive a real goavail (no systemd runs on test machines).

``ExecStart`` is run as systemd would split it, with ``$GOAVAIL_ARGS`` from an
``/etc/default/goavail``-like environment and only the paths of this machine swapped
in (the goavail binary, the config file); ``ExecReload`` is run with ``$MAINPID``;
the stop is the SIGTERM that ``KillMode=mixed`` sends to the main process only.
``systemd-analyze verify`` / ``security`` checks of the file are in ``tests/test_deploy.py``.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.deploy import unit_command, unit_entries
from tests.e2e.harness import CONSOLE_SCRIPT, child_env, wait_until, zonefile_toml
from tests.netns import Nft

pytestmark = pytest.mark.e2e

A, B = "127.67.0.2", "127.67.0.3"
ZONE = """\
$ORIGIN example.test.
@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 300
@ 3600 IN NS ns1
ns1 3600 IN A 127.0.0.1
"""


def test_unit_commands_start_reload_and_stop_goavail(tmp_path: Path, nft: Nft) -> None:
    entries = unit_entries()
    env = {"GOAVAIL_ARGS": "--dns-provider zonefile --no-dry-run"}
    [start] = entries["Service.ExecStart"]
    argv = unit_command(start, env)
    assert argv[:4] == [
        "/usr/local/bin/goavail",
        "monitor",
        "--config-file",
        "/etc/goavail/goavail.toml",
    ]
    zone, config = tmp_path / "example.test.zone", tmp_path / "goavail.toml"
    zone.write_text(ZONE)
    config.write_text(zonefile_toml([A, B], zone))
    argv[0], argv[3] = str(CONSOLE_SCRIPT), str(config)
    log = tmp_path / "journal"

    def journal() -> str:
        return log.read_text(errors="replace")

    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: f"A {A}" in zone.read_text() and f"A {B}" in zone.read_text(), message=journal
        )
        nft.blackhole(B)
        wait_until(lambda: f"A {B}" not in zone.read_text(), message=journal)

        [reload] = entries["Service.ExecReload"]
        subprocess.run(unit_command(reload, {"MAINPID": str(proc.pid)}), check=True, timeout=10)
        wait_until(lambda: "configuration reloaded: 2 targets" in journal(), message=journal)
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)  # systemctl stop, KillMode=mixed: the main process
        assert proc.wait(timeout=10) == 0
        assert "goavail.agent: stopped" in journal()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
