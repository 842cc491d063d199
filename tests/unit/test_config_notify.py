"""Configuration of notifications and the heartbeat: slack_addr, [[notifications]],
quorum_alert_after, [Heartbeat] — defaults, values, every problem at its key path,
and webhook URLs (secrets) never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.config import Config, ConfigError, load_config
from goavail.notify import sink_settings

DATA = Path(__file__).resolve().parent.parent / "data"
TOKEN = "SECRETTOKEN42"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "goavail.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    for rendered in (str(info.value), repr(info.value)):
        assert TOKEN not in rendered
    return info.value.problems


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.notifications == []
    assert config.quorum_alert_after == 60.0
    assert config.heartbeat is None
    assert config.slack_url() is None
    assert sink_settings(config) == []


def test_original_file_has_no_sinks() -> None:
    assert sink_settings(load_config(DATA / "goavail-original.toml")) == []


def test_full_file() -> None:
    config = load_config(DATA / "goavail-full.toml")
    assert config.quorum_alert_after == 120.0
    assert config.slack_url() == "https://hooks.slack.invalid/services/T000/B000/XXXX"
    mm, hook = config.notifications
    assert (mm.type, mm.channel, mm.username) == ("mattermost", "ops", "goavail")
    assert (mm.timeout, mm.retries, mm.coalesce_window) == (3.0, 5, 10.0)
    assert (hook.type, hook.channel, hook.timeout, hook.retries, hook.coalesce_window) == (
        "webhook",
        None,
        5.0,
        3,
        2.0,
    )
    assert config.heartbeat is not None
    assert config.heartbeat.url.get_secret_value() == "https://hc-ping.example.invalid/0000-1111"
    assert (config.heartbeat.interval, config.heartbeat.timeout) == (30.0, 5.0)
    names = [(s.name, s.type) for s in sink_settings(config)]
    assert names == [
        ("slack_addr", "slack"),
        ("notifications[0]", "mattermost"),
        ("notifications[1]", "webhook"),
    ]


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("T000/B000/XXXX", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("/T000/B000/XXXX", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("https://hooks.slack.com/services/T1/B1/Y", "https://hooks.slack.com/services/T1/B1/Y"),
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
    ],
)
def test_slack_addr_forms(tmp_path: Path, value: str, url: str) -> None:
    config = load(tmp_path, f'slack_addr = "{value}"')
    assert config.slack_url() == url
    (settings,) = sink_settings(config)
    assert (settings.name, settings.type, settings.url) == ("slack_addr", "slack", url)
    assert url not in repr(settings)  # the URL carries the hook's token


def test_heartbeat_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, '[Heartbeat]\nurl = "http://127.0.0.1/ping"')
    assert config.heartbeat is not None
    assert (config.heartbeat.interval, config.heartbeat.timeout) == (60.0, 10.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'slack_addr = "ftp://hooks/{TOKEN}"', "slack_addr: must be an http:// or https:// URL"),
        (f'slack_addr = "T0/B0/{TOKEN} x"', "slack_addr: must be the part after https://"),
        (f'slack_addr = "https:///{TOKEN}"', "slack_addr: must be an http:// or https:// URL with"),
        ("quorum_alert_after = 0", "quorum_alert_after: must be > 0 seconds"),
        ('quorum_alert_after = "soon"', "quorum_alert_after: invalid duration 'soon'"),
        ("notifications = 1", "notifications: must be an array, not an integer"),
        ('[[notifications]]\ntype = "slack"', "notifications[0].url: field required"),
        (
            f'[[notifications]]\ntype = "teams"\nurl = "https://x.invalid/{TOKEN}"',
            "notifications[0].type: Input should be 'slack', 'mattermost' or 'webhook'",
        ),
        (
            f'[[notifications]]\ntype = "slack"\nurl = "mailto:{TOKEN}@x.invalid"',
            "notifications[0].url: must be an http:// or https:// URL",
        ),
        (
            f'[[notifications]]\ntype = "slack"\nurl = "https://x.invalid:99999/{TOKEN}"',
            "notifications[0].url: has an invalid port",
        ),
        (
            f'[[notifications]]\ntype = "slack"\nurl = " https://x.invalid/{TOKEN}"',
            "notifications[0].url: must be a URL without spaces",
        ),
        (
            '[[notifications]]\ntype = "slack"\nurl = ""',
            "notifications[0].url: must not be empty",
        ),
        (
            f'[[notifications]]\ntype = "webhook"\nurl = "https://x.invalid/{TOKEN}"\n'
            'channel = "ops"',
            "notifications[0].channel: only for type 'slack' or 'mattermost'",
        ),
        (
            f'[[notifications]]\ntype = "slack"\nurl = "https://x.invalid/{TOKEN}"\nretries = 11',
            "notifications[0].retries: must be between 0 and 10, not 11: more keeps",
        ),
        (
            f'[[notifications]]\ntype = "slack"\nurl = "https://x.invalid/{TOKEN}"\n'
            "coalesce_window = -1",
            "notifications[0].coalesce_window: must be > 0 seconds",
        ),
        (
            f'[[notifications]]\ntype = "slack"\nurl = "https://x.invalid/{TOKEN}"\nchanel = "ops"',
            "notifications[0].chanel: unknown key (did you mean 'channel'?)",
        ),
        ("[Heartbeat]\ninterval = 5", "Heartbeat.url: field required"),
        (
            f'[Heartbeat]\nurl = "https://x.invalid/{TOKEN}"\ninterval = 5\ntimeout = 6',
            "Heartbeat.timeout: must be ≤ interval (5.0 s)",
        ),
        (
            f'[Heartbeat]\nurl = "udp://x.invalid/{TOKEN}"',
            "Heartbeat.url: must be an http:// or https:// URL",
        ),
        (
            f'[Heartbeat]\nurl = "https://x.invalid/{TOKEN}"\nintervall = 5',
            "Heartbeat.intervall: unknown key (did you mean 'interval'?)",
        ),
    ],
)
def test_problem_at_key_path(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_at_once(tmp_path: Path) -> None:
    text = (
        "quorum_alert_after = 0\n"
        '[[notifications]]\ntype = "slack"\nurl = "ftp://x"\n'
        f'[[notifications]]\ntype = "webhook"\nurl = "https://x.invalid/{TOKEN}"\nretries = -1\n'
        "[Heartbeat]\nurl = 3\n"
    )
    assert sorted(problems_of(tmp_path, text)) == [
        "Heartbeat.url: must be a string, not an integer",
        "notifications[0].url: must be an http:// or https:// URL",
        "notifications[1].retries: must be between 0 and 10, not -1: a count is not negative",
        "quorum_alert_after: must be > 0 seconds",
    ]


def test_urls_never_in_repr(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f'slack_addr = "T0/B0/{TOKEN}"\n'
        f'[[notifications]]\ntype = "mattermost"\nurl = "https://mm.invalid/hooks/{TOKEN}"\n'
        f'[Heartbeat]\nurl = "https://hc.invalid/{TOKEN}"\n',
    )
    for text in (repr(config), str(config), str(config.model_dump()), repr(sink_settings(config))):
        assert TOKEN not in text
