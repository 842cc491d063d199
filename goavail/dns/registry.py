"""The DNS providers goavail knows, by name: one entry each (octodns names provider classes
in its config the same way).

An entry (:class:`ProviderSpec`) gives the provider's name (``--dns-provider``), its TOML
section and the section's model, one line for the CLI's help, and the builder that turns
a validated section into a :class:`~goavail.dns.providers.base.Provider`. The CLI's
choices, the config's section lookup (:func:`goavail.config.Config.section_for`) and the
agent's construction all read :data:`REGISTRY`.

The provider modules (and their SDKs: ``cloudflare``, ``boto3``, ``dnspython``'s
``dns.query``) are imported by the builder only, so naming every provider here costs no
memory (see ``tests/unit/test_imports.py``).

Adding a provider: its section model and ``Config`` field in :mod:`goavail.config` (the
file's shape), and one entry here; the import-time check below refuses the one without
the other.

The in-memory provider (:mod:`goavail.dns.providers.memory`) has no config section and is
not an entry: tests build it directly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from goavail.config.model import PROVIDERS as CONFIG_SECTIONS
from goavail.config.providers import (
    CloudflareSection,
    DnsSection,
    RFC2136Section,
    Route53Section,
    ZonefileSection,
)
from goavail.dns.audit import AuditLog
from goavail.dns.providers.base import Provider
from goavail.errors import SetupError
from goavail.logs import REDACTOR

log = logging.getLogger("goavail.agent")

Builder = Callable[[DnsSection, bool, AuditLog], Provider]
"""``(section, dry_run, audit) -> provider``; raises :class:`SetupError`."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One DNS provider.

    Attributes:
        name: the ``--dns-provider`` value (also the ``Config`` attribute).
        section: the TOML section, e.g. ``"Route53"``.
        model: the section's model (a :class:`~goavail.config.DnsSection`).
        summary: one line for the CLI's help and the docs.
        build: ``(section, dry_run, audit) -> Provider``; raises :class:`SetupError` when
            the provider cannot be set up (credentials missing, AWS settings unusable).
    """

    name: str
    section: str
    model: type[DnsSection]
    summary: str
    build: Builder


_S = TypeVar("_S", bound=DnsSection)


def _narrow(section: DnsSection, model: type[_S]) -> _S:
    if not isinstance(section, model):  # pragma: no cover - section_for gives the right one
        raise SetupError(f"expected a {model.__name__}, got {type(section).__name__}")
    return section


def _cloudflare(section: DnsSection, dry_run: bool, audit: AuditLog) -> Provider:
    """Credentials from ``CLOUDFLARE_API_TOKEN`` (or the original ``CF_API_KEY`` +
    ``CF_API_EMAIL``); the API base from ``CLOUDFLARE_BASE_URL`` (the SDK reads it)."""
    from goavail.dns.providers.cloudflare import (
        CloudflareProvider,
        MissingCredentials,
        credentials_from_env,
    )

    cf = _narrow(section, CloudflareSection)
    try:
        credentials = credentials_from_env(os.environ)
    except MissingCredentials as exc:
        raise SetupError(str(exc)) from None
    REDACTOR.add(credentials.secrets())
    return CloudflareProvider(
        dry_run=dry_run,
        audit=audit,
        zone_name=cf.dns_domain,
        zones=cf.zones,
        proxied=cf.dns_proxied,
        ttl=cf.ttl,
        credentials=credentials,
    )


def _route53(section: DnsSection, dry_run: bool, audit: AuditLog) -> Provider:
    """Credentials and endpoint come from boto3's standard chain."""
    import botocore.exceptions

    from goavail.dns.providers.route53 import Route53Provider

    r53 = _narrow(section, Route53Section)
    REDACTOR.add(os.environ.get(v) for v in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
    try:
        return Route53Provider(
            dry_run=dry_run,
            audit=audit,
            zone_name=r53.aws_domain,
            zone_id=r53.aws_zoneid,
            ttl=r53.ttl,
            region=r53.aws_region,
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise SetupError(f"route53: the AWS configuration is unusable: {exc}") from None


def _rfc2136(section: DnsSection, dry_run: bool, audit: AuditLog) -> Provider:
    """The TSIG secret comes from ``GOAVAIL_TSIG_SECRET``."""
    from goavail.dns.providers.rfc2136 import MissingTsigSecret, Rfc2136Provider, tsig_from_env

    rfc = _narrow(section, RFC2136Section)
    try:
        tsig = tsig_from_env(os.environ, rfc.tsig_key_name, rfc.tsig_algorithm)
    except MissingTsigSecret as exc:
        raise SetupError(str(exc)) from None
    if tsig is None:
        log.warning(
            "[RFC2136] has no tsig_key_name: updates to %s are not signed, so anyone who can "
            "reach the server from an allowed address can change the zone",
            rfc.zone,
        )
    else:
        REDACTOR.add([tsig.secret])
    return Rfc2136Provider(
        dry_run=dry_run,
        audit=audit,
        server=rfc.server,
        port=rfc.port,
        zone=rfc.zone,
        ttl=rfc.ttl,
        tsig=tsig,
    )


def _zonefile(section: DnsSection, dry_run: bool, audit: AuditLog) -> Provider:
    from goavail.dns.providers.zonefile import ZonefileProvider

    zf = _narrow(section, ZonefileSection)
    return ZonefileProvider(
        dry_run=dry_run,
        audit=audit,
        path=zf.path,
        origin=zf.origin,
        ttl=zf.ttl,
        reload_command=zf.reload_command,
    )


REGISTRY: Mapping[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "cloudflare",
            "Cloudflare",
            CloudflareSection,
            "Cloudflare's API through its official SDK",
            _cloudflare,
        ),
        ProviderSpec(
            "zonefile",
            "Zonefile",
            ZonefileSection,
            "a local RFC 1035 zone file (BIND, Knot, NSD), with a reload command",
            _zonefile,
        ),
        ProviderSpec("route53", "Route53", Route53Section, "AWS Route 53 through boto3", _route53),
        ProviderSpec(
            "rfc2136",
            "RFC2136",
            RFC2136Section,
            "RFC 2136 dynamic updates (TSIG-signed) to an authoritative server",
            _rfc2136,
        ),
    )
}
"""Provider name -> its entry, in the order the CLI lists them (the Go original's
``cloudflare`` first)."""


def _check_against_config() -> None:
    """Every entry has its ``Config`` section and every DNS section of ``Config`` an entry.

    Raises:
        RuntimeError: at import, when a provider was added to one side only.
    """
    mine = {name: (spec.section, spec.model) for name, spec in REGISTRY.items()}
    if mine != dict(CONFIG_SECTIONS):
        raise RuntimeError(
            f"goavail.dns.registry and goavail.config disagree on the providers: "
            f"{sorted(mine.items(), key=str)} != {sorted(CONFIG_SECTIONS.items(), key=str)}"
        )


_check_against_config()


def build_provider(name: str, section: DnsSection, *, dry_run: bool, audit: AuditLog) -> Provider:
    """The provider ``name`` for ``section``.

    Args:
        name: a :data:`REGISTRY` key.
        section: its validated section (:meth:`goavail.config.Config.section_for`).
        dry_run: when True the provider makes no DNS write (audit records only).
        audit: where its changes are recorded.

    Raises:
        SetupError: unknown provider, or it cannot be set up (credentials missing, ...).
    """
    spec = REGISTRY.get(name)
    if spec is None:
        raise SetupError(f"unknown DNS provider {name!r} (expected one of: {', '.join(REGISTRY)})")
    return spec.build(section, dry_run, audit)


def record_attributes(section: DnsSection) -> tuple[int | None, bool | None]:
    """``(ttl, proxied)`` given to the records a provider creates (``proxied``: Cloudflare's
    ``dns_proxied``, None for the others)."""
    return section.ttl, getattr(section, "dns_proxied", None)


__all__ = ["REGISTRY", "Builder", "ProviderSpec", "build_provider", "record_attributes"]
