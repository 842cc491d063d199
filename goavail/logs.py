"""Logging set-up: text (default) or JSON lines, with secrets redacted.

Every log line goes to stderr. In JSON mode each line is an object with
``time``, ``level``, ``logger``, ``message`` and any structured extras (for
example ``target``, ``name``, ``audit``), formatted by python-json-logger.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

# Loggers of libraries that could print request details (headers hold API tokens).
_QUIET_LIBRARIES = ("cloudflare", "httpx", "httpcore", "asyncio", "urllib3", "botocore", "boto3")


class RedactSecrets(logging.Filter):
    """Replaces every registered secret in a record's message and args with ``***``.

    A second line of defence: goavail never passes secrets to the logger, but a
    library's exception text might contain one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secrets: Iterable[str | None]) -> None:
        """Register secret values (None and strings shorter than 4 characters are ignored)."""
        self.secrets.update(s for s in secrets if s and len(s) >= 4)

    def redact(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``***`` (for HTTP answers)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = message
            for secret in self.secrets:
                redacted = redacted.replace(secret, "***")
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


REDACTOR = RedactSecrets()


def setup_logging(fmt: LogFormat = "text", debug: bool = False) -> None:
    """Configure the root logger for goavail.

    Args:
        fmt: "text" for human-readable lines, "json" for one JSON object per line.
        debug: log at DEBUG level (adds a line per probe). Third-party libraries
            stay at WARNING so request headers are never logged.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(REDACTOR)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
