"""What one run publishes: names, their pools and the targets to probe (pure: from the
validated configuration, no I/O).

Two shapes of configuration give the same :class:`Publication`:

* the Go original's: a provider section's ``hostnames`` and ``ip_addresses`` make
  one pool (named after the section, e.g. ``Cloudflare``) published under every
  host name;
* ``[[pools]]`` and ``[[names]]``: each name lists its pools in priority order
  (primary, then backups; :func:`goavail.dns.plan.plan_names`).

Both may be used in one file. A target in several pools is probed once.

Several providers at once (the top-level ``providers`` list, see
:func:`goavail.config.run_providers`): a ``[[names]]`` entry is published to every
provider in use whose section's zones hold it (or to those of its own
``providers`` list); a section's ``hostnames`` and ``ip_addresses`` only by that
section's provider. Every name must lie in the zones of at least one provider in use
(:func:`problems`). Each provider gets its own specs (:attr:`Publication.by_provider`:
the TTL falls back to its section's, ``proxied`` is Cloudflare's), reconciled on its
own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from goavail.brake import ALL_TARGETS
from goavail.config import PROVIDERS, Config, DnsSection, NameSection
from goavail.dns.plan import NameSpec


@dataclass(frozen=True, slots=True)
class Publication:
    """The names a run manages and the targets it probes.

    Attributes:
        specs: the managed names with their pools (sorted by name), each once: a
            name published to several providers appears with the first one's spec.
        targets: every address of every pool published, each once, in configuration
            order.
        pools: pool name -> its addresses (the brake's groups, see :meth:`groups`).
        shares: pool name -> its own brake share (``[[pools]] max_down_share``), when set.
        by_provider: provider name -> the specs it publishes (sorted by name), in the
            run's order of providers; empty for a publication built in code from
            ``specs`` alone (then :meth:`specs_for` gives ``specs``).
    """

    specs: tuple[NameSpec, ...]
    targets: tuple[str, ...]
    pools: dict[str, tuple[str, ...]] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    by_provider: dict[str, tuple[NameSpec, ...]] = field(default_factory=dict)
    _by_target: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for spec in self.specs:
            for address in spec.addresses:
                self._by_target.setdefault(address, []).append(spec.name)

    @property
    def names(self) -> list[str]:
        """The managed names, sorted."""
        return [spec.name for spec in self.specs]

    def names_of(self, target: str) -> list[str]:
        """The names whose pools hold ``target`` (sorted; O(1))."""
        return self._by_target.get(target, [])

    def groups(self) -> dict[str, tuple[str, ...]]:
        """The brake's groups: every pool, and all targets together."""
        return {**self.pools, ALL_TARGETS: self.targets}

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers published to, in the run's order."""
        return tuple(self.by_provider)

    def specs_for(self, provider: str) -> tuple[NameSpec, ...]:
        """The specs ``provider`` publishes (empty when it publishes none)."""
        if not self.by_provider:
            return self.specs
        return self.by_provider.get(provider, ())


def zones_of(section: DnsSection) -> tuple[str, ...]:
    """The zones a provider section publishes to: its domain, then any further zones
    (``[Cloudflare] zones``); lower case, no trailing dot."""
    extra = getattr(section, "zones", ())
    return tuple(dict.fromkeys([section.domain, *(z.lower().rstrip(".") for z in extra)]))


def in_zones(name: str, zones: Sequence[str]) -> bool:
    """Whether the fully qualified ``name`` lies in one of ``zones`` (or is one)."""
    return any(name == z or name.endswith("." + z) for z in zones)


def _section(config: Config, provider: str) -> DnsSection:
    section = getattr(config, provider)
    assert isinstance(section, DnsSection), provider  # validated: the section exists
    return section


def providers_of(config: Config, entry: NameSection, in_use: Sequence[str]) -> list[str]:
    """The providers of ``in_use`` that publish ``entry``: its own ``providers`` list
    (those of it in use), else every provider in use whose zones hold its name; in
    ``in_use`` order."""
    if entry.providers is not None:
        return [p for p in in_use if p in entry.providers]
    return [p for p in in_use if in_zones(entry.name, zones_of(_section(config, p)))]


def _describe_zones(provider: str, section: DnsSection) -> str:
    zones = zones_of(section)
    where = f"zone {zones[0]!r}" if len(zones) == 1 else "zones " + ", ".join(map(repr, zones))
    return f"the {where} of [{PROVIDERS[provider][0]}]"


def _first(*values: int | None) -> int | None:
    """The first of ``values`` that is not None (a TTL of 0 is a value)."""
    return next((v for v in values if v is not None), None)


def _degraded_ttl_at(config: Config, name: str, provider: str) -> str:
    """The key path the ``degraded_ttl`` of ``name`` at ``provider`` comes from."""
    for i, entry in enumerate(config.names):
        if entry.name != name:
            continue
        if entry.degraded_ttl is not None:
            return f"names[{i}].degraded_ttl"
        for j, pool in enumerate(config.pools):
            if pool.name == entry.pools[0] and pool.degraded_ttl is not None:
                return f"pools[{j}].degraded_ttl"
    return f"{PROVIDERS[provider][0]}.degraded_ttl"


def policy_problems(config: Config, run: Sequence[str]) -> list[str]:
    """Problem lines of ``all_down`` and ``degraded_ttl`` as published by ``run``: a
    name whose own ``all_down = "backup"`` has no backup pool; a ``degraded_ttl`` not
    lower than the name's TTL (Cloudflare's ``ttl = 1``, "automatic", counts as its
    300 s), below Cloudflare's 30 s, or on a proxied Cloudflare name (proxied records
    always have the automatic TTL). Each problem once, at the key that sets it."""
    found: list[str] = []
    for i, entry in enumerate(config.names):
        if entry.all_down == "backup" and len(entry.pools) < 2:
            found.append(
                f"names[{i}].all_down: 'backup' keeps the last backup pool when every "
                "address is down, but pools lists only one (add a backup pool, or use "
                "'fail-open' or 'fail-closed')"
            )
    published = publication(config, run)
    for provider in run:
        cloudflare = provider == "cloudflare"
        for spec in published.specs_for(provider):
            if spec.degraded_ttl is None or spec.ttl is None:
                continue
            at = _degraded_ttl_at(config, spec.name, provider)
            ttl = 300 if cloudflare and spec.ttl == 1 else spec.ttl
            if cloudflare and spec.proxied:
                problem = (
                    f"{spec.name} is proxied at Cloudflare ([Cloudflare] dns_proxied), "
                    "whose records always have the automatic TTL"
                )
            elif cloudflare and spec.degraded_ttl < 30:
                problem = f"{spec.degraded_ttl} is below Cloudflare's shortest TTL, 30 seconds"
            elif spec.degraded_ttl >= ttl:
                problem = (
                    f"{spec.degraded_ttl} is not lower than the TTL of {spec.name} at "
                    f"{provider} ({ttl} s): nothing would be lowered"
                )
            else:
                continue
            line = f"{at}: {problem}"
            if line not in found:
                found.append(line)
    return found


def problems(config: Config, in_use: Sequence[str], run: Sequence[str] | None = None) -> list[str]:
    """Problem lines (in :class:`~goavail.config.ConfigError`'s format) of ``[[names]]``
    against the providers in use (:func:`goavail.config.providers_in_use`): a name in
    no provider's zones, a ``[[names]] providers`` entry not in use or whose zones do
    not hold the name, a name that is also one of a publishing section's
    ``hostnames``; and a provider of the run (default: ``in_use``) that would publish
    no name. Empty when all is well.

    Args:
        config: a validated configuration (every provider of ``in_use`` has its section).
        in_use: the providers names are checked against.
        run: the providers of the run (:func:`goavail.config.run_providers`).
    """
    sections = {p: _section(config, p) for p in in_use}
    found: list[str] = []
    for i, entry in enumerate(config.names):
        if entry.providers is not None:
            for j, wanted in enumerate(entry.providers):
                if wanted not in sections:
                    found.append(
                        f"names[{i}].providers[{j}]: {wanted!r} is not a provider in use "
                        f"(in use: {', '.join(in_use)}; see the top-level providers)"
                    )
                elif not in_zones(entry.name, zones_of(sections[wanted])):
                    found.append(
                        f"names[{i}].providers[{j}]: {entry.name!r} is outside "
                        f"{_describe_zones(wanted, sections[wanted])}"
                    )
        elif not providers_of(config, entry, in_use):
            where = "; ".join(_describe_zones(p, s) for p, s in sections.items())
            found.append(f"names[{i}].name: {entry.name!r} is outside {where}")
        for p in providers_of(config, entry, in_use):
            if entry.name in sections[p].names():
                found.append(
                    f"names[{i}].name: {entry.name!r} is also one of [{PROVIDERS[p][0]}] "
                    "hostnames (publish it one way only)"
                )
    if not found:
        found += policy_problems(config, in_use if run is None else run)
    if not found and config.providers is not None:
        published = publication(config, in_use if run is None else run).by_provider
        for p in in_use if run is None else run:
            if not published.get(p):
                where = (
                    f"providers[{config.providers.index(p)}]"
                    if p in config.providers
                    else f"--dns-provider {p}"
                )
                found.append(
                    f"{where}: {p!r} publishes no name ([{PROVIDERS[p][0]}] lists no "
                    "hostnames and no [[names]] entry lies in its zones)"
                )
    return found


def publication(config: Config, run: Sequence[str]) -> Publication:
    """What a run publishes through the providers ``run``.

    Args:
        config: a validated configuration (:func:`problems` found nothing).
        run: the providers of the run (:func:`goavail.config.run_providers`), each
            with its section in ``config``.

    Returns:
        The :class:`Publication`: per provider, its section's own ``hostnames`` (one
        pool named after the section, e.g. ``Cloudflare``) and the ``[[names]]`` it
        publishes (:func:`providers_of`); TTLs, ``all_down`` and ``degraded_ttl``
        come from the name, else its primary pool, else the provider's section;
        ``proxied`` from the section (Cloudflare).
        Only the pools of published names are probed and braked.
    """
    by_name = {pool.name: pool for pool in config.pools}
    by_provider: dict[str, dict[str, NameSpec]] = {}
    pools: dict[str, tuple[str, ...]] = {}
    for provider in run:
        section = _section(config, provider)
        toml_name = PROVIDERS[provider][0]
        proxied = getattr(section, "dns_proxied", None)
        specs = by_provider.setdefault(provider, {})
        if section.ip_addresses:
            legacy = tuple(section.ip_addresses)
            pools[toml_name] = legacy
            for name in section.names():
                specs[name] = NameSpec(
                    name,
                    (legacy,),
                    (toml_name,),
                    section.ttl,
                    proxied,
                    section.all_down or "fail-open",
                    section.degraded_ttl,
                )
    used: set[str] = set()
    for entry in config.names:
        chosen = [by_name[p] for p in entry.pools]
        for provider in providers_of(config, entry, run):
            section = _section(config, provider)
            ttl = entry.ttl or chosen[0].ttl or section.ttl
            spec = NameSpec(
                entry.name,
                tuple(tuple(p.addresses) for p in chosen),
                tuple(p.name for p in chosen),
                ttl,
                getattr(section, "dns_proxied", None),
                entry.all_down or chosen[0].all_down or section.all_down or "fail-open",
                _first(entry.degraded_ttl, chosen[0].degraded_ttl, section.degraded_ttl),
            )
            if by_provider[provider].setdefault(entry.name, spec) is spec:
                used.update(entry.pools)
    for pool in config.pools:
        if pool.name in used:
            pools[pool.name] = tuple(pool.addresses)
    targets = tuple(dict.fromkeys(a for addresses in pools.values() for a in addresses))
    shares = {
        p.name: p.max_down_share
        for p in config.pools
        if p.max_down_share is not None and p.name in used
    }
    union: dict[str, NameSpec] = {}
    for specs in by_provider.values():
        for name, spec in specs.items():
            union.setdefault(name, spec)
    return Publication(
        tuple(union[n] for n in sorted(union)),
        targets,
        pools,
        shares,
        {p: tuple(specs[n] for n in sorted(specs)) for p, specs in by_provider.items()},
    )
