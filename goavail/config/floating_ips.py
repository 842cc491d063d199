"""``[[floating_ips]]``: groups of Hetzner Cloud servers and the floating IPs kept on the
healthy ones (flipper's groups; see :mod:`goavail.fip`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator

from goavail.config.errors import _Problems
from goavail.config.values import _MODEL_CONFIG, Duration, Within, _check_label, parse_duration
from goavail.fip.selector import parse_selector


def _check_selector(value: str) -> str:
    parse_selector(value)
    return value.strip()


def _delay(value: object) -> object:
    """``post_plan_delay``: a duration, or 0 (off)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return 0.0
    if value in ("0", "0s"):
        return 0.0
    return parse_duration(value)


_POLL_INTERVAL = Within(
    1.0,
    86400.0,
    below="shorter reads every server and floating IP more than once a second and runs "
    "into the Hetzner API's rate limit (3,600 requests an hour)",
    above="longer leaves a floating IP re-assigned by hand (drift) for more than a day",
)
_POST_PLAN_DELAY = Within(
    0.0,
    3600.0,
    below="a delay cannot be negative",
    above="longer blocks every failover for more than an hour after a plan",
)
_Selector = Annotated[str, Field(min_length=1), AfterValidator(_check_selector)]


class FloatingIpSection(BaseModel):
    """One ``[[floating_ips]]`` group: servers and the floating IPs kept on the healthy ones.

    Attributes:
        id: the group's name in logs, metrics and the page (letters, digits, ``.``,
            ``_``, ``-``; unique).
        server_selector: Hetzner label selector of the group's servers (e.g.
            ``"role=lb,env=prod"``); their public IPv4 addresses (IPv6 when they have
            none) are the targets the checks probe.
        floating_ip_selector: label selector of the group's floating IPs.
        checks: the ``[[checks]]`` ids that judge the servers (each once, each an
            existing id: ``Config`` checks both), or None: every ``[[checks]]`` entry,
            or the ``--type`` probe when the file has none.
        poll_interval: seconds between two reads of the servers and floating IPs (the
            infrastructure; health changes trigger a plan at once). Default 60.
        post_plan_delay: seconds after a plan with moves during which no other plan
            is made (flipper's; default 0: off).
        read_only: plan and record, never assign (flipper's ``readonly``): what
            dry-run does, for this group alone.
        action_timeout: seconds to wait for Hetzner's assign action to finish before
            the attempt counts as failed and is retried (default 60).
    """

    model_config = _MODEL_CONFIG

    id: Annotated[str, AfterValidator(_check_label)]
    server_selector: _Selector
    floating_ip_selector: _Selector
    checks: list[Annotated[str, AfterValidator(_check_label)]] | None = Field(
        default=None, min_length=1
    )
    poll_interval: Annotated[Duration, _POLL_INTERVAL] = 60.0
    post_plan_delay: Annotated[float, BeforeValidator(_delay), _POST_PLAN_DELAY] = 0.0
    read_only: bool = False
    action_timeout: Annotated[
        Duration,
        Within(
            1.0,
            3600.0,
            below="shorter gives up on assign actions Hetzner is still running",
            above="longer waits for an hour on one stuck action",
        ),
    ] = 60.0

    @field_validator("checks")
    @classmethod
    def _each_check_once(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        problems: list[tuple[tuple[str | int, ...], str]] = [
            ((i,), f"{check!r} is listed twice (also at checks[{value.index(check)}])")
            for i, check in enumerate(value)
            if value.index(check) != i
        ]
        if problems:
            raise _Problems(problems)
        return value


def floating_ip_problems(
    groups: list[FloatingIpSection], check_ids: list[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems across the groups: a repeated id, a ``checks`` id no ``[[checks]]`` has."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, int] = {}
    known = ", ".join(repr(i) for i in check_ids) or "none: add [[checks]] entries"
    for i, group in enumerate(groups):
        first = seen.setdefault(group.id, i)
        if first != i:
            problems.append(
                (
                    ("floating_ips", i, "id"),
                    f"{group.id!r} is used twice (also floating_ips[{first}])",
                )
            )
        for j, wanted in enumerate(group.checks or ()):
            if wanted not in check_ids:
                problems.append(
                    (
                        ("floating_ips", i, "checks", j),
                        f"no check {wanted!r} ([[checks]] ids: {known})",
                    )
                )
    return problems
