"""Log formatting and secret redaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from goavail.logs import REDACTOR, RedactSecrets, setup_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    secrets = set(REDACTOR.secrets)
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    REDACTOR.secrets = secrets


def test_redact_filter_replaces_secrets_in_message_and_args() -> None:
    f = RedactSecrets()
    f.add(["s3cr3t-token", None, "ab"])  # short values are ignored (too many false hits)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "auth %s failed", ("s3cr3t-token",), None
    )
    assert f.filter(record)
    assert record.getMessage() == "auth *** failed"
    assert f.secrets == {"s3cr3t-token"}


def test_json_lines_with_extras(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", debug=False)
    REDACTOR.add(["tok-123456"])
    logging.getLogger("goavail.test").info(
        "target %s down (token tok-123456)", "192.0.2.1", extra={"target": "192.0.2.1"}
    )
    logging.getLogger("goavail.test").debug("not shown without --debug")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "INFO"
    assert entry["logger"] == "goavail.test"
    assert entry["target"] == "192.0.2.1"
    assert entry["message"] == "target 192.0.2.1 down (token ***)"
    assert "time" in entry


def test_text_and_debug_level(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("text", debug=True)
    logging.getLogger("goavail.test").debug("probe 127.0.0.1 ok")
    logging.getLogger("httpx").info("HTTP Request: GET ... Authorization: Bearer x")
    err = capsys.readouterr().err
    assert "DEBUG   goavail.test: probe 127.0.0.1 ok" in err
    assert "httpx" not in err  # third-party request logs stay quiet even with --debug
