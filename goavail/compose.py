"""The composition root: every part of a running agent is built here, from a validated config.

After octodns's ``Manager`` and external-dns's controller set-up: this module knows
which classes make goavail (the checks, ``--type``'s included, the provider from
:mod:`goavail.dns.registry`, the reconciler, the cluster service, the notifier, the
hooks, the HTTP server) and how they are tied to each other; the
:class:`~goavail.agent.Agent` only runs what it is given.

* :func:`compose` builds a whole agent once, at start-up;
* :class:`Assembler` is the agent's reload port: it loads the file again
  (:meth:`Assembler.load`) and builds the complete new set of the parts a reload may
  replace (:meth:`Assembler.build`), reusing the running ones that did not change; on
  any failure it closes what it built, so the running set is untouched.

The heavy libraries (the provider SDKs, aiohttp) are imported only for the parts a
configuration uses (see ``tests/unit/test_imports.py``).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from goavail.agent import Agent, Loaded, Parts, ReconcilerFactory
from goavail.checks.multi import CheckSet, check_problems
from goavail.config import (
    CheckSection,
    Config,
    ConfigError,
    DnsSection,
    Members,
    check_runtime,
    cluster_mode,
    load_config,
    providers_in_use,
    run_providers,
)
from goavail.decision import DecisionStage
from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, FailClosed, FailOpen
from goavail.dns.plan import NameSpec
from goavail.dns.propagation import Lag
from goavail.dns.providers.base import Provider
from goavail.dns.reconcile import PassOutcome, Reconciler
from goavail.dns.registry import build_provider as build_from_registry
from goavail.dns.registry import record_attributes
from goavail.dns.verifiers import VerifierSet
from goavail.errors import SetupError
from goavail.events import Bus, PropagationLagChanged
from goavail.fip.groups import without_fip_judges
from goavail.heartbeat import Heartbeat
from goavail.hooks import HookRunner, hooks_dir_problem
from goavail.judges import Assignment, assign
from goavail.notify import Notifier
from goavail.options import PROBE_KINDS, Options
from goavail.overrides import Overrides, load_overrides
from goavail.pools import Publication, publication
from goavail.pools import problems as pool_problems

if TYPE_CHECKING:
    from goavail.cluster.service import Cluster
    from goavail.dns.verifier import Verifier
    from goavail.fip.runtime import FipRuntime

log = logging.getLogger("goavail.agent")


def load_checked(options: Options) -> Config:
    """Load the config file and check it against the command-line options.

    Raises:
        ConfigError: listing every problem found.
    """
    config = load_config(options.config_path)
    check_loaded(config, options)
    return config


def check_loaded(config: Config, options: Options) -> None:
    """Check a loaded config against the command-line options (providers, probe type).

    Raises:
        ConfigError: listing every problem found.
    """
    problems = check_runtime(
        config,
        provider=options.provider,
        probe_type=options.probe_type,
        explicit=options.explicit_provider,
    )
    if not problems:  # the providers' sections exist
        problems += pool_problems(
            config, providers_in_use(config, options.provider), run_of(config, options)
        )
        problems += without_fip_judges(
            config, check_sections(config, options)[0], assignment_of(config, options).problems
        )
    problems += check_problems(config.checks)
    hooks_problem = hooks_dir_problem(config.hooks_dir)
    if hooks_problem is not None:
        problems.append(hooks_problem)
    if problems:
        raise ConfigError(problems, options.config_path)


def run_of(config: Config, options: Options) -> tuple[str, ...]:
    """The providers a run publishes to (see :func:`goavail.config.run_providers`)."""
    return run_providers(config, options.provider, explicit=options.explicit_provider)


def sections_of(config: Config, options: Options) -> dict[str, DnsSection]:
    """Provider name -> its section, for every provider of the run, in the run's order.

    Raises:
        ConfigError: a section is missing.
    """
    return {name: config.section_for(name) for name in run_of(config, options)}


def single_check(config: Config, options: Options) -> CheckSection:
    """The check ``--type`` stands for: ICMP echo (``ip``) or a TCP connect to ``port``
    (``tcp``), every ``interval`` with ``timeout`` (seconds), down after
    ``failure_threshold`` failures, up after ``rise_threshold`` successes.

    Raises:
        SetupError: ``--type tcp`` without ``port`` (the config check reports it first).
    """
    kind = PROBE_KINDS[options.probe_type]
    if kind == "tcp" and config.port is None:  # pragma: no cover - check_runtime checked it
        raise SetupError("port: required by --type tcp")
    # Built from values the top level validated already (its ranges are the checks'):
    # model_construct, so a valid file never fails here.
    return CheckSection.model_construct(
        id=kind,
        type=kind,
        interval=config.interval,
        timeout=config.timeout,
        fall=config.failure_threshold,
        rise=config.rise_threshold,
        port=config.port if kind == "tcp" else None,
    )


def check_sections(config: Config, options: Options) -> tuple[list[CheckSection], bool]:
    """The checks a run uses: ``[[checks]]``, or else the one synthesized from ``--type``.

    Returns:
        ``(sections, single)``: ``single`` is True for the synthesized check (see
        :class:`goavail.checks.multi.CheckSet`).
    """
    if config.checks:
        return list(config.checks), False
    return [single_check(config, options)], True


def assignment_of(
    config: Config, options: Options, published: Publication | None = None
) -> Assignment:
    """Which checks judge which targets in a run (``[[pools]] checks`` and thresholds;
    see :mod:`goavail.judges`); its ``problems`` are config problems.

    Args:
        config: a validated configuration.
        options: the command-line choices (the provider, ``--type``).
        published: the run's publication, when already made (else made here).

    Raises:
        ConfigError: the provider's section is missing.
    """
    sections, _ = check_sections(config, options)
    if published is None:
        published = publication_of(config, options)
    return assign(sections, published, config.pools)


def publication_of(config: Config, options: Options) -> Publication:
    """What a run publishes, per provider (see :mod:`goavail.pools`).

    Raises:
        ConfigError: a provider's section is missing.
    """
    return publication(config, list(sections_of(config, options)))


def build_provider(
    config: Config, options: Options, audit: AuditLog, name: str | None = None
) -> Provider:
    """The DNS provider ``name`` (default: ``--dns-provider``'s), see
    :mod:`goavail.dns.registry`.

    Raises:
        ConfigError: its section is missing.
        SetupError: the provider cannot be set up (credentials missing, AWS
            configuration unusable, ...).
    """
    name = options.provider if name is None else name
    section = config.section_for(name)
    return build_from_registry(name, section, dry_run=options.dry_run, audit=audit)


async def build_providers(
    config: Config,
    options: Options,
    audit: AuditLog,
    running: Mapping[str, tuple[DnsSection, Provider]] | None = None,
) -> dict[str, Provider]:
    """Every provider of the run, in its order: a running one (``running``: name ->
    its section and provider) is reused when its section's settings are unchanged.

    Raises:
        ConfigError, SetupError: as :func:`build_provider`; the providers built so far
            are closed first (the running ones are left alone).
    """
    reusable = running or {}
    built: dict[str, Provider] = {}
    try:
        for name, section in sections_of(config, options).items():
            old = reusable.get(name)
            if old is not None and _provider_settings(section) == _provider_settings(old[0]):
                built[name] = old[1]
            else:
                built[name] = build_provider(config, options, audit, name)
    except BaseException:
        mine = {id(provider) for _, provider in reusable.values()}
        for provider in built.values():
            if id(provider) not in mine:
                await provider.close()
        raise
    return built


def default_node_name(members: Members | None) -> str:
    """This agent's node name when the config sets none (see
    :func:`goavail.cluster.service.default_node_name`); may log a warning."""
    hostname = socket.gethostname()
    if members is None:
        return hostname
    from goavail.cluster.service import default_node_name as cluster_default
    from goavail.cluster.service import route_source

    source = None
    if members.local_addr is None and members.serf_rpc_addr is None:
        source = route_source(members)
    name = cluster_default(hostname, members, source)
    if name == hostname and members.serf_rpc_addr is None:
        log.warning(
            "node name %r: no local_addr and no route to any peer to tell this agent from "
            "another on a host of the same name; set node_name or local_addr",
            name,
        )
    return name


def _provider_settings(section: DnsSection) -> dict[str, object]:
    """The settings of a DNS section that need a new provider object when they change."""
    return section.model_dump(exclude={"hostnames", "ip_addresses", "verify"})


class Assembler:
    """The agent's reload port (:class:`goavail.agent.Assembler`): the config file read
    again, and the parts a reload replaces built from it.

    Args:
        options: the command-line choices (the file's path, provider, probe type, dry-run).
    """

    def __init__(self, options: Options) -> None:
        self.options = options

    def load(self) -> Loaded:
        """Read and check the file and its overrides file (no part is built).

        Raises:
            ConfigError: every problem of the file, or of the overrides file.
        """
        config = load_checked(self.options)
        return Loaded(config, load_overrides(config.overrides_file))

    async def build(self, loaded: Loaded, running: Parts, checks: CheckSet) -> Parts:
        """The complete new set of parts for ``loaded``; a part whose settings did not
        change is the running one. New check engines are started; nothing is switched.

        Args:
            loaded: from :meth:`load`.
            running: the parts in use.
            checks: the running checks; the new ones' engines are built and started
                (:meth:`CheckSet.prepare`), not committed.

        Raises:
            SetupError, ProbeSetupError, OSError, ...: a part cannot be built; every new
                part built so far is closed first, the running ones are untouched.
        """
        new, old = loaded.config, running.config
        sections = sections_of(new, self.options)
        providers, audit = dict(running.providers), running.audit
        mine = {id(p) for p in running.providers.values()}
        try:
            if new.audit_file != old.audit_file:
                audit = AuditLog(new.audit_file, on_record=running.audit.on_record)
            reuse = (
                {n: (running.sections[n], p) for n, p in running.providers.items()}
                if audit is running.audit
                else {}
            )
            providers = await build_providers(new, self.options, audit, reuse)
            sections_checks, single = check_sections(new, self.options)
            published = publication(new, list(sections))
            assignment = assignment_of(new, self.options, published)
            prepared = await checks.prepare(sections_checks, single=single, assignment=assignment)
        except BaseException:
            for provider in providers.values():
                if id(provider) not in mine:
                    await provider.close()
            if audit is not running.audit:
                audit.close()
            raise
        return Parts(
            config=new,
            sections=sections,
            publication=published,
            audit=audit,
            providers=providers,
            overrides=loaded.overrides,
            checks=prepared,
        )


def verifier_set(agent: Agent, providers: Mapping[str, Provider]) -> VerifierSet:
    """The served-answer verifiers of a run (see :mod:`goavail.dns.verifier`): one per
    provider whose section turns ``verify`` on (none in dry-run); a server lagging past
    the limit, and its recovery, go to the agent's bus (the notifier)."""

    def build(name: str, section: DnsSection, provider: Provider) -> Verifier:
        from goavail.dns.verifier import Verifier  # dnspython only when verifying

        settings = section.verification()
        if settings is None:  # pragma: no cover - VerifierSet builds only enabled ones
            raise SetupError(f"{name}: verify is off")

        def on_lag(provider_name: str, lag: Lag, lagging: bool) -> None:
            agent.bus.publish(PropagationLagChanged(provider_name, lag, lagging, settings.limit))

        return Verifier(
            name,
            settings,
            zone=section.domain,
            provider=provider,
            resync_interval=agent.config.resync_interval,
            on_lag=on_lag,
        )

    verifiers = VerifierSet(build, dry_run=agent.options.dry_run)
    verifiers.reconfigure(agent.sections, providers, agent.config.resync_interval)
    return verifiers


def reconciler_factory(
    agent: Agent, cluster: Cluster | None, verifiers: VerifierSet | None = None
) -> ReconcilerFactory:
    """How the agent gets one :class:`Reconciler` per provider (at start-up and for a
    provider a reload adds): tied to the agent's decisions, its writer policy (cluster
    mode), the brake, its fail-open events and its verifier (``verifiers``), all per
    provider."""
    decision = agent.decision

    def make(
        name: str, provider: Provider, specs: tuple[NameSpec, ...], section: DnsSection
    ) -> Reconciler:
        ttl, proxied = record_attributes(section)

        def hold(change: Change) -> float:
            return agent.hold(change, name)

        def on_fail_open(case: FailOpen, engaged: bool) -> None:
            agent.on_fail_open(case, engaged, name)

        def on_pass(outcome: PassOutcome) -> None:
            if verifiers is not None:
                verifiers.offer(name, outcome)

        def on_fail_closed(case: FailClosed, engaged: bool) -> None:
            agent.on_fail_closed(case, engaged, name)

        return Reconciler(
            provider,
            names=[spec.name for spec in specs],
            addresses=[],
            decisions=decision.effective,
            overridden=decision.forced,
            ttl=ttl,
            proxied=proxied,
            resync_interval=agent.config.resync_interval,
            hold=hold if cluster is not None else None,
            on_fail_open=on_fail_open,
            on_fail_closed=on_fail_closed,
            specs=specs,
            held=agent.held,
            on_pass=on_pass if verifiers is not None else None,
        )

    return make


def build_fips(
    agent: Agent,
    config: Config,
    options: Options,
    sections: list[CheckSection],
    cluster: Cluster | None,
) -> FipRuntime:
    """The ``[[floating_ips]]`` groups, tied to the agent's decision stage, its audit
    log and (cluster mode) the cluster (see :mod:`goavail.fip.runtime`).

    Raises:
        SetupError: ``HCLOUD_TOKEN`` is missing.
    """
    from goavail.fip.runtime import FipRuntime

    decision = agent.decision

    def added(addresses: list[str]) -> None:
        if cluster is not None:
            cluster.targets_added()

    def removed(addresses: list[str]) -> None:
        for address in addresses:
            if address in agent.targets:
                continue
            decision.forget(address)
            if cluster is not None:
                cluster.forget_target(address)

    return FipRuntime(
        config,
        sections,
        dry_run=options.dry_run,
        audit=lambda: agent.audit,
        decisions=decision.effective,
        agreed=decision.agreed,
        verdict=agent.fip_verdict,
        dns_targets=agent.targets,
        on_added=added,
        on_removed=removed,
    )


def compose(config: Config, options: Options) -> Agent:
    """Build a whole agent from a validated config (see :func:`load_checked`).

    Args:
        config: the validated configuration.
        options: the command-line choices.

    Returns:
        The agent, its parts built and tied together, nothing started: ``await
        agent.run()``.

    Raises:
        ConfigError: a provider's section is missing, or the overrides file is invalid.
        SetupError: a provider cannot be set up (credentials missing, ...); the ones
            built before it are closed.
    """
    sections = sections_of(config, options)
    members = config.members if cluster_mode(config.members) else None
    node = config.node_name or default_node_name(members)
    decision = DecisionStage(members.min_peers_agree if members else 0)
    notifier = Notifier(config, agent=node)
    hooks = HookRunner(
        config.hooks_dir, timeout=config.hook_timeout, node=node, dry_run=options.dry_run
    )
    bus = Bus()
    bus.subscribe(notifier.on_event)
    bus.subscribe(hooks.on_event)
    agent = Agent(
        config=config,
        options=options,
        sections=sections,
        publication=publication(config, list(sections)),
        node=node,
        decision=decision,
        notifier=notifier,
        heartbeat=Heartbeat(config.heartbeat),
        hooks=hooks,
        bus=bus,
        assembler=Assembler(options),
    )
    cluster = None
    if members is not None:
        from goavail.cluster.service import Cluster

        cluster = Cluster(
            node=node,
            members=members,
            stage=decision,
            targets=lambda: (
                agent.targets if agent.fips is None else agent.fips.watching(agent.targets)
            ),
            on_decision=agent.on_decision,
            on_quorum=agent.on_quorum,
            on_name_conflict=agent.on_name_conflict,
            on_override=agent.on_peer_override,
            on_caught_up=agent.on_caught_up,
        )
    audit = AuditLog(config.audit_file, on_record=agent.on_audit_record)
    try:
        # a failure here ends the process (exit 2): the providers built before the one
        # that failed hold no connection yet (their clients connect on first use)
        providers = {name: build_provider(config, options, audit, name) for name in sections}
    except BaseException:
        audit.close()
        raise
    check_list, single = check_sections(config, options)
    verifiers = verifier_set(agent, providers)
    if config.floating_ips:
        agent.fips = build_fips(agent, config, options, check_list, cluster)
    make_reconciler = reconciler_factory(agent, cluster, verifiers)
    reconcilers = {
        name: make_reconciler(name, provider, agent.publication.specs_for(name), sections[name])
        for name, provider in providers.items()
    }
    checks = CheckSet(
        check_list,
        list(agent.targets),
        agent.on_checks_verdict,
        single=single,
        stats=agent.probe_stats,
        assignment=assignment_of(config, options, agent.publication),
    )
    table = Overrides(
        decision, config.overrides_file, audit=lambda: agent.audit, on_change=agent.on_override
    )
    agent.attach(
        audit=audit,
        providers=providers,
        cluster=cluster,
        reconcilers=reconcilers,
        make_reconciler=make_reconciler,
        checks=checks,
        overrides=table,
        file_overrides=load_overrides(config.overrides_file),
        verifiers=verifiers,
    )
    if config.server.enabled:
        from goavail.web.server import WebServer

        agent.web = WebServer(config.server, agent)
    return agent


__all__ = [
    "Assembler",
    "assignment_of",
    "build_fips",
    "build_provider",
    "build_providers",
    "check_loaded",
    "check_sections",
    "compose",
    "default_node_name",
    "load_checked",
    "publication_of",
    "reconciler_factory",
    "run_of",
    "sections_of",
    "single_check",
    "verifier_set",
]
