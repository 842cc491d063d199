"""Command-line interface, compatible with the Go original's flags.

    goavail monitor  [-f goavail.toml] [--dry-run/--no-dry-run] [-b] [-t ip|tcp] [-p PROVIDER]
    goavail validate [-f goavail.toml] [-p PROVIDER] [-t ip|tcp]
    goavail plan     [-f goavail.toml] [-p PROVIDER] [-t ip|tcp] [--json]
    goavail --version

Exit codes: 0 success; 1 runtime failure (cannot open probe sockets, provider
unreachable in ``plan``); 2 invalid configuration or usage.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from goavail import __version__
from goavail.agent import (
    SUPPORTED_PROVIDERS,
    Agent,
    Options,
    SetupError,
    build_probe,
    build_provider,
    load_checked,
    record_attributes,
)
from goavail.checks.base import ProbeResult, ProbeSetupError
from goavail.checks.multi import assess
from goavail.cluster.serf_agent import SerfAgentError
from goavail.config import Config, ConfigError
from goavail.decision import Override, apply_override
from goavail.dns.audit import AuditLog
from goavail.dns.model import Plan, Record
from goavail.dns.plan import plan as make_plan
from goavail.dns.providers.base import ProviderError
from goavail.health import Health, observe
from goavail.logs import setup_logging
from goavail.overrides import load_overrides
from goavail.web import ServerError

log = logging.getLogger("goavail")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="goavail: probe addresses and keep their DNS A/AAAA records in step with their health.",
)


class ProbeKind(enum.StrEnum):
    ip = "ip"
    tcp = "tcp"


class ProviderKind(enum.StrEnum):
    cloudflare = "cloudflare"
    zonefile = "zonefile"
    route53 = "route53"
    rfc2136 = "rfc2136"


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


ConfigOpt = Annotated[
    Path,
    typer.Option("--config-file", "-f", help="Path to the TOML configuration file."),
]
ProbeOpt = Annotated[
    ProbeKind,
    typer.Option("--type", "-t", help="Probe type: ip (ICMP echo) or tcp (connect to `port`)."),
]
ProviderOpt = Annotated[
    ProviderKind,
    typer.Option(
        "--dns-provider",
        "-p",
        help="DNS provider: cloudflare, route53, rfc2136 or zonefile.",
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"goavail: {message}", err=True)
    return typer.Exit(code)


def _load(options: Options) -> Config:
    """Load and check the config; on failure print every problem and exit 2."""
    if options.provider not in SUPPORTED_PROVIDERS:
        raise _fail(
            f"--dns-provider {options.provider} is not supported yet "
            f"(supported: {', '.join(SUPPORTED_PROVIDERS)})",
            2,
        )
    try:
        return load_checked(options)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"goavail {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-v", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """goavail: DNS failover agent."""


@app.command()
def monitor(
    config_file: ConfigOpt = Path("goavail.toml"),
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run/--no-dry-run",
            help="Dry-run (the default) logs and audits every DNS change but makes none.",
        ),
    ] = True,
    debug: Annotated[bool, typer.Option("--debug", "-b", help="Log every probe.")] = False,
    probe_type: ProbeOpt = ProbeKind.ip,
    dns_provider: ProviderOpt = ProviderKind.cloudflare,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Log lines as text or JSON.")
    ] = LogFormat.text,
) -> None:
    """Probe the targets and keep DNS in step with their health, until SIGTERM."""
    setup_logging(log_format.value, debug)
    options = Options(config_file, dry_run, probe_type.value, dns_provider.value)
    config = _load(options)
    try:
        agent = Agent(config, options)
    except (SetupError, ConfigError) as exc:
        raise _fail(str(exc), 2) from None
    except OSError as exc:
        raise _fail(f"cannot start: {exc}", 1) from None
    try:
        asyncio.run(agent.run())
    except (ProbeSetupError, SerfAgentError, ServerError) as exc:
        raise _fail(str(exc), 1) from None


@app.command()
def validate(
    config_file: ConfigOpt = Path("goavail.toml"),
    dns_provider: ProviderOpt = ProviderKind.cloudflare,
    probe_type: ProbeOpt = ProbeKind.ip,
) -> None:
    """Check the configuration file: exit 0, or exit 2 listing every problem."""
    options = Options(config_file, True, probe_type.value, dns_provider.value)
    config = _load(options)
    try:
        overrides = load_overrides(config.overrides_file)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    section = config.section_for(options.provider)
    if overrides:
        typer.echo(f"{config.overrides_file}: OK — {len(overrides)} override(s)")
    checks = f", checks {', '.join(c.id for c in config.checks)}" if config.checks else ""
    typer.echo(
        f"{config_file}: OK — {len(section.ip_addresses)} target(s), "
        f"names {', '.join(section.names())}, provider {options.provider}{checks}"
    )


@dataclass(slots=True)
class _Audit:
    target: str
    health: Health
    results: list[ProbeResult]


async def _probe_single(config: Config, options: Options, targets: list[str]) -> list[_Audit]:
    """The single probe of ``--type``: ``max(fall, rise)`` rounds, ``interval`` apart."""
    probe = build_probe(config, options)
    audits = [_Audit(t, Health(), []) for t in targets]
    rounds = max(config.failure_threshold, config.rise_threshold)
    await probe.start()
    try:
        for n in range(rounds):
            if n:
                await asyncio.sleep(config.interval)
            results = await asyncio.gather(*(probe.probe(a.target) for a in audits))
            for audit, result in zip(audits, results, strict=True):
                audit.results.append(result)
                audit.health, _ = observe(
                    audit.health,
                    result.ok,
                    fall=config.failure_threshold,
                    rise=config.rise_threshold,
                )
    finally:
        await probe.close()
    return audits


async def _probe_checks(config: Config, targets: list[str]) -> list[_Audit]:
    """``[[checks]]``: each check as many times as its rise/fall needs; worst of them."""
    assessed = await assess(config.checks, targets)
    return [
        _Audit(
            target,
            Health(state),
            [r._replace(error=f"{cid}: {r.error}") if r.error else r for cid, r in results],
        )
        for target, (state, results) in assessed.items()
    ]


async def _run_plan(config: Config, options: Options) -> tuple[list[_Audit], Plan]:
    section = config.section_for(options.provider)
    targets = list(section.ip_addresses)
    if config.checks:
        audits = await _probe_checks(config, targets)
    else:
        audits = await _probe_single(config, options, targets)
    provider = build_provider(config, options, AuditLog())
    try:
        current: dict[str, list[Record]] = {}
        for name in section.names():
            current[name] = await provider.records(name)
    finally:
        await provider.close()
    ttl, proxied = record_attributes(section)
    overrides = {t: e.mode for t, e in load_overrides(config.overrides_file).items()}
    decisions = {
        a.target: apply_override(a.health.state, overrides.get(a.target, Override.AUTO))
        for a in audits
    }
    return audits, make_plan(
        section.names(),
        section.ip_addresses,
        decisions,
        current,
        ttl=ttl,
        proxied=proxied,
        overridden=set(overrides),
    )


@app.command("plan")
def plan_command(
    config_file: ConfigOpt = Path("goavail.toml"),
    dns_provider: ProviderOpt = ProviderKind.cloudflare,
    probe_type: ProbeOpt = ProbeKind.ip,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """One-shot dry-run audit: probe, read DNS, print the changes goavail would make."""
    setup_logging("text", False)
    logging.getLogger().setLevel(logging.WARNING)
    options = Options(config_file, True, probe_type.value, dns_provider.value)
    config = _load(options)
    try:
        audits, result = asyncio.run(_run_plan(config, options))
    except (SetupError, ConfigError) as exc:
        raise _fail(str(exc), 2) from None
    except (ProbeSetupError, ProviderError) as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        typer.echo(json.dumps(_plan_json(audits, result), indent=2))
    else:
        typer.echo(_plan_table(audits, result))


def _plan_json(audits: list[_Audit], result: Plan) -> dict[str, Any]:
    return {
        "targets": [
            {
                "address": a.target,
                "state": str(a.health.state),
                "probes": len(a.results),
                "ok": sum(r.ok for r in a.results),
                "last_error": next((r.error for r in reversed(a.results) if r.error), None),
            }
            for a in audits
        ],
        "changes": [
            {
                "action": c.action,
                "name": c.record.name,
                "type": c.record.type,
                "address": c.record.content,
                "reason": c.reason,
            }
            for c in result.changes
        ],
        "fail_open": [
            {"name": f.name, "type": f.type, "kept": list(f.kept)} for f in result.fail_open
        ],
    }


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _plan_table(audits: list[_Audit], result: Plan) -> str:
    targets = [["TARGET", "STATE", "PROBES OK", "LAST ERROR"]] + [
        [
            a.target,
            str(a.health.state),
            f"{sum(r.ok for r in a.results)}/{len(a.results)}",
            next((r.error or "" for r in reversed(a.results) if r.error), ""),
        ]
        for a in audits
    ]
    out = [_table(targets), ""]
    if result.changes:
        changes = [["ACTION", "NAME", "TYPE", "ADDRESS", "REASON"]] + [
            [c.action, c.record.name, c.record.type, c.record.content, c.reason]
            for c in result.changes
        ]
        out.append(_table(changes))
    else:
        out.append("No changes: DNS matches the targets' health.")
    for f in result.fail_open:
        out.append(
            f"WARNING: fail-open for {f.name} {f.type}: every configured address is down; "
            f"keeping {', '.join(f.kept)}"
        )
    return "\n".join(out)


def main() -> None:
    """Entry point of the ``goavail`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
