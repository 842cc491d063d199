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

from goavail.agent import Agent, Loaded, Parts
from goavail.checks.multi import CheckSet, check_problems
from goavail.config import (
    PROVIDERS,
    CheckSection,
    Config,
    ConfigError,
    DnsSection,
    Members,
    check_runtime,
    cluster_mode,
    load_config,
)
from goavail.decision import DecisionStage
from goavail.dns.audit import AuditLog
from goavail.dns.providers.base import Provider
from goavail.dns.reconcile import Reconciler
from goavail.dns.registry import build_provider as build_from_registry
from goavail.dns.registry import record_attributes
from goavail.errors import SetupError
from goavail.events import Bus
from goavail.heartbeat import Heartbeat
from goavail.hooks import HookRunner, hooks_dir_problem
from goavail.judges import Assignment, assign
from goavail.notify import Notifier
from goavail.options import PROBE_KINDS, Options
from goavail.overrides import Overrides, load_overrides
from goavail.pools import Publication, publication
from goavail.pools import problems as pool_problems

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
    """Check a loaded config against the command-line options (provider, probe type).

    Raises:
        ConfigError: listing every problem found.
    """
    problems = check_runtime(config, provider=options.provider, probe_type=options.probe_type)
    if not problems:  # the provider's section exists
        section = config.section_for(options.provider)
        problems += pool_problems(config, section, PROVIDERS[options.provider][0])
        problems += assignment_of(config, options).problems
    problems += check_problems(config.checks)
    hooks_problem = hooks_dir_problem(config.hooks_dir)
    if hooks_problem is not None:
        problems.append(hooks_problem)
    if problems:
        raise ConfigError(problems, options.config_path)


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
    """What a run with ``--dns-provider`` publishes (see :mod:`goavail.pools`).

    Raises:
        ConfigError: the provider's section is missing.
    """
    section = config.section_for(options.provider)
    return publication(config, section, PROVIDERS[options.provider][0])


def build_provider(config: Config, options: Options, audit: AuditLog) -> Provider:
    """The DNS provider chosen by ``--dns-provider`` (see :mod:`goavail.dns.registry`).

    Raises:
        ConfigError: its section is missing.
        SetupError: the provider cannot be set up (credentials missing, AWS
            configuration unusable, ...).
    """
    section = config.section_for(options.provider)
    return build_from_registry(options.provider, section, dry_run=options.dry_run, audit=audit)


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
    return section.model_dump(exclude={"hostnames", "ip_addresses"})


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
        section = new.section_for(self.options.provider)
        provider, audit = running.provider, running.audit
        try:
            if new.audit_file != old.audit_file:
                audit = AuditLog(new.audit_file, on_record=running.audit.on_record)
            provider_changed = _provider_settings(section) != _provider_settings(running.section)
            if provider_changed or audit is not running.audit:
                provider = build_provider(new, self.options, audit)
            sections, single = check_sections(new, self.options)
            published = publication_of(new, self.options)
            assignment = assignment_of(new, self.options, published)
            prepared = await checks.prepare(sections, single=single, assignment=assignment)
        except BaseException:
            if provider is not running.provider:
                await provider.close()
            if audit is not running.audit:
                audit.close()
            raise
        return Parts(
            config=new,
            section=section,
            publication=published,
            audit=audit,
            provider=provider,
            overrides=loaded.overrides,
            checks=prepared,
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
        ConfigError: the provider's section is missing, or the overrides file is invalid.
        SetupError: the provider cannot be set up (credentials missing, ...).
    """
    section = config.section_for(options.provider)
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
        section=section,
        publication=publication_of(config, options),
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
            targets=lambda: agent.targets,
            on_decision=agent.on_decision,
            on_quorum=agent.on_quorum,
            on_name_conflict=agent.on_name_conflict,
            on_override=agent.on_peer_override,
            on_caught_up=agent.on_caught_up,
        )
    audit = AuditLog(config.audit_file, on_record=agent.on_audit_record)
    provider = build_provider(config, options, audit)
    sections, single = check_sections(config, options)
    ttl, proxied = record_attributes(section)
    reconciler = Reconciler(
        provider,
        names=agent.publication.names,
        addresses=agent.publication.targets,
        decisions=decision.effective,
        overridden=decision.forced,
        ttl=ttl,
        proxied=proxied,
        resync_interval=config.resync_interval,
        hold=agent.hold if cluster is not None else None,
        on_fail_open=agent.on_fail_open,
        specs=agent.publication.specs,
        held=agent.held,
    )
    checks = CheckSet(
        sections,
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
        provider=provider,
        cluster=cluster,
        reconciler=reconciler,
        checks=checks,
        overrides=table,
        file_overrides=load_overrides(config.overrides_file),
    )
    if config.server.enabled:
        from goavail.web.server import WebServer

        agent.web = WebServer(config.server, agent)
    return agent


__all__ = [
    "Assembler",
    "assignment_of",
    "build_provider",
    "check_loaded",
    "check_sections",
    "compose",
    "default_node_name",
    "load_checked",
    "publication_of",
    "single_check",
]
