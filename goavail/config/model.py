"""The whole file (:class:`Config`) and the choice of provider against it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from goavail.config.checks import CheckSection, _Invalid
from goavail.config.errors import ConfigError, _Problems
from goavail.config.floating_ips import FloatingIpSection, floating_ip_problems
from goavail.config.gates import AUTO, DampingSection, FailbackValue, target_failback
from goavail.config.members import Members
from goavail.config.notifications import (
    SLACK_HOOKS,
    HeartbeatSection,
    NotificationSection,
    _check_http_url,
)
from goavail.config.pools import BrakeSection, NameSection, PoolSection
from goavail.config.providers import (
    CloudflareSection,
    DnsSection,
    RFC2136Section,
    Route53Section,
    ZonefileSection,
)
from goavail.config.proxy import ProxySection, proxy_problems
from goavail.config.values import (
    _MODEL_CONFIG,
    _PROBE_INTERVAL,
    _PROBE_TIMEOUT,
    _THRESHOLD,
    NOTICE_NODE_NAME_BYTES,
    Duration,
    Within,
    _Port,
    _resolve_path,
)
from goavail.config.web import ServerSection
from goavail.gates import DampingSettings, Failback

DEFAULT_PROVIDER = "cloudflare"
"""The provider used when neither ``--dns-provider`` nor the file settles it: the Go
original's ``--dns-provider`` default (kingpin ``Default("cloudflare")`` in its
``cli_options.go``), so its files, which may hold both ``[Cloudflare]`` and
``[Route53]``, behave as they did."""


class Config(BaseModel):
    """The whole configuration file; immutable once validated.

    Attributes:
        failure_threshold: consecutive failed probes after which a target is down (≥ 1).
        rise_threshold: consecutive successful probes after which a target is up
            (≥ 1; defaults to ``failure_threshold``).
        interval: seconds between probes of a target (default 2.0).
        timeout: seconds a probe may take (default min(interval, 1.0); ≤ interval).
        resync_interval: seconds between full DNS re-syncs (default max(60, interval);
            ≥ interval).
        port: TCP probe port (for ``--type tcp``), or None.
        slack_addr: Slack webhook address (secret), or None: the part after
            ``https://hooks.slack.com/services/`` as in the Go original, or a full
            http(s) URL; :meth:`slack_url` gives the URL.
        notifications: ``[[notifications]]`` entries (see :class:`NotificationSection`).
        quorum_alert_after: seconds the cluster quorum must stay unmet before a
            notification says so (default 60).
        heartbeat: the ``[Heartbeat]`` section, or None.
        checks: ``[[checks]]`` entries with every default resolved (see
            :class:`CheckSection`); empty: the single probe of ``--type`` is used.
        hooks_dir: directory whose executables run after each DNS change and
            fail-open change (see goavail/hooks.py), or None.
        hook_timeout: seconds one hook may run before its process group is killed.
        audit_file: audit log file (absolute when loaded by :func:`load_config`), or None.
        node_name: this agent's name in cluster mode, or None.
        overrides_file: TOML file of maintenance overrides (absolute when loaded by
            :func:`load_config`; it may not exist yet), or None.
        members, cloudflare, route53, zonefile, rfc2136: the ``[Members]``,
            ``[Cloudflare]``, ``[Route53]``, ``[Zonefile]`` and ``[RFC2136]``
            sections, or None.
        server: the ``[Server]`` section (defaults when absent).
        providers: the top-level ``providers`` list: the provider sections a run
            publishes to at once (registry names, e.g. ``["cloudflare", "route53"]``),
            or None: the one provider of ``--dns-provider`` (see
            :func:`run_providers`).
        damping: the ``[Damping]`` section (flap damping), or None (off).
        failback: how a target comes back after being down, where no pool or name
            says (``auto``, the default; ``after 5m``; ``manual``): see
            :mod:`goavail.gates`.
        proxy: the ``[Proxy]`` section of ``goavail proxy`` (see
            :class:`~goavail.config.proxy.ProxySection`), or None.
        floating_ips: ``[[floating_ips]]`` groups (see :class:`FloatingIpSection`); a
            file with groups needs no DNS provider section (see :func:`fip_only`).
    """

    model_config = _MODEL_CONFIG

    failure_threshold: Annotated[int, _THRESHOLD] = 3
    # 0 is a sentinel for "not set": resolved to failure_threshold after validation.
    rise_threshold: Annotated[int, _THRESHOLD] = 0
    interval: Annotated[Duration, _PROBE_INTERVAL] = 2.0
    # 0.0 is a sentinel for "not set": resolved to min(interval, 1.0).
    timeout: Annotated[Duration, _PROBE_TIMEOUT] = 0.0
    # 0.0 is a sentinel for "not set": resolved to max(60.0, interval).
    resync_interval: Annotated[
        Duration,
        Within(
            1.0,
            86400.0,
            below="shorter re-reads every record from the provider more than once a second "
            "and runs into its API rate limits",
            above="longer leaves drift (a record edited by hand) unrepaired for more than a day",
        ),
    ] = 0.0
    port: _Port | None = None
    slack_addr: SecretStr | None = None
    audit_file: Path | None = None
    node_name: Annotated[str, Field(min_length=1)] | None = None
    # notifications and heartbeat (goavail/notify/, goavail/heartbeat.py)
    notifications: list[NotificationSection] = Field(default_factory=list)
    quorum_alert_after: Annotated[
        Duration,
        Within(
            0.1,
            86400.0,
            below="shorter notifies every blip of Serf membership",
            above="longer leaves an unmet quorum (no failover possible) unreported for "
            "more than a day",
        ),
    ] = 60.0
    heartbeat: HeartbeatSection | None = Field(default=None, alias="Heartbeat")
    # application-level checks and hooks (goavail/checks/multi.py, goavail/hooks.py)
    checks: list[CheckSection] = Field(default_factory=list)
    hooks_dir: Path | None = None
    hook_timeout: Annotated[
        Duration,
        Within(
            0.1,
            3600.0,
            below="shorter kills a hook before its program has even started",
            above="longer lets one hung hook hold up every later hook (they run one at a "
            "time) for hours",
        ),
    ] = 10.0
    members: Members | None = Field(default=None, alias="Members")
    cloudflare: CloudflareSection | None = Field(default=None, alias="Cloudflare")
    route53: Route53Section | None = Field(default=None, alias="Route53")
    zonefile: ZonefileSection | None = Field(default=None, alias="Zonefile")
    overrides_file: Path | None = None
    server: ServerSection = Field(default_factory=ServerSection, alias="Server")
    rfc2136: RFC2136Section | None = Field(default=None, alias="RFC2136")
    pools: list[PoolSection] = Field(default_factory=list)
    names: list[NameSection] = Field(default_factory=list)
    brake: BrakeSection | None = Field(default=None, alias="Brake")
    # several providers at once (goavail/pools.py, run_providers below)
    providers: list[str] | None = None
    # flap damping and gated failback (goavail/gates.py, goavail/config/gates.py)
    damping: DampingSection | None = Field(default=None, alias="Damping")
    failback: FailbackValue = AUTO
    # the failover TCP proxy of `goavail proxy` (goavail/proxy/, config/proxy.py)
    proxy: ProxySection | None = Field(default=None, alias="Proxy")
    # floating IPs (goavail/fip/)
    floating_ips: list[FloatingIpSection] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value > interval:
            raise ValueError(f"must be ≤ interval ({interval} s)")
        return value

    @field_validator("resync_interval")
    @classmethod
    def _resync_not_below_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value < interval:
            raise ValueError(f"must be ≥ interval ({interval} s)")
        return value

    @field_validator("slack_addr")
    @classmethod
    def _check_slack_addr(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        text = value.get_secret_value()
        if not text.strip():
            raise ValueError("must not be empty")
        if "://" in text:
            return _check_http_url(value)
        if any(c.isspace() for c in text):
            raise ValueError(
                "must be the part after https://hooks.slack.com/services/ "
                "(e.g. 'T000/B000/XXXX') or a full http(s) URL, without spaces"
            )
        return value

    @field_validator("checks", mode="before")
    @classmethod
    def _unique_check_ids(cls, value: object) -> object:
        """Mark a repeated ``[[checks]] id`` (reported at ``checks[i].id``)."""
        if not isinstance(value, list):
            return value
        seen: dict[str, int] = {}
        entries: list[object] = []
        for i, entry in enumerate(value):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                first = seen.setdefault(entry["id"], i)
                if first != i:
                    entry = {
                        **entry,
                        "id": _Invalid(f"{entry['id']!r} is used twice (also checks[{first}])"),
                    }
            entries.append(entry)
        return entries

    @field_validator("audit_file", "overrides_file", "hooks_dir", mode="before")
    @classmethod
    def _paths(cls, value: object, info: ValidationInfo) -> object:
        return _resolve_path(value, info)

    @model_validator(mode="after")
    def _node_name_fits(self) -> Config:
        members = self.members
        if self.node_name is None or members is None:
            return self
        limit = NOTICE_NODE_NAME_BYTES - (
            len(members.cluster_name.encode()) + 1 if members.cluster_name else 0
        )
        size = len(self.node_name.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _Problems(
                [
                    (
                        ("node_name",),
                        f"{size} bytes is too long: at most {limit} bytes (UTF-8) fit in a "
                        "verdict notice under Serf's 512-byte user-event limit",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _check_pools(self) -> Config:
        """Pool names unique, ``[[names]]`` referencing known pools, each name once."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        pools: dict[str, int] = {}
        for i, pool in enumerate(self.pools):
            first = pools.setdefault(pool.name, i)
            if first != i:
                problems.append(
                    (("pools", i, "name"), f"{pool.name!r} is used twice (also pools[{first}])")
                )
        names: dict[str, int] = {}
        for i, entry in enumerate(self.names):
            first = names.setdefault(entry.name, i)
            if first != i:
                problems.append(
                    (("names", i, "name"), f"{entry.name!r} is listed twice (also names[{first}])")
                )
            for j, wanted in enumerate(entry.pools):
                if wanted not in pools:
                    known = ", ".join(repr(p) for p in pools) or "none: add [[pools]]"
                    problems.append(
                        (("names", i, "pools", j), f"no pool {wanted!r} (pools: {known})")
                    )
        for attribute, (toml_name, _) in PROVIDERS.items():
            section = getattr(self, attribute)
            if isinstance(section, DnsSection) and not section.hostnames and not self.names:
                problems.append(
                    (
                        (toml_name, "hostnames"),
                        "field required (list hostnames and ip_addresses, or publish "
                        "through [[names]] and [[pools]])",
                    )
                )
        if self.pools and not self.names:
            problems.append((("names",), "required with [[pools]]: which names publish them?"))
        used = {p for entry in self.names for p in entry.pools}
        for i, pool in enumerate(self.pools):
            if pool.name not in used and self.names:
                problems.append(
                    (("pools", i, "name"), f"{pool.name!r} is not used by any [[names]] entry")
                )
        problems += self._pool_check_problems()
        if problems:
            raise _Problems(problems)
        return self

    def _pool_check_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """``[[pools]] checks`` naming an id twice, or an id no ``[[checks]]`` entry has."""
        ids = [check.id for check in self.checks]
        known = ", ".join(repr(i) for i in ids) or "none: add [[checks]] entries"
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, pool in enumerate(self.pools):
            for j, wanted in enumerate(pool.checks or ()):
                assert pool.checks is not None
                first = pool.checks.index(wanted)
                if first != j:
                    message = f"{wanted!r} is listed twice (also at checks[{first}])"
                elif wanted not in ids:
                    message = f"no check {wanted!r} ([[checks]] ids: {known})"
                else:
                    continue
                problems.append((("pools", i, "checks", j), message))
        return problems

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: list[str] | None) -> list[str] | None:
        """``providers``: not empty, known provider names, each once."""
        if value is None:
            return value
        if not value:
            raise ValueError(
                "must name at least one provider (or leave it out: the one of --dns-provider)"
            )
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, name in enumerate(value):
            first = value.index(name)
            if first != i:
                problems.append(((i,), f"{name!r} is listed twice (also providers[{first}])"))
            elif name not in PROVIDERS:
                known = ", ".join(sorted(PROVIDERS))
                problems.append(((i,), f"unknown DNS provider {name!r} (expected one of: {known})"))
        if problems:
            raise _Problems(problems)
        return value

    @model_validator(mode="after")
    def _check_floating_ips(self) -> Config:
        """``[[floating_ips]]`` ids unique, their ``checks`` existing ``[[checks]]`` ids."""
        problems = floating_ip_problems(self.floating_ips, [c.id for c in self.checks])
        if problems:
            raise _Problems(problems)
        return self

    @model_validator(mode="after")
    def _providers_have_sections(self) -> Config:
        """Each provider of ``providers`` has its section in the file."""
        problems: list[tuple[tuple[str | int, ...], str]] = [
            (("providers", i), f"{name!r} needs its [{PROVIDERS[name][0]}] section in this file")
            for i, name in enumerate(self.providers or ())
            if getattr(self, name) is None
        ]
        if problems:
            raise _Problems(problems)
        return self

    @model_validator(mode="after")
    def _proxy_against_checks(self) -> Config:
        """``[Proxy] checks`` name ``[[checks]]`` ids (see :func:`proxy_problems`)."""
        if self.proxy is not None and (found := proxy_problems(self.proxy, self.checks)):
            raise _Problems([(("Proxy", *loc), message) for loc, message in found])
        return self

    def brake_settings(self) -> BrakeSection | None:
        """The brake in force: ``[Brake]`` when present; else, for files that use
        ``[[pools]]``, the defaults (50 %); else None (off, as the Go original)."""
        if self.brake is not None:
            return self.brake
        return BrakeSection() if self.pools else None

    def damping_settings(self) -> DampingSettings | None:
        """The flap damping in force: ``[Damping]`` unless absent or ``enabled = false``."""
        return None if self.damping is None else self.damping.settings()

    def failback_settings(self) -> dict[str, Failback]:
        """Target -> its failback, for the targets whose ``[[pools]]`` or ``[[names]]``
        set one (the strictest, see :func:`goavail.config.gates.target_failback`); the
        others follow :attr:`failback`."""
        index = {pool.name: i for i, pool in enumerate(self.pools)}
        return target_failback(
            [(pool.addresses, pool.failback) for pool in self.pools],
            [
                ([index[p] for p in entry.pools if p in index], entry.failback)
                for entry in self.names
            ],
        )

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Config:
        # The model is frozen; defaults that depend on other fields are filled
        # in once, here, before anyone sees the instance.
        fields_set = self.model_fields_set
        if "rise_threshold" not in fields_set:
            object.__setattr__(self, "rise_threshold", self.failure_threshold)
        if "timeout" not in fields_set:
            object.__setattr__(self, "timeout", min(self.interval, 1.0))
        if "resync_interval" not in fields_set:
            object.__setattr__(self, "resync_interval", max(60.0, self.interval))
        if self.checks:
            object.__setattr__(self, "checks", self._resolve_checks())
        return self

    def _resolve_checks(self) -> list[CheckSection]:
        """The checks with their defaults filled in from the top level.

        Raises:
            _Problems: a tcp check without a port, a timeout longer than its
                inherited interval.
        """
        problems: list[tuple[tuple[str | int, ...], str]] = []
        resolved: list[CheckSection] = []
        for i, check in enumerate(self.checks):
            interval = check.interval if check.interval is not None else self.interval
            timeout = check.timeout if check.timeout is not None else min(self.timeout, interval)
            if check.timeout is not None and check.interval is None and timeout > interval:
                problems.append(
                    (
                        ("checks", i, "timeout"),
                        f"must be ≤ interval ({interval} s, the top-level interval)",
                    )
                )
            fall = check.fall if check.fall is not None else self.failure_threshold
            if check.rise is not None:
                rise = check.rise
            else:
                rise = check.fall if check.fall is not None else self.rise_threshold
            port = check.port
            if check.type == "tcp" and port is None:
                if self.port is None:
                    problems.append(
                        (
                            ("checks", i, "port"),
                            "required for type 'tcp' (or set the top-level port)",
                        )
                    )
                port = self.port
            update: dict[str, object] = {
                "interval": interval,
                "timeout": timeout,
                "fall": fall,
                "rise": rise,
                "port": port,
            }
            if check.type in ("http", "https"):
                update.update(
                    port=port if port is not None else (80 if check.type == "http" else 443),
                    path=check.path or "/",
                    method=check.method or "GET",
                )
            if check.type == "https" and check.tls_verify is None:
                update["tls_verify"] = True
            resolved.append(check.model_copy(update=update))
        if problems:
            raise _Problems(problems)
        return resolved

    @property
    def source(self) -> Path | None:
        """The file this configuration was loaded from (None if built in code)."""
        return self._source

    def slack_url(self) -> str | None:
        """The full Slack webhook URL of ``slack_addr`` (a secret), or None.

        ``"T000/B000/XXXX"`` -> ``"https://hooks.slack.com/services/T000/B000/XXXX"``;
        a full http(s) URL is used as it is.
        """
        if self.slack_addr is None:
            return None
        text = self.slack_addr.get_secret_value()
        return text if "://" in text else SLACK_HOOKS + text.lstrip("/")

    def section_for(self, provider: str) -> DnsSection:
        """The DNS section used by ``--dns-provider provider``.

        Args:
            provider: one of ``"cloudflare"``, ``"route53"``, ``"zonefile"``, ``"rfc2136"``.

        Raises:
            ConfigError: the provider is unknown or its section is missing.
        """
        problem = _section_problem(self, provider)
        if problem is not None:
            raise ConfigError([problem], self._source)
        section = getattr(self, provider)
        assert isinstance(section, DnsSection)
        return section


PROVIDERS: dict[str, tuple[str, type[DnsSection]]] = dict(
    sorted(
        (name, (field.alias or name, model))
        for name, field in Config.model_fields.items()
        for model in get_args(field.annotation)
        if isinstance(model, type) and issubclass(model, DnsSection)
    )
)
"""DNS provider name (the ``Config`` attribute) -> (TOML section, section model), read
from :class:`Config`'s own fields, in name order; the providers themselves are built by
:mod:`goavail.dns.registry`, which checks that it names the same ones."""


def provider_sections(config: Config) -> list[str]:
    """The providers whose section the file has, e.g. ``["cloudflare", "route53"]``.

    In :data:`PROVIDERS` order (alphabetical); empty when the file has none.
    """
    return [name for name in PROVIDERS if getattr(config, name) is not None]


def fip_only(config: Config, *, explicit: bool = False) -> bool:
    """Whether a run manages floating IPs only: the file has ``[[floating_ips]]`` groups,
    no DNS provider section and no ``providers`` list, and ``--dns-provider`` was not
    given. Such a run has no DNS provider (:func:`run_providers` returns ``()``)."""
    return (
        bool(config.floating_ips)
        and not explicit
        and config.providers is None
        and not provider_sections(config)
    )


def choose_provider(config: Config, requested: str | None) -> str:
    """The provider a run uses: ``--dns-provider`` when given, else the file's only one.

    Args:
        config: a validated configuration.
        requested: the ``--dns-provider`` value, or None when the option was not given.

    Returns:
        ``requested`` when not None (even when the file lacks its section: the check
        that follows reports that); else the provider of the file's only provider
        section; else (no section, or several) :data:`DEFAULT_PROVIDER`, as the Go
        original.
    """
    if requested is not None:
        return requested
    present = provider_sections(config)
    return present[0] if len(present) == 1 else DEFAULT_PROVIDER


def run_providers(config: Config, provider: str, *, explicit: bool) -> tuple[str, ...]:
    """The providers a run publishes to, each reconciled on its own.

    Args:
        config: a validated configuration.
        provider: the ``--dns-provider`` value, or the one :func:`choose_provider` chose.
        explicit: whether ``--dns-provider`` was given on the command line.

    Returns:
        Without a top-level ``providers`` list: ``(provider,)``, the one provider of
        today. With one: the list, unless ``--dns-provider`` was given, which restricts
        the run to that one provider (it must be in the list; :func:`check_runtime`
        says so). A floating-IP-only file (:func:`fip_only`): ``()``.
    """
    if fip_only(config, explicit=explicit):
        return ()
    if config.providers is None or explicit:
        return (provider,)
    return tuple(config.providers)


def providers_in_use(config: Config, provider: str) -> tuple[str, ...]:
    """The providers whose zones the file's ``[[names]]`` are checked against: the
    ``providers`` list, else ``(provider,)`` (``--dns-provider``'s, explicit or chosen);
    ``()`` for a floating-IP-only file (:func:`fip_only`; with ``--dns-provider``,
    :func:`check_runtime` reports the missing section first)."""
    if fip_only(config):
        return ()
    return (provider,) if config.providers is None else tuple(config.providers)


def _section_problem(config: Config, provider: str) -> str | None:
    if provider not in PROVIDERS:
        names = ", ".join(sorted(PROVIDERS))
        return f"unknown DNS provider {provider!r} (expected one of: {names})"
    toml_name, _ = PROVIDERS[provider]
    if getattr(config, provider) is not None:
        return None
    problem = f"{toml_name}: section missing (required by --dns-provider {provider})"
    present = provider_sections(config)
    if not present:
        every = ", ".join(f"[{toml}]" for toml, _ in PROVIDERS.values())
        return f"{problem}; the file has no provider section (one of {every})"
    sections = ", ".join(f"[{PROVIDERS[name][0]}]" for name in present)
    options = " or ".join(f"--dns-provider {name}" for name in present)
    return f"{problem}; the file has {sections}: use {options}"


def check_runtime(
    config: Config, *, provider: str, probe_type: str, explicit: bool = False
) -> list[str]:
    """Problems that depend on command-line flags as well as on the file.

    Args:
        config: a validated configuration.
        provider: the ``--dns-provider`` value (or the one :func:`choose_provider` chose).
        probe_type: the ``--type`` value (``"icmp"``, ``"tcp"``, ...).
        explicit: whether ``--dns-provider`` was given on the command line; with a
            ``providers`` list it must then name one of the list (the run is restricted
            to it, see :func:`run_providers`), and without one its section must exist.

    Returns:
        Problem lines in the :class:`ConfigError` format; empty when all is well.
    """
    problems: list[str] = []
    if config.providers is not None:
        if explicit and provider not in config.providers:
            listed = ", ".join(config.providers)
            problems.append(
                f"providers: --dns-provider {provider} is not in the list ({listed}): "
                "with a providers list, --dns-provider restricts the run to one of them"
            )
        section_problem = None
    elif fip_only(config, explicit=explicit):
        section_problem = None
    else:
        section_problem = _section_problem(config, provider)
    if section_problem is not None:
        problems.append(section_problem)
    if probe_type == "tcp" and config.port is None and not config.checks:
        problems.append("port: required by --type tcp")
    return problems
