"""``slack_addr``, ``[[notifications]]`` and ``[Heartbeat]``: where goavail tells people."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from goavail.config.errors import _Problems
from goavail.config.values import _HTTP_TIMEOUT, _MODEL_CONFIG, Duration, Within

SLACK_HOOKS = "https://hooks.slack.com/services/"
"""Prefix of a ``slack_addr`` given as in the Go original (the part after it)."""


def _check_http_url(value: SecretStr) -> SecretStr:
    """Check that a secret URL is ``http://`` or ``https://`` with a host.

    Messages never contain the URL: webhook and heartbeat URLs carry tokens.
    """
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError("must not be empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ValueError("must be a URL without spaces")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


_SecretUrl = Annotated[SecretStr, AfterValidator(_check_http_url)]


class NotificationSection(BaseModel):
    """One ``[[notifications]]`` entry: where event messages are posted.

    Attributes:
        type: ``"slack"`` or ``"mattermost"`` (incoming-webhook JSON with ``text``,
            optional ``channel`` and ``username``), or ``"webhook"`` (goavail's own
            JSON body, documented in docs/notifications.md).
        url: the webhook URL, http(s) (secret: it carries the hook's token).
        channel: channel override (slack and mattermost only), or None.
        username: sender name override (slack and mattermost only), or None.
        timeout: seconds one POST may take in all (connect, send, answer).
        retries: retries of a message after a timeout, a connection error, HTTP
            408, 429 or 5xx (0-10); other answers are not retried.
        coalesce_window: seconds events are collected before a message goes out;
            everything collected goes out as one message.
    """

    model_config = _MODEL_CONFIG

    type: Literal["slack", "mattermost", "webhook"]
    url: _SecretUrl
    channel: Annotated[str, Field(min_length=1)] | None = None
    username: Annotated[str, Field(min_length=1)] | None = None
    timeout: Annotated[Duration, _HTTP_TIMEOUT] = 5.0
    retries: Annotated[
        int,
        Within(
            0,
            10,
            below="a count is not negative",
            above="more keeps retrying a dead destination while its queue fills",
            duration=False,
        ),
    ] = 3
    coalesce_window: Annotated[
        Duration,
        Within(
            0.01,
            300.0,
            below="shorter sends one message per event, and a mass failover floods the channel",
            above="longer delays the news of a failover by more than 5 minutes",
        ),
    ] = 2.0

    @model_validator(mode="after")
    def _chat_options(self) -> NotificationSection:
        if self.type == "webhook":
            problems: list[tuple[tuple[str | int, ...], str]] = [
                ((key,), "only for type 'slack' or 'mattermost'")
                for key in ("channel", "username")
                if getattr(self, key) is not None
            ]
            if problems:
                raise _Problems(problems)
        return self


class HeartbeatSection(BaseModel):
    """``[Heartbeat]``: a dead-man switch (flipper's heartbeat).

    goavail sends ``GET url`` at start and then every ``interval`` seconds; a
    monitoring service (healthchecks.io, UptimeRobot, ...) alerts when the GETs stop.

    Attributes:
        url: http(s) URL (secret: such URLs usually carry a token).
        interval: seconds between two GETs (default 60).
        timeout: seconds one GET may take (default 10; ≤ interval).
    """

    model_config = _MODEL_CONFIG

    url: _SecretUrl
    interval: Annotated[
        Duration,
        Within(
            0.1,
            86400.0,
            below="shorter floods the monitoring service with GETs",
            above="longer is no dead-man switch (goavail's death would go unnoticed for "
            "over a day)",
        ),
    ] = 60.0
    timeout: Annotated[Duration, _HTTP_TIMEOUT] = 10.0

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value > interval:
            raise ValueError(f"must be ≤ interval ({interval} s)")
        return value
