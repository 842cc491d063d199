"""Command-line interface, compatible with the Go original's flags.

    goavail monitor  [-f goavail.toml] [--dry-run/--no-dry-run] [-b] [-t ip|tcp] [-p PROVIDER]
    goavail validate [-f goavail.toml] [-p PROVIDER] [-t ip|tcp]
    goavail plan     [-f goavail.toml] [-p PROVIDER] [-t ip|tcp] [--json] [--detailed-exitcode]
    goavail failback TARGET [-f goavail.toml] [--url URL ...] [--reason TEXT]
    goavail explain  NAME [-f goavail.toml] [--url URL] [--json]
    goavail proxy    [-f goavail.toml] [-p PORT | -b IP:PORT] [-H HOST:PORT,...] [-c CHECK]
                     [--on-failover PATH] [-B MAX_BACKOFF] ... (flopsy's flags)
    goavail --version

Without ``-p``, the provider is the one of the file's only provider section
(``[Cloudflare]``, ``[Route53]``, ``[RFC2136]``, ``[Zonefile]``); with none or
several, ``cloudflare`` (the Go original's default). A top-level ``providers`` list
publishes to several providers at once; ``-p`` then restricts the run to one of them.

Exit codes: 0 success; 1 runtime failure (cannot open probe sockets, provider
unreachable in ``plan``); 2 invalid configuration or usage.
``plan --detailed-exitcode`` (terraform's ``plan -detailed-exitcode``): 0 no
changes, 1 any error (invalid configuration and usage included), 2 changes pending.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from goavail import __version__
from goavail.brake import brake
from goavail.checks.base import ProbeResult, ProbeSetupError
from goavail.checks.multi import assess
from goavail.cluster.serf_agent import SerfAgentError
from goavail.compose import (
    assignment_of,
    build_provider,
    check_loaded,
    check_sections,
    compose,
    publication_of,
    run_of,
)
from goavail.config import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    Config,
    ConfigError,
    choose_provider,
    load_config,
    provider_sections,
)
from goavail.decision import Override, apply_override
from goavail.dns.audit import AuditLog
from goavail.dns.model import FailClosed, FailOpen, Plan
from goavail.dns.plan import plan_names
from goavail.dns.providers.base import ProviderError
from goavail.dns.registry import REGISTRY
from goavail.errors import SetupError
from goavail.health import Health, State
from goavail.judges import describe_judges, pool_checks, pools_of
from goavail.logs import setup_logging
from goavail.options import Options
from goavail.overrides import load_overrides
from goavail.pools import Publication
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
ProviderKind = enum.StrEnum("ProviderKind", [(name, name) for name in REGISTRY])  # type: ignore[misc]
"""``--dns-provider``'s choices: the registry's names, in its order."""
ProviderOpt = Annotated[
    ProviderKind | None,
    typer.Option(
        "--dns-provider",
        "-p",
        help=f"DNS provider: {', '.join(REGISTRY)}. Default: the provider "
        f"of the file's only provider section, else {DEFAULT_PROVIDER} (as the Go original).",
        show_default=False,
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"goavail: {message}", err=True)
    return typer.Exit(code)


def _load(
    config_file: Path,
    dns_provider: ProviderKind | None,
    *,
    dry_run: bool = True,
    probe_type: ProbeKind = ProbeKind.ip,
    invalid: int = 2,
) -> tuple[Config, Options]:
    """Load the config, choose the provider and check both.

    Args:
        config_file: the ``-f`` path.
        dns_provider: the ``-p`` value, or None when not given (the provider is then
            chosen by :func:`goavail.config.choose_provider`).
        dry_run, probe_type: the other command-line choices.
        invalid: the exit code for an invalid configuration (2; 1 under
            ``plan --detailed-exitcode``).

    Raises:
        typer.Exit: with code ``invalid`` after printing every problem.
    """
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        raise _fail(str(exc), invalid) from None
    provider = choose_provider(config, None if dns_provider is None else dns_provider.value)
    options = Options(
        config_file, dry_run, probe_type.value, provider, explicit_provider=dns_provider is not None
    )
    try:
        check_loaded(config, options)
    except ConfigError as exc:
        raise _fail(str(exc), invalid) from None
    return config, options


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
    dns_provider: ProviderOpt = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Log lines as text or JSON.")
    ] = LogFormat.text,
) -> None:
    """Probe the targets and keep DNS in step with their health, until SIGTERM."""
    setup_logging(log_format.value, debug)
    config, options = _load(config_file, dns_provider, dry_run=dry_run, probe_type=probe_type)
    try:
        agent = compose(config, options)
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
    dns_provider: ProviderOpt = None,
    probe_type: ProbeOpt = ProbeKind.ip,
) -> None:
    """Check the configuration file: exit 0, or exit 2 listing every problem."""
    config, options = _load(config_file, dns_provider, probe_type=probe_type)
    try:
        overrides = load_overrides(config.overrides_file)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    published = publication_of(config, options)
    if overrides:
        typer.echo(f"{config.overrides_file}: OK — {len(overrides)} override(s)")
    checks = f", checks {', '.join(c.id for c in config.checks)}" if config.checks else ""
    pools = f", {len(config.pools)} pool(s)" if config.pools else ""
    if config.providers is None:
        where = f"provider {options.provider}{_provider_origin(config, dns_provider)}"
    else:
        where = "providers " + ", ".join(
            f"{name} ({_count(len(published.specs_for(name)), 'name')})"
            for name in published.providers
        )
        if options.explicit_provider:
            where += f" (-p restricts the file's providers {', '.join(config.providers)})"
    if config.floating_ips:
        groups = ", ".join(g.id for g in config.floating_ips)
        fips = f"floating IP group(s) {groups}"
        if not run_of(config, options):
            where, pools = fips, ""
        else:
            pools += f", {fips}"
    typer.echo(
        f"{config_file}: OK — {len(published.targets)} target(s), "
        f"names {', '.join(published.names) or 'none'}, {where}{pools}{checks}"
    )
    for line in _judging_lines(config, options, published):
        typer.echo(line)


def _judging_lines(config: Config, options: Options, published: Publication) -> list[str]:
    """Which checks judge each pool, and each target in pools judged differently, when
    ``[[pools]]`` choose their checks or thresholds (else nothing: every check judges
    every target)."""
    if not any(
        p.checks is not None or p.failure_threshold or p.rise_threshold for p in config.pools
    ):
        return []
    sections, _ = check_sections(config, options)
    settings = {pool.name: pool for pool in config.pools}
    lines = []
    for name, addresses in published.pools.items():
        judging = ", ".join(
            f"{check_id} (fall {fall}, rise {rise})"
            for check_id, (fall, rise) in pool_checks(sections, settings.get(name))
        )
        lines.append(f"  pool {name}: {len(addresses)} target(s) judged by {judging}")
    assignment = assignment_of(config, options, published)
    for target, held in pools_of(published).items():
        judging_pools = {tuple(c for c, _ in pool_checks(sections, settings.get(p))) for p in held}
        if len(judging_pools) > 1:  # its pools differ: it is judged by their union
            lines.append(
                f"  target {target} (pools {', '.join(held)}): judged by "
                + ", ".join(describe_judges(assignment, sections, target))
            )
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _provider_origin(config: Config, dns_provider: ProviderKind | None) -> str:
    """Why this provider, when ``-p`` did not say: `` (from [Zonefile], ...)`` or ``""``."""
    if dns_provider is not None:
        return ""
    present = provider_sections(config)
    if len(present) == 1:
        return f" (from [{PROVIDERS[present[0]][0]}], the file's only provider section)"
    sections = ", ".join(f"[{PROVIDERS[name][0]}]" for name in present)
    return f" (the default; the file has {sections}: choose with --dns-provider)"


@dataclass(slots=True)
class _Audit:
    target: str
    health: Health
    results: list[ProbeResult]
    checks: tuple[str, ...] = ()
    """The ids of the checks that judge the target."""


async def _probe(config: Config, options: Options, targets: list[str]) -> list[_Audit]:
    """Each check (``[[checks]]``, or the one ``--type`` stands for) as many times as its
    rise/fall needs, ``interval`` apart; a target is the worst of its checks."""
    sections, single = check_sections(config, options)
    assignment = assignment_of(config, options)
    assessed = await assess(sections, targets, assignment)
    return [
        _Audit(
            target,
            Health(state),
            [
                r._replace(error=f"{cid}: {r.error}") if r.error and not single else r
                for cid, r in results
            ],
            assignment.checks_of(target),
        )
        for target, (state, results) in assessed.items()
    ]


class _ProviderFailed(Exception):
    """``plan``: reading one provider failed (its name and the error)."""

    def __init__(self, provider: str, error: ProviderError) -> None:
        super().__init__(f"{provider}: {error}")


async def _read_plan(
    config: Config,
    options: Options,
    name: str,
    published: Publication,
    decisions: dict[str, State],
    overridden: set[str],
    held: frozenset[str],
) -> Plan:
    """One provider's plan: its records read, its names planned."""
    specs = published.specs_for(name)
    provider = build_provider(config, options, AuditLog(), name)
    try:
        current = await provider.records_for([spec.name for spec in specs])
    except ProviderError as exc:
        raise _ProviderFailed(name, exc) from exc
    finally:
        await provider.close()
    return plan_names(specs, decisions, current, overridden=overridden, held=held)


async def _run_plan(config: Config, options: Options) -> tuple[list[_Audit], dict[str, Plan]]:
    """Probe, then each provider of the run read and planned (side by side)."""
    published = publication_of(config, options)
    audits = await _probe(config, options, list(published.targets))
    overrides = {t: e.mode for t, e in load_overrides(config.overrides_file).items()}
    decisions = {
        a.target: apply_override(a.health.state, overrides.get(a.target, Override.AUTO))
        for a in audits
    }
    settings = config.brake_settings()
    held: frozenset[str] = frozenset()
    if settings is not None and not (config.members and config.members.min_peers_agree):
        held = brake(
            published.groups(),
            decisions,
            {},
            max_down_share=settings.max_down_share,
            min_targets=settings.min_targets,
            exempt=[t for t, mode in overrides.items() if mode is Override.DOWN],
            shares=published.shares,
        ).held
        if held:
            typer.echo(
                f"brake: too many targets down at once; {len(held)} held in DNS: "
                + ", ".join(sorted(held))
            )
    run = run_of(config, options)
    plans = await asyncio.gather(
        *(
            _read_plan(config, options, name, published, decisions, set(overrides), held)
            for name in run
        )
    )
    return audits, dict(zip(run, plans, strict=True))


DETAILED_EXITCODE = "--detailed-exitcode"
CHANGES_PENDING = 2
"""``plan --detailed-exitcode``: the plan has changes (terraform's ``-detailed-exitcode``)."""


class _PlanCommand(TyperCommand):
    """``plan``'s command: a usage error exits 1, not click's 2, under ``--detailed-exitcode``.

    With ``--detailed-exitcode`` every error exits 1 so that 2 only ever means "changes
    pending", as terraform's ``plan`` does (it returns 1 for flag errors too).
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # ctx and the error are click's, which typer ≥ 0.2x vendors privately: duck-typed here.
        detailed = DETAILED_EXITCODE in args
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            if detailed and getattr(exc, "exit_code", None) == 2:  # click's UsageError
                setattr(exc, "exit_code", 1)  # noqa: B010 - click types it as a ClassVar
            raise


@app.command("plan", cls=_PlanCommand)
def plan_command(
    config_file: ConfigOpt = Path("goavail.toml"),
    dns_provider: ProviderOpt = None,
    probe_type: ProbeOpt = ProbeKind.ip,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            DETAILED_EXITCODE,
            help="Exit 0 when there are no changes, 2 when changes are pending, 1 on any "
            "error (invalid configuration included), as terraform plan -detailed-exitcode.",
        ),
    ] = False,
) -> None:
    """One-shot dry-run audit: probe, read DNS, print the changes goavail would make."""
    setup_logging("text", False)
    logging.getLogger().setLevel(logging.WARNING)
    invalid = 1 if detailed_exitcode else 2
    config, options = _load(config_file, dns_provider, probe_type=probe_type, invalid=invalid)
    from goavail.fip.hetzner import HetznerError
    from goavail.fip.oneshot import GroupPlan, plan_groups, plan_json, plan_lines

    groups: list[GroupPlan] = []
    try:
        audits, plans = (
            asyncio.run(_run_plan(config, options)) if run_of(config, options) else ([], {})
        )
        if config.floating_ips:
            groups = asyncio.run(plan_groups(config, check_sections(config, options)[0]))
    except (SetupError, ConfigError) as exc:
        raise _fail(str(exc), invalid) from None
    except (ProbeSetupError, ProviderError, _ProviderFailed, HetznerError) as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        doc = _plan_json(audits, plans)
        if groups:
            doc["floating_ips"] = plan_json(groups)
        typer.echo(json.dumps(doc, indent=2))
    else:
        if plans:
            typer.echo(_plan_table(audits, plans))
        for line in plan_lines(groups):
            typer.echo(line)
    moves = any(g.plan.moves for g in groups)
    if detailed_exitcode and (moves or any(plan.changes for plan in plans.values())):
        raise typer.Exit(CHANGES_PENDING)


def _fail_open(plans: dict[str, Plan]) -> list[FailOpen]:
    """Fail-open cases of every provider's plan, each name and type once."""
    return list({(f.name, f.type): f for plan in plans.values() for f in plan.fail_open}.values())


def _fail_closed(plans: dict[str, Plan]) -> list[FailClosed]:
    """Fail-closed cases of every provider's plan, each name and type once."""
    return list({(f.name, f.type): f for plan in plans.values() for f in plan.fail_closed}.values())


def _plan_json(audits: list[_Audit], plans: dict[str, Plan]) -> dict[str, Any]:
    """``{"providers": [name], "targets": [...], "changes": [... "provider"],
    "fail_open": [...], "fail_closed": [...]}``."""
    return {
        "providers": list(plans),
        "targets": [
            {
                "address": a.target,
                "state": str(a.health.state),
                "checks": list(a.checks),
                "probes": len(a.results),
                "ok": sum(r.ok for r in a.results),
                "last_error": next((r.error for r in reversed(a.results) if r.error), None),
            }
            for a in audits
        ],
        "changes": [
            {
                "provider": provider,
                "action": c.action,
                "name": c.record.name,
                "type": c.record.type,
                "address": c.record.content,
                "reason": c.reason,
            }
            for provider, plan in plans.items()
            for c in plan.changes
        ],
        "fail_open": [
            {"name": f.name, "type": f.type, "kept": list(f.kept)} for f in _fail_open(plans)
        ],
        "fail_closed": [
            {"name": f.name, "type": f.type, "down": list(f.down)} for f in _fail_closed(plans)
        ],
    }


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _plan_table(audits: list[_Audit], plans: dict[str, Plan]) -> str:
    """The targets (with a CHECKS column when pools choose their checks), then the
    changes (with a PROVIDER column when there are several providers), then the
    fail-open warnings."""
    # CHECKS only when pools choose their checks (targets judged by different ones)
    per_pool = len({a.checks for a in audits}) > 1
    targets = [
        ["TARGET", "STATE", *(["CHECKS"] if per_pool else []), "PROBES OK", "LAST ERROR"]
    ] + [
        [
            a.target,
            str(a.health.state),
            *([",".join(a.checks)] if per_pool else []),
            f"{sum(r.ok for r in a.results)}/{len(a.results)}",
            next((r.error or "" for r in reversed(a.results) if r.error), ""),
        ]
        for a in audits
    ]
    out = [_table(targets), ""]
    several = len(plans) > 1
    rows = [
        ([provider] if several else [])
        + [c.action, c.record.name, c.record.type, c.record.content, c.reason]
        for provider, plan in plans.items()
        for c in plan.changes
    ]
    if rows:
        head = (["PROVIDER"] if several else []) + ["ACTION", "NAME", "TYPE", "ADDRESS", "REASON"]
        out.append(_table([head, *rows]))
        if several:
            out.extend(
                f"{provider}: no changes" for provider, plan in plans.items() if not plan.changes
            )
    else:
        out.append("No changes: DNS matches the targets' health.")
    for f in _fail_open(plans):
        out.append(
            f"WARNING: fail-open for {f.name} {f.type}: every configured address is down; "
            f"keeping {', '.join(f.kept)}"
        )
    for c in _fail_closed(plans):
        out.append(
            f"WARNING: fail-closed for {c.name} {c.type}: every configured address is down "
            f"and all_down = fail-closed; withdrawing {', '.join(c.down)} (NODATA)"
        )
    return "\n".join(out)


FAILBACK_TIMEOUT = 10.0
"""Seconds ``goavail failback`` waits for each agent's answer."""


def agent_url(config_file: Path) -> str:
    """The running agent's HTTP address from ``[Server] listen`` of ``config_file``
    (``http://127.0.0.1:8080`` when the file is missing; a wildcard listen address is
    reached on loopback).

    Raises:
        ConfigError: the file exists but is invalid.
    """
    if not config_file.exists():
        return "http://127.0.0.1:8080"
    host, port = load_config(config_file).server.host_port()
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command("failback")
def failback_command(
    target: Annotated[str, typer.Argument(help="The target address to publish again.")],
    config_file: ConfigOpt = Path("goavail.toml"),
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            help="The agent's HTTP address (default: [Server] listen of the config file). "
            "Repeat it to release the target at every agent of a cluster.",
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log.")] = "",
) -> None:
    """Publish a recovered target again that its failback gate holds (failback = "manual"),
    through the running agent's API (POST /api/failback; token from GOAVAIL_ADMIN_TOKEN).

    Exit 0 when every agent answered (released, or nothing to release), 1 when one could
    not be reached or refused, 2 for bad usage.
    """
    import httpx

    from goavail.web.server import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise _fail(f"set {TOKEN_ENV} to the agent's admin token", 2)
    try:
        urls = url or [agent_url(config_file)]
    except ConfigError as exc:
        raise _fail(f"{exc} (or give --url)", 2) from None
    failed = False
    for base in urls:
        try:
            answer = httpx.post(
                base.rstrip("/") + "/api/failback",
                json={"target": target, "reason": reason, "source": "cli"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=FAILBACK_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            typer.echo(f"goavail: {base}: cannot reach the agent: {exc}", err=True)
            failed = True
            continue
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200 or not isinstance(body, dict):
            problems = "; ".join(body.get("problems", [])) if isinstance(body, dict) else ""
            error = body.get("error", answer.reason_phrase) if isinstance(body, dict) else ""
            detail = f": {problems}" if problems else ""
            typer.echo(f"goavail: {base}: {answer.status_code} {error}{detail}", err=True)
            failed = True
            continue
        if body.get("released"):
            held = " (still suppressed by flap damping)" if body.get("suppressed") else ""
            typer.echo(f"{base}: {target} released: announced {body.get('announced')}{held}")
        else:
            typer.echo(
                f"{base}: {target}: nothing to release (its failback gate is "
                f"{body.get('gate')}; announced {body.get('announced')})"
            )
    if failed:
        raise typer.Exit(1)


@app.command("explain")
def explain_command(
    name: Annotated[str, typer.Argument(help="The managed name to explain.")],
    config_file: ConfigOpt = Path("goavail.toml"),
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="The agent's HTTP address (default: [Server] listen of the config file)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON document.")] = False,
) -> None:
    """Why NAME has exactly its records now, from the running agent (GET /api/explain):
    per address its checks, verdicts, gates, votes, override, brake and planned answer.

    Exit 0 on an answer, 1 when the agent cannot be reached, 2 for a name it does not
    manage (or bad usage).
    """
    import httpx

    from goavail.explain import render

    try:
        base = (url or agent_url(config_file)).rstrip("/")
    except ConfigError as exc:
        raise _fail(f"{exc} (or give --url)", 2) from None
    try:
        answer = httpx.get(base + "/api/explain", params={"name": name}, timeout=FAILBACK_TIMEOUT)
    except httpx.HTTPError as exc:
        raise _fail(f"{base}: cannot reach the agent: {exc}", 1) from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _fail(f"{base}: {answer.status_code} {answer.reason_phrase}: not the agent's API", 1)
    if answer.status_code in (400, 404):
        raise _fail(f"{base}: {body.get('error', answer.reason_phrase)}", 2)
    if answer.status_code != 200:
        raise _fail(f"{base}: {answer.status_code} {body.get('error', answer.reason_phrase)}", 1)
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False) if as_json else render(body))


def main() -> None:
    """Entry point of the ``goavail`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


def _duration_flag(value: str | None) -> float | str | None:
    """A duration flag: a bare number is seconds (flopsy's ``--max-backoff 30``); any
    other text goes to the ``[Proxy]`` validation as it is (``"500ms"``, ``"1m"``)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


@app.command()
def proxy(
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config-file", "-f", help="TOML file with a [Proxy] section (and \\[\\[checks]])."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", "-p", help="Port to accept on, every address.")
    ] = None,
    bind: Annotated[
        str | None, typer.Option("--bind", "-b", help="IP:PORT to accept on instead of --port.")
    ] = None,
    hosts: Annotated[
        str | None,
        typer.Option("--hosts", "-H", help="Backends, comma-separated HOST:PORT, by preference."),
    ] = None,
    check: Annotated[
        str | None,
        typer.Option(
            "--check", "--check-host", "-c", help="Program run as `CHECK host:port`; 0 = usable."
        ),
    ] = None,
    on_failover: Annotated[
        Path | None,
        typer.Option(
            "--on-failover",
            help="Trigger program, or directory of them, run with the new primary.",
        ),
    ] = None,
    max_backoff: Annotated[
        str | None,
        typer.Option("--max-backoff", "-B", help="Longest wait between selection rounds (30s)."),
    ] = None,
    drain: Annotated[
        str | None,
        typer.Option("--drain", help="Close connections to a former primary after this long."),
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option("--max-connections", help="Connections at once (1000).")
    ] = None,
    relay: Annotated[
        str | None, typer.Option("--relay", help="auto (default), splice or stream.")
    ] = None,
    status_listen: Annotated[
        str | None,
        typer.Option(
            "--status-listen",
            help="IP:PORT of the status page, /api/status, /metrics ('off': none). "
            "Default: [Server] of -f's file, else none.",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log at debug level.")] = False,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Log lines as text or JSON.")
    ] = LogFormat.text,
) -> None:
    """Relay TCP connections to one primary backend and fail over (flopsy), until SIGTERM."""
    from goavail.config import split_host_port
    from goavail.proxy.main import run, settings_from

    setup_logging(log_format.value, debug)
    config: Config | None = None
    if config_file is not None:
        try:
            config = load_config(config_file)
        except ConfigError as exc:
            raise _fail(str(exc), 2) from None
    flags: dict[str, Any] = {
        "port": port,
        "listen": bind,
        "hosts": hosts,
        "check": check,
        "on_failover": str(on_failover) if on_failover is not None else None,
        "max_backoff": _duration_flag(max_backoff),
        "drain": _duration_flag(drain),
        "max_connections": max_connections,
        "relay": relay,
    }
    try:
        settings, checks = settings_from(config, flags, base_dir=Path.cwd())
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    status: tuple[str, int] | None = None
    setting = "--status-listen"
    if status_listen is not None and status_listen != "off":
        try:
            status = split_host_port(status_listen)
        except ValueError as exc:
            raise _fail(f"--status-listen: {exc}", 2) from None
    elif status_listen is None and config is not None and config.server.enabled:
        status, setting = config.server.host_port(), "[Server] listen"
    raise typer.Exit(asyncio.run(run(settings, checks, status, status_setting=setting)))
