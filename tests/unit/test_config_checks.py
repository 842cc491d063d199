"""Configuration of ``[[checks]]``, ``hooks_dir`` and ``hook_timeout``: a config mixing
every check type validates with its defaults resolved, and every bad combination is
a clear error at its key path (all of them at once)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from goavail.checks.multi import check_problems, describe_check
from goavail.compose import load_checked
from goavail.config import Config, ConfigError, check_runtime, load_config
from goavail.options import Options

ZONE = """
[Zonefile]
path = "zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["192.0.2.1"]
"""

MIXED = """
interval = 2
failure_threshold = 3
rise_threshold = 2
port = 8080

[[checks]]
id = "ping"
type = "icmp"

[[checks]]
id = "app-port"
type = "tcp"
interval = "1s"

[[checks]]
id = "web"
type = "http"
path = "/healthz"
host = "www.example.test"
expected_status = [200, 204]
body_contains = "ok"
fall = 2

[[checks]]
id = "tls"
type = "https"
interval = "10s"
timeout = "3s"
host = "App.Example.Test."
method = "HEAD"
expected_status = 204
tls_verify = false
rise = 5

[[checks]]
id = "db"
type = "script"
command = ["bin/check-db", "--fast"]
timeout = "500ms"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "goavail.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


def test_no_checks_by_default(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.checks == []
    assert config.hooks_dir is None
    assert config.hook_timeout == 10.0


def test_mixed_checks_validate_with_defaults_resolved(tmp_path: Path) -> None:
    config = load(tmp_path, MIXED)
    ping, port, web, tls, db = config.checks
    table = [
        (c.id, c.type, c.interval, c.timeout, c.fall, c.rise, c.port)
        for c in (ping, port, web, tls, db)
    ]
    assert table == [
        ("ping", "icmp", 2.0, 1.0, 3, 2, None),  # top-level interval/timeout/thresholds
        ("app-port", "tcp", 1.0, 1.0, 3, 2, 8080),  # port from the top level
        ("web", "http", 2.0, 1.0, 2, 2, 80),  # rise follows the entry's own fall
        ("tls", "https", 10.0, 3.0, 3, 5, 443),
        ("db", "script", 2.0, 0.5, 3, 2, None),
    ]
    assert (web.path, web.method, web.host, web.expected_status, web.body_contains) == (
        "/healthz",
        "GET",
        "www.example.test",
        [200, 204],
        "ok",
    )
    assert web.tls_verify is None  # https only
    assert (tls.path, tls.method, tls.host, tls.expected_status, tls.tls_verify) == (
        "/",
        "HEAD",
        "app.example.test",  # lower case, no trailing dot
        [204],
        False,
    )
    assert db.command == [str(tmp_path / "bin" / "check-db"), "--fast"]  # relative to the file


@pytest.mark.parametrize(
    ("text", "interval", "timeout"),
    [
        ("interval = 5\n", 5.0, 1.0),  # timeout: the top-level timeout
        ('interval = "300ms"\n', 0.3, 0.3),  # ... at most the check's interval
        ('timeout = "2s"\n', 2.0, 2.0),  # interval: the top-level interval
    ],
)
def test_check_timing_defaults(tmp_path: Path, text: str, interval: float, timeout: float) -> None:
    config = load(tmp_path, f'[[checks]]\nid = "a"\ntype = "icmp"\n{text}')
    assert (config.checks[0].interval, config.checks[0].timeout) == (interval, timeout)


def test_https_verifies_by_default(tmp_path: Path) -> None:
    config = load(tmp_path, '[[checks]]\nid = "a"\ntype = "https"\nhost = "a.example"\n')
    assert config.checks[0].tls_verify is True
    assert config.checks[0].port == 443


def test_command_names_are_kept(tmp_path: Path) -> None:
    config = load(tmp_path, '[[checks]]\nid = "a"\ntype = "script"\ncommand = ["check_db", "x"]\n')
    assert config.checks[0].command == ["check_db", "x"]  # looked up in PATH, not the dir


def test_hooks_keys(tmp_path: Path) -> None:
    config = load(tmp_path, 'hooks_dir = "hooks.d"\nhook_timeout = "2500ms"\n')
    assert config.hooks_dir == tmp_path / "hooks.d"
    assert config.hook_timeout == 2.5


CHECK = '[[checks]]\nid = "c"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[checks]]\ntype = "icmp"\n', "checks[0].id: field required"),
        ('[[checks]]\nid = "c"\n', "checks[0].type: field required"),
        (CHECK + 'type = "udp"\n', "checks[0].type: Input should be 'icmp', 'tcp', 'http',"),
        ('[[checks]]\nid = "no spaces"\ntype = "icmp"\n', "checks[0].id: 'no spaces' must be"),
        (CHECK + 'type = "icmp"\nfall = 0\n', "checks[0].fall: must be between 1 and 100, not 0"),
        (CHECK + 'type = "icmp"\nrise = 0\n', "checks[0].rise: must be between 1 and 100, not 0"),
        (CHECK + 'type = "icmp"\ninterval = "0s"\n', "checks[0].interval: must be > 0 seconds"),
        (
            CHECK + 'type = "icmp"\ninterval = "1s"\ntimeout = "2s"\n',
            "checks[0].timeout: must be ≤ interval (1.0 s)",
        ),
        (
            CHECK + 'type = "icmp"\ntimeout = "3s"\n',
            "checks[0].timeout: must be ≤ interval (2.0 s, the top-level interval)",
        ),
        (CHECK + 'type = "tcp"\n', "checks[0].port: required for type 'tcp'"),
        (CHECK + 'type = "tcp"\nport = 0\n', "checks[0].port: must be ≥ 1"),
        (CHECK + 'type = "http"\nport = 65536\n', "checks[0].port: must be ≤ 65535"),
        (CHECK + 'type = "http"\npath = "healthz"\n', "checks[0].path: 'healthz' must start"),
        (CHECK + 'type = "http"\npath = "/a b"\n', "checks[0].path: '/a b' must not contain"),
        (CHECK + 'type = "http"\nmethod = "get"\n', "checks[0].method: Input should be"),
        (
            CHECK + 'type = "https"\nhost = "https://x.example"\n',
            "checks[0].host: 'https://x.example' is not a valid host name",
        ),
        (CHECK + 'type = "http"\nhost = "x.example:8080"\n', "checks[0].host:"),
        (
            CHECK + 'type = "http"\nexpected_status = 99\n',
            "checks[0].expected_status: 99 is not an HTTP status code (100-599)",
        ),
        (
            CHECK + 'type = "http"\nexpected_status = [200, 600]\n',
            "checks[0].expected_status[1]: 600 is not an HTTP status code (100-599)",
        ),
        (
            CHECK + 'type = "http"\nexpected_status = []\n',
            "checks[0].expected_status: must have at least 1 item",
        ),
        (
            CHECK + 'type = "http"\nexpected_status = "200"\n',
            "checks[0].expected_status: must be an array, not a string",
        ),
        (CHECK + 'type = "http"\nbody_contains = ""\n', "checks[0].body_contains: must not be"),
        (CHECK + 'type = "https"\ntls_verify = "no"\n', "checks[0].tls_verify: must be true or"),
        (CHECK + 'type = "script"\n', "checks[0].command: required for type 'script'"),
        (
            CHECK + 'type = "script"\ncommand = "/bin/check --fast"\n',
            "checks[0].command: must be an array of strings (the program and its arguments",
        ),
        (CHECK + 'type = "script"\ncommand = []\n', "checks[0].command: must not be empty"),
        (
            CHECK + 'type = "script"\ncommand = ["", "x"]\n',
            "checks[0].command[0]: the program must not be empty",
        ),
        (
            CHECK + 'type = "script"\ncommand = ["/bin/x", 1]\n',
            "checks[0].command[1]: must be a string, not an integer",
        ),
        # keys of other types
        (
            CHECK + 'type = "script"\ncommand = ["/bin/true"]\npath = "/x"\n',
            "checks[0].path: only for type 'http' or 'https', not 'script'",
        ),
        (CHECK + 'type = "icmp"\nport = 80\n', "checks[0].port: only for type 'tcp', 'http' or"),
        (CHECK + 'type = "http"\ntls_verify = false\n', "checks[0].tls_verify: only for type"),
        (CHECK + 'type = "http"\nca_file = "ca.pem"\n', "checks[0].ca_file: only for type 'https'"),
        (CHECK + 'type = "tcp"\nport = 1\nhost = "a.b"\n', "checks[0].host: only for type 'http'"),
        (
            CHECK + 'type = "http"\ncommand = ["/bin/true"]\n',
            "checks[0].command: only for type 'script', not 'http'",
        ),
        (CHECK + 'type = "icmp"\nbody_contains = "x"\n', "checks[0].body_contains: only for"),
        (CHECK + 'type = "icmp"\nexpected_status = 200\n', "checks[0].expected_status: only for"),
        (CHECK + 'type = "icmp"\nmethod = "GET"\n', "checks[0].method: only for type"),
        (CHECK + 'type = "icmp"\nurl = "/x"\n', "checks[0].url: unknown key"),
        ('checks = "ping"\n', "checks: must be an array"),
        ('hooks_dir = ""\n', "hooks_dir: must not be empty"),
        ("hooks_dir = 1\n", "hooks_dir: must be a string (a file path), not an integer"),
        ('hook_timeout = "0s"\n', "hook_timeout: must be > 0 seconds"),
    ],
)
def test_each_bad_key_is_reported_at_its_path(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_duplicate_ids(tmp_path: Path) -> None:
    text = '[[checks]]\nid = "a"\ntype = "icmp"\n' * 3
    assert problems_of(tmp_path, text) == [
        "checks[1].id: 'a' is used twice (also checks[0])",
        "checks[2].id: 'a' is used twice (also checks[0])",
    ]


def test_every_problem_of_every_check_at_once(tmp_path: Path) -> None:
    text = """
interval = "0s"

[[checks]]
id = "web"
type = "http"
path = "x"
tls_verify = true
command = "check"

[[checks]]
id = "web"
type = "script"
command = ["/bin/true"]
port = 3
expected_status = 700
"""
    assert problems_of(tmp_path, text) == [
        "interval: must be > 0 seconds",
        "checks[0].path: 'x' must start with '/'",
        "checks[0].tls_verify: only for type 'https', not 'http'",
        "checks[0].command: only for type 'script', not 'http'",
        "checks[1].id: 'web' is used twice (also checks[0])",
        "checks[1].port: only for type 'tcp', 'http' or 'https', not 'script'",
        "checks[1].expected_status: only for type 'http' or 'https', not 'script'",
    ]


# -------------------------------------------------------------------- machine-dependent checks


def executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_runtime_problems_of_checks_and_hooks(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    (tmp_path / "plain").write_text("#!/bin/sh\n")
    text = f"""
hooks_dir = "not-a-dir"

[[checks]]
id = "a"
type = "script"
command = ["./missing"]

[[checks]]
id = "b"
type = "script"
command = ["./plain"]

[[checks]]
id = "c"
type = "script"
command = ["no-such-program-goavail"]

[[checks]]
id = "d"
type = "https"
ca_file = "nowhere.pem"
{ZONE}"""
    path = write(tmp_path, text)
    options = Options(path, provider="zonefile")
    with pytest.raises(ConfigError) as info:
        load_checked(options)
    assert info.value.problems == [
        f"checks[0].command[0]: '{tmp_path / 'missing'}' does not exist or is not a file",
        f"checks[1].command[0]: '{tmp_path / 'plain'}' is not executable",
        "checks[2].command[0]: 'no-such-program-goavail' not found in PATH",
        f"checks[3].ca_file: '{tmp_path / 'nowhere.pem'}' is not a readable file",
        f"hooks_dir: '{tmp_path / 'not-a-dir'}' is not a directory",
    ]


def test_missing_hooks_dir(tmp_path: Path) -> None:
    path = write(tmp_path, 'hooks_dir = "hooks.d"\n' + ZONE)
    with pytest.raises(ConfigError) as info:
        load_checked(Options(path, provider="zonefile"))
    assert info.value.problems == [f"hooks_dir: '{tmp_path / 'hooks.d'}' does not exist"]


def test_runtime_checks_pass(tmp_path: Path) -> None:
    (tmp_path / "hooks.d").mkdir()
    executable(tmp_path / "check")
    text = (
        'hooks_dir = "hooks.d"\n[[checks]]\nid = "a"\ntype = "script"\ncommand = ["./check"]\n'
        '[[checks]]\nid = "b"\ntype = "script"\ncommand = ["sh", "-c", "true"]\n' + ZONE
    )
    config = load_checked(Options(write(tmp_path, text), provider="zonefile"))
    assert check_problems(config.checks) == []


def test_type_tcp_needs_no_top_level_port_with_checks(tmp_path: Path) -> None:
    config = load(tmp_path, '[[checks]]\nid = "a"\ntype = "icmp"\n' + ZONE)
    assert check_runtime(config, provider="zonefile", probe_type="tcp") == []
    config = load(tmp_path, ZONE)
    assert check_runtime(config, provider="zonefile", probe_type="tcp") == [
        "port: required by --type tcp"
    ]


def test_describe_check(tmp_path: Path) -> None:
    ping, port, web, tls, db = load(tmp_path, MIXED).checks
    assert [describe_check(c) for c in (ping, port, web, tls, db)] == [
        "icmp echo",
        "tcp connect to <target>:8080",
        "http GET http://<target>:80/healthz (Host www.example.test), status 200/204, "
        "body contains 'ok'",
        "https HEAD https://<target>:443/ (Host and SNI app.example.test), status 204, "
        "certificate NOT verified",
        f"script {tmp_path / 'bin' / 'check-db'} --fast <target>",
    ]


def test_full_file_and_documented_example() -> None:
    data = Path(__file__).resolve().parent.parent / "data"
    config = load_config(data / "goavail-full.toml")
    assert (config.hooks_dir, config.hook_timeout) == (data / "hooks.d", 5.0)
    assert [(c.id, c.type, c.interval, c.timeout, c.fall, c.rise) for c in config.checks] == [
        ("ping", "icmp", 1.0, 0.5, 2, 4),
        ("smtp", "tcp", 0.5, 0.25, 3, 2),
        ("app", "https", 0.5, 0.25, 3, 2),
        ("plain", "http", 0.5, 0.25, 3, 2),
        ("replica", "script", 0.5, 0.25, 3, 2),
    ]
    app = config.checks[2]
    assert (app.port, app.path, app.method, app.host, app.ca_file) == (
        8443,
        "/healthz?deep=1",
        "HEAD",
        "www.example.com",
        data / "ca" / "internal.pem",
    )
    assert config.checks[3].expected_status == [200]
    # the example in the repository documents the keys in comments only
    assert load_config(Path(__file__).resolve().parents[2] / "goavail.toml").checks == []


def test_commented_examples_of_the_documented_file_are_valid(tmp_path: Path) -> None:
    """Uncommenting the [[checks]] and hook examples of goavail.toml gives a valid file."""
    example = (Path(__file__).resolve().parents[2] / "goavail.toml").read_text()
    start = example.index("# hooks_dir = ")
    end = example.index("# Cluster mode: several agents")
    toml_line = re.compile(r"# (\[\[checks\]\]|[a-z_]+ = .*)")
    block = "\n".join(
        match.group(1)
        for line in example[start:end].splitlines()
        if (match := toml_line.fullmatch(line))
    )
    config = load(tmp_path, block.replace('"/etc/goavail/hooks.d"', '"."'))
    assert [c.id for c in config.checks] == ["ping", "app", "replica", "smtp"]
    assert config.hooks_dir == tmp_path
    assert config.checks[1].ca_file == Path("/etc/goavail/internal-ca.pem")
