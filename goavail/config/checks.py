"""``[[checks]]``: the checks run against every target (icmp, tcp, http(s), script)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from goavail.config.errors import _Problems
from goavail.config.values import (
    _MODEL_CONFIG,
    _PROBE_INTERVAL,
    _PROBE_TIMEOUT,
    _THRESHOLD,
    Duration,
    _check_label,
    _is_dns_name,
    _Port,
    _resolve_path,
)

CHECK_TYPES = ("icmp", "tcp", "http", "https", "script")
"""Values of ``[[checks]] type``."""

_CHECK_KEY_TYPES: dict[str, tuple[str, ...]] = {
    "port": ("tcp", "http", "https"),
    "path": ("http", "https"),
    "method": ("http", "https"),
    "host": ("http", "https"),
    "expected_status": ("http", "https"),
    "body_contains": ("http", "https"),
    "tls_verify": ("https",),
    "ca_file": ("https",),
    "command": ("script",),
}
"""Type-specific ``[[checks]]`` keys -> the check types that accept them."""


class _Invalid:
    """A raw value found wrong before field validation (a key on the wrong check type,
    a duplicate id): put in the value's place so that the field reports ``message``
    at its own key path, together with every other problem of the file."""

    def __init__(self, message: str) -> None:
        self.message = message


def _reject_invalid(value: object) -> object:
    if isinstance(value, _Invalid):
        raise ValueError(value.message)
    return value


def _check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must start with '/'")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} must not contain spaces or control characters")
    return value


def _check_check_host(value: str) -> str:
    name = value.lower().removesuffix(".")
    if not _is_dns_name(name, wildcard=False):
        raise ValueError(f"{value!r} is not a valid host name (a DNS name without port or scheme)")
    return name


def _status_list(value: object) -> object:
    """``expected_status = 200`` is short for ``[200]``."""
    _reject_invalid(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 100 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status code (100-599)")
        return [value]
    return value


def _check_statuses(codes: list[int]) -> list[int]:
    if not codes:
        raise ValueError("must have at least 1 item")
    problems: list[tuple[tuple[str | int, ...], str]] = [
        ((i,), f"{code} is not an HTTP status code (100-599)")
        for i, code in enumerate(codes)
        if not 100 <= code <= 599
    ]
    if problems:
        raise _Problems(problems)
    return list(dict.fromkeys(codes))


def _check_argv(value: object) -> object:
    _reject_invalid(value)
    if isinstance(value, str):
        raise ValueError(
            "must be an array of strings (the program and its arguments, e.g. "
            '["/usr/local/bin/check-db", "--fast"]), not a string'
        )
    if isinstance(value, list):
        if not value:
            raise ValueError("must not be empty (the program and its arguments)")
        if value[0] == "":
            raise _Problems([((0,), "the program must not be empty")])
    return value


class CheckSection(BaseModel):
    """One ``[[checks]]`` entry: a health check every target must pass (flipper's checks).

    A target is healthy when all its checks are healthy, down when any is down
    (see :func:`goavail.health.worst_of`). Every check has its own schedule and its
    own rise/fall counters per target.

    Attributes:
        id: unique name of the check in logs and metrics (letters, digits, ``.``,
            ``_``, ``-``).
        type: ``"icmp"`` (echo), ``"tcp"`` (connect), ``"http"``/``"https"`` (a
            request to the target's address), ``"script"`` (a program's exit code).
        interval: seconds between two checks of one target (default: the
            top-level ``interval``).
        timeout: seconds one check may take (default: the top-level ``timeout``,
            at most ``interval``; ≤ ``interval``).
        fall: consecutive failures that make the check DOWN for a target
            (default: ``failure_threshold``).
        rise: consecutive successes that make it UP (default: ``fall`` when set
            in the entry, else ``rise_threshold``).
        port: tcp: required unless the top-level ``port`` is set (its default);
            http/https: default 80/443.
        path: http/https request path, starting with ``/`` (default ``/``).
        method: http/https request method (default ``GET``).
        host: http/https: sent as the ``Host`` header and, for https, as TLS SNI
            and the name the certificate is validated against; the connection
            still goes to the target's address. None: the address itself.
        expected_status: http/https status codes that count as healthy; None:
            any 2xx.
        body_contains: http/https: text the response body must contain (searched
            in its first 1 MiB), or None.
        tls_verify: https: validate the certificate chain and name (default true).
        ca_file: https: PEM file of the CAs to trust instead of the default
            bundle (certifi's, as httpx uses), or None.
        command: script: argv of the program (a relative path containing ``/`` is
            relative to the configuration file; a bare name is looked up in
            ``PATH``); the target's address is appended as its last argument.
            Exit status 0 = healthy.
    """

    model_config = _MODEL_CONFIG

    id: Annotated[str, AfterValidator(_check_label)]
    type: Literal["icmp", "tcp", "http", "https", "script"]
    interval: Annotated[Duration, _PROBE_INTERVAL] | None = None
    timeout: Annotated[Duration, _PROBE_TIMEOUT] | None = None
    fall: Annotated[int, _THRESHOLD] | None = None
    rise: Annotated[int, _THRESHOLD] | None = None
    port: _Port | None = None
    path: Annotated[str, AfterValidator(_check_path)] | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] | None = None
    host: Annotated[str, AfterValidator(_check_check_host)] | None = None
    expected_status: (
        Annotated[list[int], BeforeValidator(_status_list), AfterValidator(_check_statuses)] | None
    ) = None
    body_contains: Annotated[str, Field(min_length=1)] | None = None
    tls_verify: bool | None = None
    ca_file: Path | None = None
    command: Annotated[list[str], BeforeValidator(_check_argv)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys_of_type(cls, data: object) -> object:
        """Mark keys that do not belong to the entry's type (reported by each key)."""
        if not isinstance(data, dict) or data.get("type") not in CHECK_TYPES:
            return data
        kind = data["type"]
        data = dict(data)
        for key, types_ in _CHECK_KEY_TYPES.items():
            if key in data and kind not in types_:
                names = [repr(t) for t in types_]
                allowed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
                data[key] = _Invalid(f"only for type {allowed}, not {kind!r}")
        return data

    @field_validator(
        "id", "port", "path", "method", "host", "body_contains", "tls_verify", mode="before"
    )
    @classmethod
    def _invalid(cls, value: object) -> object:
        return _reject_invalid(value)

    @field_validator("ca_file", mode="before")
    @classmethod
    def _ca_path(cls, value: object, info: ValidationInfo) -> object:
        return _resolve_path(_reject_invalid(value), info)

    @field_validator("command")
    @classmethod
    def _program_path(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        """A relative program path with a ``/`` is relative to the configuration file."""
        if value is None or "/" not in value[0] or os.path.isabs(value[0]):
            return value
        base = info.context.get("base_dir") if isinstance(info.context, dict) else None
        if not isinstance(base, Path):
            return value
        return [os.path.normpath(base / value[0]), *value[1:]]

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval")
        if value is not None and interval is not None and value > interval:
            raise ValueError(f"must be ≤ interval ({interval} s)")
        return value

    @model_validator(mode="after")
    def _required_keys(self) -> CheckSection:
        if self.type == "script" and self.command is None:
            raise _Problems([(("command",), "required for type 'script'")])
        return self
