"""The overrides file (parse, render, load, save) and this agent's override table."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from goavail.config import ConfigError
from goavail.decision import DecisionStage, Override
from goavail.dns.audit import AuditLog
from goavail.health import State
from goavail.overrides import (
    MAX_REASON,
    OverrideEntry,
    Overrides,
    load_overrides,
    parse_overrides,
    render_overrides,
    save_overrides,
)

DOWN, UP = Override.DOWN, Override.UP


def parse(text: str) -> dict[str, OverrideEntry]:
    return parse_overrides(tomllib.loads(text))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value.problems


def test_both_forms_and_canonical_addresses() -> None:
    entries = parse(
        """
        "192.0.2.10" = "down"
        "2001:DB8::0010" = { mode = "UP", reason = "DB migration, OPS-42" }
        "192.0.2.11" = { mode = "down", since = 2026-11-21T03:00:00Z }
        "192.0.2.12" = { mode = "down", since = "2026-11-21T04:00:00+01:00" }
        "192.0.2.13" = "auto"
        """
    )
    assert entries == {
        "192.0.2.10": OverrideEntry(DOWN),
        "2001:db8::10": OverrideEntry(UP, "DB migration, OPS-42"),
        "192.0.2.11": OverrideEntry(DOWN, "", "2026-11-21T03:00:00Z"),
        "192.0.2.12": OverrideEntry(DOWN, "", "2026-11-21T03:00:00Z"),
    }


def test_an_empty_file_is_no_override() -> None:
    assert parse("# nothing yet\n") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"www" = "down"', "\"www\": 'www' is not an IP address"),
        ('"192.0.2.1" = "drain"', "\"192.0.2.1\": 'drain' is not one of up, down, auto"),
        ('"192.0.2.1" = 1', '"192.0.2.1": 1 is not one of up, down, auto'),
        ('"192.0.2.1" = { mode = "sideways" }', "\"192.0.2.1\".mode: 'sideways' is not one of"),
        ('"192.0.2.1" = { reason = "x" }', '"192.0.2.1".mode: field required'),
        (
            '"192.0.2.1" = { mode = "down", until = "x" }',
            '"192.0.2.1".until: unknown key (expected mode, reason, since)',
        ),
        ('"192.0.2.1" = { mode = "down", reason = 5 }', '"192.0.2.1".reason: reason must be'),
        (
            '"192.0.2.1" = { mode = "down", reason = "a\\nb" }',
            '"192.0.2.1".reason: reason must be printable text',
        ),
        (
            f'"192.0.2.1" = {{ mode = "down", reason = "{"x" * (MAX_REASON + 1)}" }}',
            f"at most {MAX_REASON} characters",
        ),
        (
            '"192.0.2.1" = { mode = "down", since = 2026-11-21T03:00:00 }',
            '"192.0.2.1".since: since must have a time zone',
        ),
        (
            '"192.0.2.1" = { mode = "down", since = "yesterday" }',
            "is not an RFC 3339 time",
        ),
        ('"2001:db8::1" = "up"\n"2001:DB8::1" = "down"', "2001:db8::1 is listed twice"),
    ],
)
def test_problems_name_the_entry(text: str, expected: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected) or expected in found[0], found


def test_every_problem_is_listed_at_once() -> None:
    found = problems('"a" = "down"\n"192.0.2.1" = "nope"\n"192.0.2.2" = { mode = "up", x = 1 }')
    assert len(found) == 3


@pytest.mark.parametrize(
    "reason",
    ["", "plain", 'quotes " and \\ backslash', "ünïcødé — and 𝄞"],
)
def test_render_reads_back(reason: str) -> None:
    entries = {
        "192.0.2.2": OverrideEntry(DOWN, reason.strip(), "2026-11-21T03:00:00Z"),
        "2001:db8::1": OverrideEntry(UP),
        "192.0.2.10": OverrideEntry(UP, "x"),
    }
    text = render_overrides(entries)
    assert parse(text) == entries
    addresses = [line.split(" = ")[0] for line in text.splitlines() if not line.startswith("#")]
    assert addresses == [json.dumps(a) for a in ("192.0.2.2", "192.0.2.10", "2001:db8::1")]


def test_load_missing_file_and_no_path(tmp_path: Path) -> None:
    assert load_overrides(None) == {}
    assert load_overrides(tmp_path / "absent.toml") == {}


def test_load_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "overrides.toml"
    path.write_text('"192.0.2.1" = "maybe"\n')
    with pytest.raises(ConfigError) as info:
        load_overrides(path)
    assert info.value.path == path
    assert str(path) in str(info.value)
    path.write_text('"192.0.2.1" = \n')
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_overrides(path)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "overrides.toml"
    entries = {"192.0.2.1": OverrideEntry(DOWN, "disk swap", "2026-11-21T03:00:00Z")}
    save_overrides(path, entries)
    assert load_overrides(path) == entries
    assert [p.name for p in path.parent.iterdir()] == ["overrides.toml"]  # no temp file left


def test_save_failure_leaves_the_old_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(OSError):
        save_overrides(blocker / "overrides.toml", {"192.0.2.1": OverrideEntry(DOWN)})


# --------------------------------------------------------------------------- the table


class Recorder:
    def __init__(self) -> None:
        self.changed: list[str] = []

    def __call__(self, target: str) -> None:
        self.changed.append(target)


def make(path: Path | None) -> tuple[Overrides, DecisionStage, AuditLog, Recorder]:
    stage = DecisionStage()
    audit = AuditLog()
    recorder = Recorder()
    table = Overrides(stage, path, audit=lambda: audit, on_change=recorder)
    return table, stage, audit, recorder


def test_set_drains_persists_and_audits(tmp_path: Path) -> None:
    path = tmp_path / "overrides.toml"
    table, stage, audit, recorder = make(path)
    stage.update("192.0.2.1", State.UP)
    entry = table.set("192.0.2.1", DOWN, "disk swap")
    assert entry is not None and entry.mode is DOWN and entry.reason == "disk swap"
    datetime.strptime(entry.since, "%Y-%m-%dT%H:%M:%SZ")  # RFC 3339, UTC, to the second
    assert stage.effective == {"192.0.2.1": State.DOWN}
    assert load_overrides(path) == {"192.0.2.1": entry}
    assert recorder.changed == ["192.0.2.1"]
    record = audit.recent[-1]
    assert {k: record[k] for k in ("action", "target", "mode", "previous", "reason", "source")} == {
        "action": "override",
        "target": "192.0.2.1",
        "mode": "down",
        "previous": "auto",
        "reason": "disk swap",
        "source": "api",
    }
    assert table.set("192.0.2.1", Override.AUTO) is None
    assert stage.effective == {"192.0.2.1": State.UP}
    assert load_overrides(path) == {}
    assert audit.recent[-1]["mode"] == "auto" and audit.recent[-1]["previous"] == "down"


def test_set_that_cannot_be_saved_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    table, stage, audit, recorder = make(blocker / "overrides.toml")
    with pytest.raises(OSError):
        table.set("192.0.2.1", DOWN)
    assert table.entries == {} and stage.overrides == {}
    assert list(audit.recent) == [] and recorder.changed == []


def test_without_a_file_the_table_lives_in_memory() -> None:
    table, stage, _, _ = make(None)
    table.set("192.0.2.1", UP)
    assert stage.overrides == {"192.0.2.1": UP}


def test_replace_applies_only_differences() -> None:
    table, stage, audit, recorder = make(None)
    table.replace({"192.0.2.1": OverrideEntry(DOWN), "192.0.2.2": OverrideEntry(UP)}, source="file")
    assert recorder.changed == ["192.0.2.1", "192.0.2.2"]
    recorder.changed.clear()
    changed = table.replace(
        {"192.0.2.1": OverrideEntry(DOWN), "192.0.2.3": OverrideEntry(DOWN)}, source="file"
    )
    assert changed == ["192.0.2.2", "192.0.2.3"]
    assert stage.overrides == {"192.0.2.1": DOWN, "192.0.2.3": DOWN}
    assert [r["source"] for r in audit.recent] == ["file"] * 4
