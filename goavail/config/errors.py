"""The configuration's error: every problem at once, each with its key path."""

from __future__ import annotations

from pathlib import Path

from goavail.errors import GoavailError


class ConfigError(GoavailError):
    """The configuration cannot be used.

    Attributes:
        problems: one line per problem, each ``"<key.path>: <message>"`` (or a
            whole-file problem such as an unreadable file or a TOML syntax error).
        path: the configuration file, when known.

    ``str()`` gives a readable multi-line message::

        goavail.toml: invalid configuration (2 problems):
          - interval: must be > 0 seconds
          - Cloudflare.dns_domain: field required
    """

    def __init__(self, problems: list[str], path: Path | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.path: Path | None = path
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"invalid configuration ({n} problem{'' if n == 1 else 's'}):"
        if self.path is not None:
            head = f"{self.path}: {head}"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class _Problems(ValueError):
    """Raised inside validators to report one or more problems at sub-locations.

    Each item is ``(sub_location, message)``; the sub-location is appended to the
    location pydantic reports for the validator (e.g. ``("hostnames", 2)``).
    """

    def __init__(self, items: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.items = items
        super().__init__("; ".join(message for _, message in items))


_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}
"""A TOML value's type, as a problem line names it ("must be ..., not a table")."""
