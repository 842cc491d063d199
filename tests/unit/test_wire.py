"""What every gossip message shares: reject reasons, errors, event names, Serf's limit."""

from __future__ import annotations

import pickle

import pytest

from goavail.cluster.sync import sync_event_name
from goavail.cluster.wire import (
    REJECT_REASONS,
    SERF_USER_EVENT_LIMIT,
    SERF_USER_EVENT_OVERHEAD,
    USER_EVENT_BUDGET,
    WireError,
    event_name,
)


def test_reject_reasons_and_errors() -> None:
    assert REJECT_REASONS == (
        "truncated",
        "version",
        "plaintext",
        "sealed",
        "tag",
        "decode",
        "replay",
        "skew",
    )
    error = WireError("tag", "forged")
    assert str(error) == "tag: forged" and error.reason == "tag"
    again = pickle.loads(pickle.dumps(error))
    assert (again.reason, str(again)) == ("tag", "tag: forged")
    with pytest.raises(ValueError, match="unknown reject reason"):
        WireError("nope")  # type: ignore[arg-type]


def test_event_names() -> None:
    assert event_name(None) == event_name("") == "goavail-verdict"
    assert event_name("edge") == "edge-goavail-verdict"
    assert sync_event_name(None) == "goavail-sync"
    assert sync_event_name("edge") == "edge-goavail-sync"


def test_budget() -> None:
    assert USER_EVENT_BUDGET == SERF_USER_EVENT_LIMIT - SERF_USER_EVENT_OVERHEAD == 472
