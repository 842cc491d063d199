"""The status page: the ``/api/status`` document rendered as HTML (pure; jinja2).

Server-rendered, no JavaScript, reloads itself (``<meta http-equiv="refresh">``).
Every value is HTML-escaped (jinja2 autoescaping is on for the whole template). A
state is always written out in words and with a symbol, colour only repeats it.

The document handed in holds one page of targets and one of names, already filtered
and ordered (:mod:`goavail.web.listing`; problems first); the page adds the filter
form (a GET form: works without JavaScript) and the links to the other pages, which
keep the filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from goavail.web.listing import PAGE_DEFAULTS, STATES, Query

MAX_POOL_CHOICES = 100
"""With more pools than this, the pool filter is a text field, not a list to choose from."""
MAX_CELL_ITEMS = 8
"""Most addresses, records, pools or names written in one cell (the others are counted;
``/api/status`` has them all)."""

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


def count(number: int) -> str:
    """A count with thousands separators: ``"10,000"``."""
    return f"{number:,}"


_ENV.filters["count"] = count
_ENV.globals["STATES"] = STATES
_ENV.globals["MAX_CELL_ITEMS"] = MAX_CELL_ITEMS


def page_links(
    query: Query, listing: dict[str, Any], key: str, anchor: str
) -> dict[str, str | None]:
    """The links to the first, previous, next and last page of one list (``key``:
    ``"page"`` or ``"names_page"``), keeping the filters; None where there is no such
    page. ``listing``: that list's ``listing`` entry of the status document."""
    number, pages = listing["page"], listing["pages"]

    def link(to: int) -> str:
        params = query.params(PAGE_DEFAULTS, **{key: to})
        return f"?{params}#{anchor}" if params else f"./#{anchor}"

    return {
        "first": link(1) if number > 1 else None,
        "prev": link(min(number - 1, pages)) if number > 1 else None,
        "next": link(number + 1) if number < pages else None,
        "last": link(pages) if number < pages else None,
    }


def render_page(
    doc: dict[str, Any],
    *,
    refresh: int = 10,
    query: Query = PAGE_DEFAULTS,
    problems: Sequence[str] = (),
) -> str:
    """The status page of a status document (see :mod:`goavail.web.status`).

    Args:
        doc: the ``/api/status`` document, built for ``query``.
        refresh: seconds between automatic reloads of the page.
        query: the filters, order and pages asked for (shown in the form and kept by
            every link).
        problems: the query parameters that were not acceptable (shown; ignored).
    """
    peers = sorted({node for t in doc["targets"] for node in t["votes"]})
    if doc["cluster"] is not None:
        peers = sorted(set(peers) | set(doc["cluster"]["live_peers"]))
    listing = doc["listing"]
    pools = listing["pools"]
    return _ENV.get_template("status.html").render(
        doc=doc,
        rows=doc["targets"],
        peers=peers,
        refresh=refresh,
        query=query,
        problems=list(problems),
        pool_choices=pools if len(pools) <= MAX_POOL_CHOICES else None,
        target_links=page_links(query, listing["targets"], "page", "targets"),
        name_links=page_links(query, listing["names"], "names_page", "names"),
        clear=query.params(PAGE_DEFAULTS, name="", pool="", state="", page=1, names_page=1),
    )
