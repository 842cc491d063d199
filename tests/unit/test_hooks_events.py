"""Pure parts of hooks and HTTP checks: the events, arguments and environment a hook
gets, certificate levels, and the error texts of failed requests."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from goavail.checks.http import cert_level, error_text
from goavail.dns.model import FailOpen
from goavail.hooks import HookEvent, dns_event, fail_open_event, hook_argv, hook_env


def audit(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "time": "2026-11-21T00:53:34.120+00:00",
        "provider": "zonefile",
        "name": "www.example.test",
        "type": "A",
        "address": "192.0.2.10",
        "action": "delete",
        "reason": "target 192.0.2.10 down",
        "dry_run": False,
        "outcome": "applied",
    }
    entry.update(changes)
    return entry


def test_dns_event_of_an_applied_change() -> None:
    assert dns_event(audit()) == HookEvent(
        action="delete",
        target="192.0.2.10",
        name="www.example.test",
        record_type="A",
        dry_run=False,
        reason="target 192.0.2.10 down",
        outcome="applied",
        provider="zonefile",
    )


def test_dns_event_of_a_planned_change() -> None:
    event = dns_event(audit(action="create", dry_run=True, outcome="planned", type="AAAA"))
    assert event is not None
    assert (event.action, event.dry_run, event.outcome, event.record_type) == (
        "create",
        True,
        "planned",
        "AAAA",
    )


@pytest.mark.parametrize("outcome", ["error", "already-done"])
def test_no_event_for_changes_not_made(outcome: str) -> None:
    assert dns_event(audit(outcome=outcome, error="boom")) is None


@pytest.mark.parametrize("engaged", [True, False])
def test_fail_open_event(engaged: bool) -> None:
    case = FailOpen("www.example.test", "A", ("192.0.2.10", "192.0.2.11"))
    event = fail_open_event(case, engaged=engaged, dry_run=True)
    assert event.action == ("fail_open_engaged" if engaged else "fail_open_released")
    assert (event.target, event.name, event.record_type, event.dry_run) == (
        "192.0.2.10,192.0.2.11",
        "www.example.test",
        "A",
        True,
    )
    assert (event.outcome, event.provider) == ("", "")


def test_hook_argv_and_env() -> None:
    event = dns_event(audit())
    assert event is not None
    assert hook_argv(Path("/etc/goavail/hooks.d/10-page"), event) == [
        "/etc/goavail/hooks.d/10-page",
        "delete",
        "192.0.2.10",
        "www.example.test",
        "false",
    ]
    assert hook_env(event, "agent-a") == {
        "GOAVAIL_ACTION": "delete",
        "GOAVAIL_TARGET": "192.0.2.10",
        "GOAVAIL_NAME": "www.example.test",
        "GOAVAIL_RECORD_TYPE": "A",
        "GOAVAIL_DRY_RUN": "false",
        "GOAVAIL_REASON": "target 192.0.2.10 down",
        "GOAVAIL_OUTCOME": "applied",
        "GOAVAIL_PROVIDER": "zonefile",
        "GOAVAIL_NODE": "agent-a",
    }


@pytest.mark.parametrize(
    ("days", "level"),
    [
        (90.0, "ok"),
        (14.0, "ok"),
        (13.99, "warning"),  # flipper: warn under 14 days
        (7.0, "warning"),
        (6.99, "error"),  # ... error under 7
        (0.5, "error"),
        (-3.0, "error"),  # expired
    ],
)
def test_cert_level(days: float, level: str) -> None:
    assert cert_level(days) == level


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_code = code
    exc.verify_message = message
    return exc


def wrapped(cause: BaseException) -> httpx.ConnectError:
    """As httpx raises it: ConnectError from httpcore's ConnectError from the cause."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise httpx.ConnectError(str(inner)) from inner
    except httpx.ConnectError as outer:
        return outer


@pytest.mark.parametrize(
    ("cause", "text"),
    [
        (verify_error(10, "certificate has expired"), "TLS certificate expired"),
        (verify_error(9, "certificate is not yet valid"), "TLS certificate not yet valid"),
        (
            verify_error(62, "Hostname mismatch, certificate is not valid for 'x'."),
            "TLS certificate does not match app.example.test",
        ),
        (
            verify_error(20, "unable to get local issuer certificate"),
            "TLS certificate not trusted (unknown issuer)",
        ),
        (
            verify_error(26, "unsuitable certificate purpose"),
            "TLS certificate verify failed: unsuitable certificate purpose",
        ),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError(), "timeout"),
        (
            BaseExceptionGroup("all failed", [ConnectionRefusedError(111, "refused")]),
            "connection refused",
        ),
    ],
)
def test_error_text(cause: BaseException, text: str) -> None:
    assert error_text(wrapped(cause), "app.example.test") == text


def test_error_text_of_httpx_errors() -> None:
    assert error_text(httpx.ReadTimeout("read"), "x") == "timeout"
    assert (
        error_text(httpx.RemoteProtocolError("Server disconnected"), "x")
        == "protocol error: Server disconnected"
    )
