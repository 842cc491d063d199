"""``[Proxy]`` (goavail/config/proxy.py) and the flags of ``goavail proxy`` merged over it
(goavail/proxy/main.py): defaults, flopsy's shorthands, every problem at once with its
key path (and the flag it came from), exit 2 from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from goavail.cli import app
from goavail.config import ConfigError, load_config
from goavail.proxy.main import settings_from


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    return load_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.problems


def test_a_minimal_section_gets_flopsys_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, '[Proxy]\nport = 8080\nhosts = "db1:5432, db2:5432"\n')
    proxy = config.proxy
    assert proxy.hosts == ["db1:5432", "db2:5432"]  # HOSTS' comma-separated form
    assert proxy.listen_address() == ("::", 8080)
    assert (proxy.check, proxy.on_failover, proxy.checks, proxy.failback) == (
        None,
        None,
        None,
        False,
    )
    assert (proxy.max_backoff, proxy.drain, proxy.max_connections, proxy.relay) == (
        30.0,
        None,
        1000,
        "auto",
    )


def test_paths_are_relative_to_the_file_and_a_check_string_is_one_program(
    tmp_path: Path,
) -> None:
    config = load(
        tmp_path,
        '[Proxy]\nlisten = "127.0.0.1:5432"\nhosts = ["127.0.0.2:5432"]\n'
        'check = "./check-host.sh"\non_failover = "triggers.d"\nmax_backoff = "2s"\n'
        'drain = "500ms"\n',
    )
    proxy = config.proxy
    assert proxy.check == [str(tmp_path / "check-host.sh")]
    assert proxy.on_failover == tmp_path / "triggers.d"
    assert (proxy.max_backoff, proxy.drain) == (2.0, 0.5)
    assert proxy.listen_address() == ("127.0.0.1", 5432)


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[Proxy]\nport = 8080\nlisten = "localhost:1"\n'
        'hosts = ["192.0.2.11:5432", "nope", "192.0.2.11:5432", "192.0.2.12:99999"]\n'
        'check = []\nmax_backoff = "10ms"\nrelay = "zerocopy"\nmax_connections = 0\n'
        "sockets = 3\n",
    )
    text = "\n".join(found)
    for path in (
        "Proxy.listen:",
        "Proxy.hosts[1]:",
        "Proxy.hosts[2]: '192.0.2.11:5432' is listed twice (also hosts[0])",
        "Proxy.hosts[3]:",
        "Proxy.check: must not be empty",
        "Proxy.max_backoff: must be between 250ms and",
        "Proxy.relay:",
        "Proxy.max_connections: must be between 1 and",
        "Proxy.sockets: unknown key",
    ):
        assert path in text, f"{path!r} not in:\n{text}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('hosts = ["192.0.2.11:1"]', "Proxy.port: field required (or listen = 'ip:port')"),
        ('port = 1\nlisten = "127.0.0.1:2"\nhosts = ["192.0.2.11:1"]', "Proxy.port: set either"),
        ('port = 1\nhosts = ["192.0.2.11:1"]\nfailback = true', "Proxy.failback: needs checks"),
        ("port = 1\nhosts = []", "Proxy.hosts: must have at least 1 item"),
        ("port = 1", "Proxy.hosts: field required"),
    ],
)
def test_section_level_problems(tmp_path: Path, body: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(tmp_path, f"[Proxy]\n{body}\n"))


def test_checks_must_exist_and_judge_ip_addresses(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[[checks]]\nid = "db"\ntype = "tcp"\nport = 5432\n\n'
        '[Proxy]\nport = 1\nhosts = ["192.0.2.11:5432", "db2.example:5432"]\n'
        'checks = ["db", "nope", "db"]\n',
    )
    assert found == [
        "Proxy.checks[1]: no check 'nope' ([[checks]] ids: 'db')",
        "Proxy.checks[2]: 'db' is listed twice (also checks[0])",
        "Proxy.hosts[1]: 'db2.example:5432': with checks, the host must be an IP address "
        "(the checks probe it)",
    ]


CHECKED = (
    '[[checks]]\nid = "db"\ntype = "tcp"\nport = 5432\nfall = 2\n\n'
    '[Proxy]\nport = 6432\nhosts = ["192.0.2.11:5432", "192.0.2.12:5432"]\nchecks = ["db"]\n'
    "failback = true\n"
)


def test_flags_win_over_the_file_and_the_checks_come_along(tmp_path: Path) -> None:
    config = load(tmp_path, CHECKED)
    settings, checks = settings_from(
        config, {"listen": "127.0.0.1:7000", "max_backoff": 2.0, "hosts": None}, base_dir=tmp_path
    )
    assert settings.listen_address() == ("127.0.0.1", 7000)  # --bind replaces the file's port
    assert settings.port is None
    assert settings.max_backoff == 2.0
    assert settings.hosts == ["192.0.2.11:5432", "192.0.2.12:5432"]
    assert [(c.id, c.fall) for c in checks] == [("db", 2)]


def test_flag_problems_name_the_flag(tmp_path: Path) -> None:
    config = load(tmp_path, CHECKED)
    with pytest.raises(ConfigError) as caught:
        settings_from(config, {"relay": "x", "max_connections": 0}, base_dir=tmp_path)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "Proxy.max_connections (from --max-connections)",
        "Proxy.relay (from --relay)",
    ]
    # checked against the file's [[checks]] once the section itself is valid
    with pytest.raises(ConfigError) as caught:
        settings_from(config, {"hosts": "192.0.2.11:5432,db.example:1"}, base_dir=tmp_path)
    assert caught.value.problems == [
        "Proxy.hosts[1] (from --hosts): 'db.example:1': with checks, the host must be an IP "
        "address (the checks probe it)"
    ]


def test_flags_alone_need_hosts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Proxy: section missing"):
        settings_from(None, {"port": 1}, base_dir=tmp_path)
    settings, checks = settings_from(None, {"port": 1, "hosts": "a:1"}, base_dir=tmp_path)
    assert (settings.hosts, checks) == (["a:1"], [])


def test_the_cli_exits_2_listing_every_problem(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["proxy", "-p", "1", "-H", "192.0.2.11:1,bad", "-B", "1ms", "--relay", "x"]
    )
    assert result.exit_code == 2, result.output
    assert "invalid configuration (3 problems)" in result.output
    assert "Proxy.hosts[1] (from --hosts):" in result.output
    assert "Proxy.max_backoff (from --max-backoff): must be between 250ms" in result.output
