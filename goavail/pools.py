"""What one run publishes: names, their pools and the targets to probe (pure: from the
validated configuration, no I/O).

Two shapes of configuration give the same :class:`Publication`:

* the Go original's: a provider section's ``hostnames`` and ``ip_addresses`` make
  one pool (named after the section, e.g. ``Cloudflare``) published under every
  host name;
* ``[[pools]]`` and ``[[names]]``: each name lists its pools in priority order
  (primary, then backups; :func:`goavail.dns.plan.plan_names`). Every name must
  lie in the zone of the provider section the run publishes to.

Both may be used in one file. A target in several pools is probed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from goavail.brake import ALL_TARGETS
from goavail.config import Config, DnsSection
from goavail.dns.plan import NameSpec


@dataclass(frozen=True, slots=True)
class Publication:
    """The names a run manages and the targets it probes.

    Attributes:
        specs: the managed names with their pools (sorted by name).
        targets: every address of every pool, each once, in configuration order.
        pools: pool name -> its addresses (the brake's groups, see :meth:`groups`).
    """

    specs: tuple[NameSpec, ...]
    targets: tuple[str, ...]
    pools: dict[str, tuple[str, ...]] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    """Pool name -> its own brake share (``[[pools]] max_down_share``), when set."""
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


def zones_of(section: DnsSection) -> tuple[str, ...]:
    """The zones a provider section publishes to: its domain, then any further zones
    (``[Cloudflare] zones``); lower case, no trailing dot."""
    extra = getattr(section, "zones", ())
    return tuple(dict.fromkeys([section.domain, *(z.lower().rstrip(".") for z in extra)]))


def problems(config: Config, section: DnsSection, toml_name: str) -> list[str]:
    """Problem lines (in :class:`~goavail.config.ConfigError`'s format) of ``[[names]]``
    for the provider section the run publishes to: a name outside its zones, or a name
    that is also one of its ``hostnames``. Empty when all is well."""
    zones = zones_of(section)
    hostnames = set(section.names())
    found: list[str] = []
    for i, entry in enumerate(config.names):
        if not any(entry.name == z or entry.name.endswith("." + z) for z in zones):
            where = (
                f"the zone {zones[0]!r}"
                if len(zones) == 1
                else "the zones " + ", ".join(repr(z) for z in zones)
            )
            found.append(f"names[{i}].name: {entry.name!r} is outside {where} of [{toml_name}]")
        elif entry.name in hostnames:
            found.append(
                f"names[{i}].name: {entry.name!r} is also one of [{toml_name}] hostnames "
                "(publish it one way only)"
            )
    return found


def publication(config: Config, section: DnsSection, toml_name: str) -> Publication:
    """What a run publishes through ``section`` (the provider section in use).

    Args:
        config: a validated configuration.
        section: the provider section of the run (``Config.section_for``).
        toml_name: its TOML name (``"Cloudflare"``), which names the original's pool.

    Returns:
        The :class:`Publication`; TTLs come from the name, else its primary pool, else
        the section; ``proxied`` from the section (Cloudflare).
    """
    proxied = getattr(section, "dns_proxied", None)
    specs: dict[str, NameSpec] = {}
    pools: dict[str, tuple[str, ...]] = {}
    if section.ip_addresses:
        legacy = tuple(section.ip_addresses)
        pools[toml_name] = legacy
        for name in section.names():
            specs[name] = NameSpec(name, (legacy,), (toml_name,), section.ttl, proxied)
    by_name = {pool.name: pool for pool in config.pools}
    for pool in config.pools:
        pools[pool.name] = tuple(pool.addresses)
    for entry in config.names:
        chosen = [by_name[p] for p in entry.pools]
        ttl = entry.ttl or chosen[0].ttl or section.ttl
        spec = NameSpec(
            entry.name,
            tuple(tuple(p.addresses) for p in chosen),
            tuple(p.name for p in chosen),
            ttl,
            proxied,
        )
        specs.setdefault(entry.name, spec)
    targets = tuple(dict.fromkeys(a for addresses in pools.values() for a in addresses))
    shares = {p.name: p.max_down_share for p in config.pools if p.max_down_share is not None}
    return Publication(tuple(specs[n] for n in sorted(specs)), targets, pools, shares)
