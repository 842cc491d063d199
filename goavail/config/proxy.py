"""``[Proxy]``: the failover TCP proxy of ``goavail proxy`` (flopsy's settings).

One primary backend at a time among ``hosts``; see docs/proxy.md and
:mod:`goavail.proxy` for the semantics. The command line's flags (``-p/--port``,
``-b/--bind``, ``-H/--hosts``, ``-c/--check``, ``--on-failover``, ``-B/--max-backoff``)
set the same keys and win over the file's.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
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

from goavail.config.checks import CheckSection, _check_argv
from goavail.config.errors import _Problems
from goavail.config.values import (
    _MODEL_CONFIG,
    Duration,
    Within,
    _Port,
    _resolve_path,
    split_host_port,
)

RELAY_MODES = ("auto", "splice", "stream")
"""Values of ``[Proxy] relay``: ``auto`` (splice where the OS has it), ``splice``
(Linux ``splice(2)`` through a pipe), ``stream`` (the portable copy loop)."""


def _check_listen(value: str) -> str:
    host, _ = split_host_port(value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{value!r}: the host must be an IP address (e.g. '127.0.0.1:5432', '[::]:5432')"
        ) from None
    return value


def _check_hosts(value: list[str]) -> list[str]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, host in enumerate(value):
        try:
            split_host_port(host)
        except ValueError as exc:
            problems.append(((i,), str(exc)))
            continue
        first = value.index(host)
        if first != i:
            problems.append(((i,), f"{host!r} is listed twice (also hosts[{first}])"))
    if problems:
        raise _Problems(problems)
    return value


def _hosts_list(value: object) -> object:
    """``hosts = "a:1,b:2"`` (flopsy's ``HOSTS``) is short for ``["a:1", "b:2"]``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _argv(value: object) -> object:
    """``check = "/path/to/script"`` is short for ``["/path/to/script"]`` (flopsy's
    ``-c`` takes one program, which gets the backend as its only argument)."""
    if isinstance(value, str) and value:
        return [value]
    return _check_argv(value)


_Timeout = Within(
    0.1,
    3600.0,
    below="shorter kills a script before its program has even started",
    above="longer lets one hung script hold up failover for more than an hour",
)


class ProxySection(BaseModel):
    """``[Proxy]``: relay every connection to one primary backend, fail over to the next.

    Attributes:
        listen: ``"ip:port"`` to accept connections on (flopsy's ``--bind``), or None.
        port: accept on every address (``[::]``, IPv4 too) at this port (flopsy's
            ``--port``), or None. Exactly one of ``listen``/``port`` is required.
        hosts: the backends, ``"host:port"`` each (IPv6 as ``"[addr]:port"``), in
            order of preference (flopsy's ``--hosts``; a comma-separated string is
            accepted too).
        check: argv of the program that decides whether a backend that accepts
            connections may become the primary (flopsy's ``--check-host``): it gets
            ``"host:port"`` as its last argument; exit 0 = usable. None: accepting
            a connection is enough.
        check_timeout: seconds the check may run before its process group is killed
            (it then counts as failed).
        on_failover: a program, or a directory of programs run in name order, run
            with the new primary's ``"host:port"`` after every selection, before
            connections are relayed again (flopsy's ``--on-failover``); a non-zero
            exit is logged as a warning. None: no triggers.
        trigger_timeout: seconds one trigger may run before its process group is killed.
        max_backoff: the longest wait in seconds between two selection rounds that
            found no primary (the waits double from 0.25 s; flopsy's ``--max-backoff``).
        connect_timeout: seconds a TCP connect to a backend may take.
        checks: ids of ``[[checks]]`` entries that judge the backends (their hosts
            must then be IP addresses: the checks probe them), with those checks'
            rise/fall thresholds: a backend they judge DOWN is not selected, and the
            primary fails over once they judge it DOWN. None: flopsy's behaviour
            only (a failed connect to the primary starts a new selection).
        failback: switch back to an earlier backend of ``hosts`` once the checks
            judge it UP again (needs ``checks``). Default false: the primary stays
            until it fails (no flapping back).
        drain: seconds connections to a former primary may go on after a failover
            before they are closed; None (default): they are left to finish.
        max_connections: connections relayed (or waiting for a primary) at once;
            more wait in the listen backlog.
        relay: ``"auto"``, ``"splice"`` or ``"stream"`` (see :data:`RELAY_MODES`).
    """

    model_config = _MODEL_CONFIG

    listen: Annotated[str, AfterValidator(_check_listen)] | None = None
    port: _Port | None = None
    hosts: Annotated[
        list[str], BeforeValidator(_hosts_list), Field(min_length=1), AfterValidator(_check_hosts)
    ]
    check: Annotated[list[str], BeforeValidator(_argv)] | None = None
    check_timeout: Annotated[Duration, _Timeout] = 10.0
    on_failover: Path | None = None
    trigger_timeout: Annotated[Duration, _Timeout] = 30.0
    max_backoff: Annotated[
        Duration,
        Within(
            0.25,
            86400.0,
            below="shorter than the first wait (0.25s)",
            above="longer leaves the proxy without a primary for more than a day after "
            "the backends are back",
        ),
    ] = 30.0
    connect_timeout: Annotated[
        Duration,
        Within(
            0.01,
            600.0,
            below="shorter fails connects that would succeed",
            above="longer holds clients for more than 10 minutes on a dead backend",
        ),
    ] = 5.0
    checks: list[str] | None = None
    failback: bool = False
    drain: (
        Annotated[
            Duration,
            Within(
                0.0,
                86400.0,
                below="a duration cannot be negative",
                above="longer than a day: leave it out to let connections finish",
            ),
        ]
        | None
    ) = None
    max_connections: Annotated[
        int,
        Within(
            1,
            1_000_000,
            below="at least one connection must be relayed",
            above="more than a million needs more file descriptors than any system grants",
            duration=False,
        ),
    ] = 1000
    relay: Literal["auto", "splice", "stream"] = "auto"

    @field_validator("on_failover", mode="before")
    @classmethod
    def _path(cls, value: object, info: ValidationInfo) -> object:
        return _resolve_path(value, info)

    @field_validator("check")
    @classmethod
    def _program_path(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        """A relative program path with a ``/`` is relative to the configuration file."""
        if value is None or "/" not in value[0] or os.path.isabs(value[0]):
            return value
        base = info.context.get("base_dir") if isinstance(info.context, dict) else None
        if not isinstance(base, Path):
            return value
        return [os.path.normpath(base / value[0]), *value[1:]]

    @model_validator(mode="after")
    def _one_listener(self) -> ProxySection:
        if self.listen is None and self.port is None:
            raise _Problems([(("port",), "field required (or listen = 'ip:port')")])
        if self.listen is not None and self.port is not None:
            raise _Problems([(("port",), "set either port or listen, not both")])
        if self.failback and not self.checks:
            raise _Problems(
                [(("failback",), "needs checks: they tell when an earlier backend is back")]
            )
        return self

    def listen_address(self) -> tuple[str, int]:
        """``(host, port)`` to bind: ``listen``'s, or ``("::", port)``."""
        if self.listen is not None:
            return split_host_port(self.listen)
        assert self.port is not None
        return "::", self.port


def proxy_problems(
    section: ProxySection, checks: Sequence[CheckSection]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of ``[Proxy]`` against the rest of the file (pure).

    ``checks`` must name ``[[checks]]`` ids, each once, and the hosts they judge
    must be IP addresses (a check probes an address). Locations are relative to
    the section (``("checks", 1)``, ``("hosts", 0)``).
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if not section.checks:
        return problems
    ids = [check.id for check in checks]
    known = ", ".join(repr(i) for i in ids) or "none: add [[checks]] entries"
    for j, wanted in enumerate(section.checks):
        first = section.checks.index(wanted)
        if first != j:
            problems.append((("checks", j), f"{wanted!r} is listed twice (also checks[{first}])"))
        elif wanted not in ids:
            problems.append((("checks", j), f"no check {wanted!r} ([[checks]] ids: {known})"))
    for i, host in enumerate(section.hosts):
        address, _ = split_host_port(host)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            problems.append(
                (
                    ("hosts", i),
                    f"{host!r}: with checks, the host must be an IP address (the checks probe it)",
                )
            )
    return problems


__all__ = ["RELAY_MODES", "ProxySection", "proxy_problems"]
