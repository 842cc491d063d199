"""The status page: the ``/api/status`` document rendered as HTML (pure; jinja2).

Server-rendered, no JavaScript, reloads itself (``<meta http-equiv="refresh">``).
Every value is HTML-escaped (jinja2 autoescaping is on for the whole template). A
state is always written out in words and with a symbol, colour only repeats it.
With many targets the page lists every target that is not up (down, unknown, under
an override) and the first :data:`MAX_UP_ROWS` that are; ``/api/status`` has them all.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

MAX_UP_ROWS = 200
"""Most healthy targets listed on the page (the others are counted)."""

STATE_LABELS = {"up": "✔ UP", "down": "✖ DOWN", "unknown": "? UNKNOWN"}
"""How a state is written on the page: a symbol and a word, never colour alone."""

DNS_LABELS = {"up": "✔ publish", "down": "✖ withdraw", "unknown": "? undecided"}
"""How the DNS decision of a target (its effective state) is written on the page."""

_ENV = Environment(
    loader=PackageLoader("goavail.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def duration(seconds: float | None) -> str:
    """A calm human duration: ``"45s"``, ``"12m 05s"``, ``"3h 02m"``, ``"4d 07h"``;
    ``"—"`` for None."""
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def milliseconds(seconds: float | None) -> str:
    """An RTT in milliseconds with 2 decimals (``"0.42 ms"``), ``"—"`` for None."""
    return "—" if seconds is None else f"{seconds * 1000:.2f} ms"


_ENV.filters["duration"] = duration
_ENV.filters["ms"] = milliseconds
_ENV.globals["STATE_LABELS"] = STATE_LABELS
_ENV.globals["DNS_LABELS"] = DNS_LABELS


def _rank(target: dict[str, Any]) -> int:
    if target["override"]["mode"] != "auto":
        return 2
    return {"down": 0, "unknown": 1}.get(target["state"], 3)


def page_targets(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The target rows shown, problems first (down, unknown, overridden, then up; each in
    configuration order), and how many healthy targets are left out."""
    ordered = sorted(doc["targets"], key=_rank)  # stable: keeps configuration order
    shown: list[dict[str, Any]] = []
    hidden = 0
    up_rows = 0
    for target in ordered:
        if _rank(target) == 3:
            up_rows += 1
            if up_rows > MAX_UP_ROWS:
                hidden += 1
                continue
        shown.append(target)
    return shown, hidden


def render_page(doc: dict[str, Any], *, refresh: int = 10) -> str:
    """The status page of a status document (see :mod:`goavail.web.status`).

    Args:
        doc: the ``/api/status`` document.
        refresh: seconds between automatic reloads of the page.
    """
    rows, hidden = page_targets(doc)
    peers = sorted({node for t in doc["targets"] for node in t["votes"]})
    if doc["cluster"] is not None:
        peers = sorted(set(peers) | set(doc["cluster"]["live_peers"]))
    return _ENV.get_template("status.html").render(
        doc=doc, rows=rows, hidden=hidden, peers=peers, refresh=refresh
    )
