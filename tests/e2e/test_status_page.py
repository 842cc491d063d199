"""The status page of the real ``goavail monitor``, rendered by headless Chromium.

For each state (healthy, a target down, fail-open, dry-run, and a busy "showcase"
used for the README's screenshot) goavail runs with the zone file provider and its
server on a free loopback port; once ``/api/status`` shows the state, Debian's
``chromium`` loads the page twice with a fresh profile: ``--dump-dom`` for the
assertions on the rendered content, ``--screenshot`` for ``tests/artifacts/``.
The page carries a Content-Security-Policy that forbids every script, so what
Chromium renders is what a browser without JavaScript shows.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    REPO,
    GoavailProcess,
    free_port,
    http,
    http_ok,
    wait_until,
    zonefile_toml,
)
from tests.netns import Nft

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
"""Screenshots land here (git-ignored); ``docs/status-page.png`` is a copy of
``status-showcase.png``."""
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1280,1600",
)


class PageText(HTMLParser):
    """Visible text of a rendered page: all of it, and per ``<tr id=...>`` row."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self._skip += 1
        if tag == "tr":
            self._row = dict(attrs).get("id")
            if self._row:
                self.rows[self._row] = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        words = " ".join(data.split())
        if words:
            self.parts.append(words)
            if self._row:
                self.rows[self._row].append(words)

    @property
    def text(self) -> str:
        return " ".join(self.parts)

    def row(self, address: str) -> str:
        return " ".join(self.rows[f"target-{address}"])


def chromium(url: str, workdir: Path, screenshot: Path) -> PageText:
    """Render ``url``: its DOM as text, and a screenshot (a fresh profile for each run)."""
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={workdir / 'profile-dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={workdir / 'profile-shot'}",
            f"--screenshot={screenshot}",
            url,
        ],
        capture_output=True,
        timeout=90,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    parsed = PageText()
    parsed.feed(dom)
    assert "<script" not in dom.lower()
    return parsed


@dataclass
class Scenario:
    """One state of the page: what goavail runs with, when it is reached, what shows."""

    addresses: tuple[str, ...]
    blackhole: tuple[str, ...] = ()
    live: bool = True
    overrides: str = ""
    seeded: bool = False
    """Start with every address already in the zone, as in an existing deployment."""
    node: str | None = None
    """``node_name`` (default: the host name)."""
    pools: str = ""
    """``[[pools]]`` and ``[[names]]`` beside the original's section."""
    path: str = "/"
    """The page's URL path and query (filters, pages)."""
    every_row: bool = True
    """Every target has its row on the page (False: the page shows one page of them)."""
    ready: Callable[[dict[str, Any]], bool] = lambda doc: True
    expect: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    rows: dict[str, list[str]] = field(default_factory=dict)


def by_state(doc: dict[str, Any]) -> dict[str, str]:
    return {t["address"]: t["state"] for t in doc["targets"]}


def settled(doc: dict[str, Any]) -> bool:
    return bool(doc["dns"]["converged"]) and doc["summary"]["pending_changes"] == 0


SCENARIOS: dict[str, Scenario] = {
    "healthy": Scenario(
        addresses=("127.22.1.1", "127.22.1.2"),
        ready=lambda doc: (
            settled(doc) and set(by_state(doc).values()) == {"up"} and bool(doc["audit"])
        ),
        expect=["2 up ✔", "0 down ✖", "✔ No warnings", "live (changes are made)", "DNS: converged"],
        absent=["DRY-RUN", "FAIL-OPEN"],
        rows={"127.22.1.1": ["✔ UP", "✔ publish", "ok in a row", "ms"]},
    ),
    "down": Scenario(
        addresses=("127.22.2.1", "127.22.2.2"),
        blackhole=("127.22.2.2",),
        ready=lambda doc: settled(doc) and by_state(doc)["127.22.2.2"] == "down",
        expect=["1 up ✔", "1 down ✖", "delete", "www.example.test A 127.22.2.2", "applied"],
        absent=["FAIL-OPEN", "No warnings"],
        rows={
            "127.22.2.2": ["✖ DOWN", "✖ withdraw", "failed in a row", "timeout"],
            "127.22.2.1": ["✔ UP", "✔ publish"],
        },
    ),
    "fail-open": Scenario(
        addresses=("127.22.3.1", "127.22.3.2"),
        blackhole=("127.22.3.1", "127.22.3.2"),
        ready=lambda doc: (
            set(by_state(doc).values()) == {"down"} and bool(doc["names"][0]["fail_open"])
        ),
        expect=[
            "FAIL-OPEN for www.example.test A: every configured address is down",
            "⚠ FAIL-OPEN A",
            "keeping 127.22.3.1, 127.22.3.2",
            "2 down ✖",
        ],
        rows={"127.22.3.1": ["✖ DOWN", "✖ withdraw"]},
    ),
    "dry-run": Scenario(
        addresses=("127.22.4.1", "127.22.4.2"),
        blackhole=("127.22.4.2",),
        live=False,
        ready=lambda doc: (
            settled(doc) and by_state(doc)["127.22.4.2"] == "down" and len(doc["audit"]) >= 2
        ),
        expect=[
            "DRY-RUN: goavail makes no DNS change",
            "DRY-RUN (no change is made)",
            "planned (dry-run)",
            "as goavail would have them",
        ],
        rows={"127.22.4.2": ["✖ DOWN"]},
    ),
    "showcase": Scenario(
        addresses=("127.22.5.1", "127.22.5.2", "127.22.5.3", "127.22.5.4"),
        blackhole=("127.22.5.3", "127.22.5.5", "127.22.5.6"),
        overrides='"127.22.5.2" = { mode = "down", reason = "kernel upgrade, OPS-1234" }\n',
        seeded=True,
        node="edge-1",
        # api.example.test: its primary pool "edge" is down, the backup "spare" serves
        pools=(
            '\n[[pools]]\nname = "edge"\naddresses = ["127.22.5.5", "127.22.5.6"]\n'
            '\n[[pools]]\nname = "spare"\naddresses = ["127.22.5.7"]\n'
            '\n[[names]]\nname = "api.example.test"\npools = ["edge", "spare"]\n'
        ),
        path="/?per_page=4",  # 7 targets: two pages; the problems fill the first
        every_row=False,
        ready=lambda doc: (
            settled(doc)
            and by_state(doc)["127.22.5.3"] == "down"
            and [n["answer"] for n in doc["names"]] == ["backup", "primary"]
        ),
        expect=[
            "Override down on 127.22.5.2 (held by this agent)",
            "kernel upgrade, OPS-1234",
            "Name or address contains",
            "Targets 1\N{EN DASH}4 of 7 · page 1 of 2",
            "next \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}",
            "⚠ backup spare serves instead of the primary",
            "1. edge (primary) · 0 up, 2 down",
            "2. spare (backup) ✔ serving · 1 up",
            "1 not on their primary ⚠",
        ],
        rows={
            "127.22.5.2": ["✔ UP", "✖ withdraw", "DOWN", "this agent: kernel upgrade, OPS-1234"],
            "127.22.5.3": ["✖ DOWN", "✖ withdraw"],
            "127.22.5.5": ["edge", "api.example.test", "✖ DOWN"],
            "127.22.5.6": ["✖ DOWN"],
        },
    ),
    "filtered": Scenario(
        addresses=("127.22.6.1", "127.22.6.2", "127.22.6.3"),
        blackhole=("127.22.6.2",),
        pools=(
            '\n[[pools]]\nname = "db"\naddresses = ["127.22.6.4"]\n'
            '\n[[names]]\nname = "db.example.test"\npools = ["db"]\n'
        ),
        path="/?state=down",
        every_row=False,
        ready=lambda doc: settled(doc) and by_state(doc)["127.22.6.2"] == "down",
        expect=[
            "Targets 1\N{EN DASH}1 of 1 matching (4 in all)",
            "Names 1\N{EN DASH}1 of 1 matching (2 in all)",
            "clear filters",
        ],
        absent=["127.22.6.4 db", "1. db (primary)"],  # neither its row nor its name's
        rows={"127.22.6.2": ["✖ DOWN", "Zonefile", "www.example.test"]},
    ),
}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make test-deps)")
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_status_page_in_chromium(name: str, tmp_path: Path, nft: Nft) -> None:
    scenario = SCENARIOS[name]
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    top = 'audit_file = "audit.jsonl"\n'
    if scenario.node:
        top += f'node_name = "{scenario.node}"\n'
    if scenario.overrides:
        (tmp_path / "overrides.toml").write_text(scenario.overrides)
        top += 'overrides_file = "overrides.toml"\n'
    zone = tmp_path / "example.test.zone"
    if scenario.seeded:
        zone.write_text(
            "$ORIGIN example.test.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 300\n"
            "@ 3600 IN NS ns1\nns1 3600 IN A 127.0.0.1\n"
            + "".join(f"www 60 IN A {address}\n" for address in scenario.addresses)
        )
    config = zonefile_toml(list(scenario.addresses), zone, top=top, listen=listen)
    config += scenario.pools
    args = ["-p", "zonefile", *(["--no-dry-run"] if scenario.live else [])]
    with GoavailProcess(tmp_path, config, args=args, config_name="goavail.toml") as proc:
        proc.wait_for(r"HTTP server on http://")
        wait_until(lambda: http_ok(base + "/api/status"), message=proc.tail)
        # every target comes up first; then the outage of the scenario begins
        wait_until(
            lambda: set(by_state(http("GET", base + "/api/status").json()).values()) == {"up"},
            message=proc.tail,
        )
        if scenario.blackhole:
            nft.blackhole(*scenario.blackhole)
        wait_until(
            lambda: scenario.ready(http("GET", base + "/api/status").json()),
            message=lambda: proc.tail() + "\n" + http("GET", base + "/api/status").text,
        )
        page = chromium(base + scenario.path, tmp_path, ARTIFACTS / f"status-{name}.png")
        assert proc.stop() == 0
    text = page.text
    assert text.startswith(f"goavail on {scenario.node or socket.gethostname()}")
    for phrase in scenario.expect:
        assert phrase in text, f"{phrase!r} not on the {name} page:\n{text}"
    for phrase in scenario.absent:
        assert phrase not in text, f"{phrase!r} on the {name} page:\n{text}"
    for address, phrases in scenario.rows.items():
        row = page.row(address)
        for phrase in phrases:
            assert phrase in row, f"{phrase!r} not in the row of {address}: {row!r}"
    shown = scenario.addresses if scenario.every_row else tuple(scenario.rows)
    for address in shown:  # every target (of the page) has its row
        assert page.row(address).startswith(address)
