"""The ``goavail`` command line, run as a real process: version, help, validate, plan, errors.

Exit codes (goavail/cli.py): 0 success, 1 runtime failure, 2 invalid configuration
or usage; ``plan --detailed-exitcode``: 0 no changes, 2 changes pending, 1 any error.
A configuration or usage error never shows a Python traceback.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from goavail import __version__
from tests.cfstub.server import CloudflareStub
from tests.e2e.harness import (
    REPO,
    GoavailProcess,
    cloudflare_toml,
    run_goavail,
    stub_env,
    write_requests,
    zonefile_toml,
)
from tests.netns import Nft

pytestmark = pytest.mark.e2e

WIDE = {"COLUMNS": "200"}  # help text on one line per option
ZONE = "example.com"
WWW = "www.example.com"

BROKEN = """\
failure_threshold = 0
intervall = 2
interval = "5 parsecs"

[Cloudflare]
dns_domain = "exa mple"
ip_addresses = ["300.1.1.1"]
ttl = 5

[Members]
announce_interval = "1ns"
max_clock_skew = 1e-300
"""
BROKEN_KEYS = {
    "failure_threshold": "must be between 1 and 100, not 0",
    "intervall": "unknown key (did you mean 'interval'?)",
    "interval": "invalid duration '5 parsecs'",
    "Cloudflare.hostnames": "required with ip_addresses",
    "Cloudflare.ip_addresses[0]": "'300.1.1.1' is not a valid IPv4 or IPv6 address",
    "Cloudflare.ttl": "must be 1 (automatic) or between 30 and 86400 seconds",
    "Cloudflare.dns_domain": "'exa mple' is not a valid DNS domain name",
    "Members.announce_interval": "must be between 1s and 1h, not 1ns: shorter makes every",
    "Members.max_clock_skew": "must be between 1s and 10m, not 1e-300s: shorter rejects",
}


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    """Assert that neither stream shows a Python traceback."""
    assert "Traceback" not in result.stderr + result.stdout
    assert 'File "' not in result.stderr


def write(tmp_path: Path, text: str, name: str = "goavail.toml") -> str:
    """Write a config file into ``tmp_path``; return its path as text."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- version and help --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(flag: str) -> None:
    result = run_goavail(flag, console_script=True)
    assert result.returncode == 0
    assert result.stdout.strip() == f"goavail {__version__}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ((), ["monitor", "validate", "plan", "--version"]),
        (
            ("monitor",),
            [
                "--config-file",
                "--no-dry-run",
                "--debug",
                "--type",
                "--dns-provider",
                "--log-format",
            ],
        ),
        (("validate",), ["--config-file", "--dns-provider", "--type"]),
        (
            ("plan",),
            ["--config-file", "--dns-provider", "--type", "--json", "--detailed-exitcode"],
        ),
    ],
)
def test_help(command: tuple[str, ...], expected: list[str]) -> None:
    result = run_goavail(*command, "--help", env=WIDE, console_script=True)
    assert result.returncode == 0, result.stderr
    assert f"Usage: goavail {' '.join(command)}".rstrip() in result.stdout
    for option in expected:
        assert option in result.stdout


def test_no_arguments_shows_help() -> None:
    result = run_goavail(env=WIDE, console_script=True)
    assert result.returncode == 2  # a usage error, with the help text
    assert "Usage: goavail" in result.stdout + result.stderr
    assert "monitor" in result.stdout + result.stderr
    no_traceback(result)


# -- validate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-f", "goavail.toml"],
        ["-f", "examples/local.toml", "-p", "zonefile"],
        ["-f", "examples/local.toml"],  # the provider comes from its only section, [Zonefile]
        ["-f", "examples/pools.toml"],  # [[pools]] and [[names]] on the zone file
        ["-f", "tests/data/goavail-original.toml"],
        ["-f", "tests/data/goavail-original.toml", "-t", "tcp"],  # its `port` key
    ],
)
def test_validate_accepts_shipped_configs(args: list[str]) -> None:
    result = run_goavail("validate", *args)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_validate_lists_every_problem(tmp_path: Path) -> None:
    result = run_goavail("validate", "-f", write(tmp_path, BROKEN))
    assert result.returncode == 2
    no_traceback(result)
    assert f"invalid configuration ({len(BROKEN_KEYS)} problems)" in result.stderr
    lines = result.stderr.splitlines()
    for key, message in BROKEN_KEYS.items():
        assert any(line.strip().startswith(f"- {key}: {message}") for line in lines), (
            key,
            result.stderr,
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval = \n", "TOML syntax error"),
        ("[Cloudflare]\ndns_domain = 'example.com'\nhostnames = ['www']\n", "ip_addresses"),
    ],
)
def test_validate_rejects_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    result = run_goavail("validate", "-f", write(tmp_path, text))
    assert result.returncode == 2
    assert expected in result.stderr
    no_traceback(result)


def test_validate_missing_file(tmp_path: Path) -> None:
    result = run_goavail("validate", "-f", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "nope.toml" in result.stderr
    no_traceback(result)


def test_validate_tcp_needs_port(tmp_path: Path) -> None:
    config = write(tmp_path, cloudflare_toml(["127.20.30.1"]))
    result = run_goavail("validate", "-f", config, "-t", "tcp")
    assert result.returncode == 2
    assert "port: required by --type tcp" in result.stderr


# -- monitor start-up errors ---------------------------------------------------------------------


def test_monitor_with_broken_config_exits_2(tmp_path: Path) -> None:
    result = run_goavail("monitor", "-f", write(tmp_path, BROKEN), "--no-dry-run", timeout=15)
    assert result.returncode == 2
    no_traceback(result)
    for key in BROKEN_KEYS:
        assert f"- {key}: " in result.stderr


def test_route53_section_of_the_original_validates() -> None:
    result = run_goavail("validate", "-f", "tests/data/goavail-original.toml", "-p", "route53")
    assert result.returncode == 0, result.stderr
    assert "names test.example.com, provider route53" in result.stdout
    no_traceback(result)


def test_route53_unusable_aws_profile_exits_2(tmp_path: Path) -> None:
    result = run_goavail(
        "monitor",
        "-f",
        "tests/data/goavail-original.toml",
        "-p",
        "route53",
        env={
            "AWS_PROFILE": "goavail-no-such-profile",
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    assert result.returncode == 2
    assert "goavail-no-such-profile" in result.stderr
    no_traceback(result)


RFC2136_SIGNED = """\
[RFC2136]
server = "127.0.0.1"
zone = "example.test"
tsig_key_name = "goavail-key"
hostnames = ["www"]
ip_addresses = ["127.20.136.2", "2001:db8:136::2"]
"""


def test_rfc2136_section_validates(tmp_path: Path) -> None:
    result = run_goavail("validate", "-f", write(tmp_path, RFC2136_SIGNED), "-p", "rfc2136")
    assert result.returncode == 0, result.stderr
    assert "2 target(s), names www.example.test, provider rfc2136" in result.stdout
    no_traceback(result)


@pytest.mark.parametrize("command", ["monitor", "plan"])
@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "GOAVAIL_TSIG_SECRET is not set"), ("not base64!", "not valid base64")],
)
def test_rfc2136_tsig_secret_missing_or_invalid_exits_2(
    tmp_path: Path, command: str, secret: str | None, message: str
) -> None:
    env = {} if secret is None else {"GOAVAIL_TSIG_SECRET": secret}
    config = write(tmp_path, RFC2136_SIGNED)
    result = run_goavail(command, "-f", config, "-p", "rfc2136", env=env, timeout=15)
    assert result.returncode == 2
    assert message in result.stderr and "goavail-key." in result.stderr
    assert "not base64!" not in result.stderr
    no_traceback(result)


@pytest.mark.parametrize("command", ["monitor", "plan"])
def test_missing_cloudflare_credentials(tmp_path: Path, command: str) -> None:
    config = write(tmp_path, cloudflare_toml(["127.20.30.2"]))
    result = run_goavail(command, "-f", config, timeout=15)  # no credentials in the env
    assert result.returncode == 2
    for variable in ("CLOUDFLARE_API_TOKEN", "CF_API_KEY", "CF_API_EMAIL"):
        assert variable in result.stderr
    no_traceback(result)


def test_incomplete_global_key_credentials(tmp_path: Path) -> None:
    config = write(tmp_path, cloudflare_toml(["127.20.30.3"]))
    result = run_goavail("monitor", "-f", config, env={"CF_API_KEY": "k" * 37}, timeout=15)
    assert result.returncode == 2
    assert "CF_API_KEY is set but CF_API_EMAIL is not" in result.stderr
    assert "k" * 37 not in result.stderr
    no_traceback(result)


# -- plan ------------------------------------------------------------------------------------------


@pytest.fixture
def plan_setup(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> tuple[str, dict[str, str]]:
    """Targets a (up, in DNS), b (blackholed, in DNS) and c (up, not in DNS)."""
    for address in ("127.20.31.1", "127.20.31.2"):
        stub.add_record(ZONE, WWW, "A", address)
    nft.blackhole("127.20.31.2")
    config = write(tmp_path, cloudflare_toml(["127.20.31.1", "127.20.31.2", "127.20.31.3"]))
    return config, stub_env(stub)


def test_plan_prints_changes_and_writes_nothing(
    plan_setup: tuple[str, dict[str, str]], stub: CloudflareStub
) -> None:
    config, env = plan_setup
    before = stub.records(ZONE)
    result = run_goavail("plan", "-f", config, env=env)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["127.20.31.2", "down", "0/2", "timeout"] in rows
    assert ["127.20.31.1", "up", "2/2"] in rows
    assert ["delete", WWW, "A", "127.20.31.2"] in [row[:4] for row in rows]
    assert ["create", WWW, "A", "127.20.31.3"] in [row[:4] for row in rows]
    assert not any(row[:1] in (["delete"], ["create"]) and row[3] == "127.20.31.1" for row in rows)
    assert stub.count(method="GET") > 0
    assert write_requests(stub) == 0
    assert stub.records(ZONE) == before


def test_plan_json(plan_setup: tuple[str, dict[str, str]], stub: CloudflareStub) -> None:
    config, env = plan_setup
    result = run_goavail("plan", "-f", config, "--json", env=env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    states = {t["address"]: t["state"] for t in plan["targets"]}
    assert states == {"127.20.31.1": "up", "127.20.31.2": "down", "127.20.31.3": "up"}
    changes = {(c["action"], c["name"], c["type"], c["address"]) for c in plan["changes"]}
    assert changes == {
        ("delete", WWW, "A", "127.20.31.2"),
        ("create", WWW, "A", "127.20.31.3"),
    }
    assert plan["fail_open"] == []
    assert write_requests(stub) == 0


def test_plan_shows_fail_open(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    stub.add_record(ZONE, WWW, "A", "127.20.32.1")
    nft.blackhole("127.20.32.1", "127.20.32.2")
    config = write(tmp_path, cloudflare_toml(["127.20.32.1", "127.20.32.2"]))
    result = run_goavail("plan", "-f", config, env=stub_env(stub))
    assert result.returncode == 0, result.stderr
    assert "WARNING: fail-open for www.example.com A" in result.stdout
    rows = [line.split()[:4] for line in result.stdout.splitlines()]
    assert ["create", WWW, "A", "127.20.32.2"] in rows  # restored, not withdrawn
    assert not any(row[:1] == ["delete"] for row in rows)
    assert write_requests(stub) == 0


@pytest.mark.parametrize("flags", [(), ("--detailed-exitcode",)])
def test_plan_with_unreachable_api_exits_1(tmp_path: Path, flags: tuple[str, ...]) -> None:
    config = write(tmp_path, cloudflare_toml(["127.20.33.1"]))
    env = {
        "CLOUDFLARE_BASE_URL": "http://127.0.0.1:9/client/v4",  # nothing listens (discard)
        "CLOUDFLARE_API_TOKEN": "unreachable-token-1234",
    }
    result = run_goavail("plan", "-f", config, *flags, env=env)
    assert result.returncode == 1
    assert "connection error" in result.stderr
    assert "unreachable-token-1234" not in result.stderr + result.stdout
    no_traceback(result)


def test_plan_zonefile(tmp_path: Path, nft: Nft) -> None:
    text = (REPO / "examples" / "example.test.zone").read_text()
    text = text.replace("IN A    127.0.0.2 ", "IN A    127.20.34.2 ")
    zone = tmp_path / "example.test.zone"
    zone.write_text(text)
    nft.blackhole("127.20.34.2")
    config = write(
        tmp_path,
        """\
failure_threshold = 2
interval = "200ms"
timeout = "150ms"

[Zonefile]
path = "example.test.zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["127.20.34.2", "127.20.34.3"]
""",
    )
    result = run_goavail("plan", "-f", config, "-p", "zonefile", "--json")
    assert result.returncode == 0, result.stderr
    changes = {(c["action"], c["address"]) for c in json.loads(result.stdout)["changes"]}
    assert changes == {("delete", "127.20.34.2"), ("create", "127.20.34.3")}
    assert zone.read_text() == text


def test_plan_and_validate_apply_the_overrides_file(tmp_path: Path) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text(
        "$ORIGIN example.test.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 300\n"
        "@ 3600 IN NS ns1\nns1 3600 IN A 127.0.0.1\n"
        "www 60 IN A 127.20.35.1\nwww 60 IN A 127.20.35.2\n"
    )
    (tmp_path / "overrides.toml").write_text('"127.20.35.2" = { mode = "down", reason = "r" }\n')
    config = write(
        tmp_path,
        """\
failure_threshold = 1
interval = "200ms"
timeout = "150ms"
overrides_file = "overrides.toml"

[Zonefile]
path = "example.test.zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["127.20.35.1", "127.20.35.2"]
""",
    )
    result = run_goavail("validate", "-f", config, "-p", "zonefile")
    assert result.returncode == 0, result.stderr
    assert "1 override(s)" in result.stdout
    result = run_goavail("plan", "-f", config, "-p", "zonefile", "--json")
    assert result.returncode == 0, result.stderr
    changes = [
        (c["action"], c["address"], c["reason"]) for c in json.loads(result.stdout)["changes"]
    ]
    assert changes == [("delete", "127.20.35.2", "target 127.20.35.2 down (override)")]
    (tmp_path / "overrides.toml").write_text('"127.20.35.2" = "sideways"\n')
    for command in ("validate", "plan", "monitor"):
        result = run_goavail(command, "-f", config, "-p", "zonefile")
        assert result.returncode == 2
        assert "overrides.toml" in result.stderr and "'sideways' is not one of" in result.stderr
        no_traceback(result)


# -- the provider when -p is not given -----------------------------------------------------------


def test_validate_infers_the_provider_of_the_only_section() -> None:
    result = run_goavail("validate", "-f", "examples/local.toml")
    assert result.returncode == 0, result.stderr
    assert "provider zonefile (from [Zonefile], the file's only provider section)" in result.stdout


def test_validate_keeps_the_original_default_for_several_sections() -> None:
    # The Go original's own example has [Cloudflare] and [Route53]: cloudflare, as there.
    result = run_goavail("validate", "-f", "tests/data/goavail-original.toml")
    assert result.returncode == 0, result.stderr
    assert "provider cloudflare (the default; the file has [Cloudflare], [Route53]" in result.stdout


@pytest.mark.parametrize("command", ["validate", "plan", "monitor"])
def test_an_explicit_provider_still_wins_and_a_mismatch_says_what_the_file_has(
    command: str,
) -> None:
    result = run_goavail(command, "-f", "examples/local.toml", "-p", "route53", timeout=15)
    assert result.returncode == 2
    assert (
        "Route53: section missing (required by --dns-provider route53); "
        "the file has [Zonefile]: use --dns-provider zonefile"
    ) in result.stderr
    no_traceback(result)


def test_no_provider_section_and_no_option_names_the_sections(tmp_path: Path) -> None:
    result = run_goavail("validate", "-f", write(tmp_path, "interval = 2\n"))
    assert result.returncode == 2
    assert "Cloudflare: section missing (required by --dns-provider cloudflare)" in result.stderr
    assert "no provider section (one of [Cloudflare], [RFC2136], [Route53], [Zonefile])" in (
        result.stderr
    )


def test_monitor_infers_the_provider_and_logs_its_pid_for_sighup(tmp_path: Path) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text((REPO / "examples" / "example.test.zone").read_text())
    config = zonefile_toml(["127.20.37.1"], zone)
    with GoavailProcess(tmp_path, config) as proc:  # no -p: [Zonefile] is the only section
        line = proc.wait_for(
            r"\(pid \d+, SIGHUP to reload\) starting: 1 targets, .*provider zonefile"
        )
        match = re.search(r"\(pid (\d+), SIGHUP to reload\)", line)
        assert match is not None and int(match.group(1)) == proc.pid
        since = proc.mark()
        proc.signal(signal.SIGHUP)  # to the pid the line gives
        proc.wait_for(r"SIGHUP: reloading", since=since)
        assert proc.stop() == 0


# -- plan --detailed-exitcode ----------------------------------------------------------------------


PLAN_ZONE = (
    "$ORIGIN example.test.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 300\n"
    "@ 3600 IN NS ns1\nns1 3600 IN A 127.0.0.1\nwww 60 IN A 127.20.38.1\n"
)


def plan_config(tmp_path: Path, addresses: list[str]) -> str:
    """A [Zonefile] config (no -p needed) whose zone holds www A 127.20.38.1 only."""
    (tmp_path / "example.test.zone").write_text(PLAN_ZONE)
    return write(tmp_path, zonefile_toml(addresses, tmp_path / "example.test.zone"))


def test_plan_detailed_exitcode_no_changes_is_0(tmp_path: Path) -> None:
    config = plan_config(tmp_path, ["127.20.38.1"])  # up and in DNS: nothing to do
    result = run_goavail("plan", "-f", config, "--detailed-exitcode")
    assert result.returncode == 0, result.stderr
    assert "No changes" in result.stdout


@pytest.mark.parametrize(("flags", "code"), [((), 0), (("--detailed-exitcode",), 2)])
def test_plan_changes_pending_is_2_only_with_detailed_exitcode(
    tmp_path: Path, flags: tuple[str, ...], code: int
) -> None:
    config = plan_config(tmp_path, ["127.20.38.1", "127.20.38.2"])  # .2 is up, not in DNS
    result = run_goavail("plan", "-f", config, "--json", *flags)
    assert result.returncode == code, result.stderr
    changes = [(c["action"], c["address"]) for c in json.loads(result.stdout)["changes"]]
    assert changes == [("create", "127.20.38.2")]
    assert (tmp_path / "example.test.zone").read_text() == PLAN_ZONE  # plan writes nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-f", "BROKEN"), "invalid configuration"),
        (("-f", "BROKEN", "--dns-provider", "bogus"), "'bogus' is not one of"),
        (("-f", "BROKEN", "--no-such-option"), "No such option"),
        (("-f", "NOPE"), "cannot read"),
    ],
)
@pytest.mark.parametrize(("flags", "code"), [((), 2), (("--detailed-exitcode",), 1)])
def test_plan_errors_are_1_with_detailed_exitcode(
    tmp_path: Path, args: tuple[str, ...], message: str, flags: tuple[str, ...], code: int
) -> None:
    files = {"BROKEN": write(tmp_path, BROKEN), "NOPE": str(tmp_path / "nope.toml")}
    argv = [files.get(a, a) for a in args]
    result = run_goavail("plan", *flags, *argv, env=WIDE)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    no_traceback(result)
