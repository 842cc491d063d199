"""The provider registry: one entry per provider, in step with the config's sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.config import PROVIDERS, load_config
from goavail.dns.audit import AuditLog
from goavail.dns.providers.zonefile import ZonefileProvider
from goavail.dns.registry import REGISTRY, build_provider
from goavail.errors import GoavailError, SetupError

ZONEFILE = """
failure_threshold = 2
[Zonefile]
path = "{path}"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["192.0.2.1"]
"""


def test_every_config_section_has_an_entry_and_the_cli_order_starts_with_cloudflare() -> None:
    assert {name: (spec.section, spec.model) for name, spec in REGISTRY.items()} == PROVIDERS
    assert list(REGISTRY) == ["cloudflare", "zonefile", "route53", "rfc2136"]
    assert all(spec.summary for spec in REGISTRY.values())


def test_an_entry_builds_its_provider_from_the_validated_section(tmp_path: Path) -> None:
    config_file = tmp_path / "goavail.toml"
    config_file.write_text(ZONEFILE.format(path=tmp_path / "example.test.zone"))
    config = load_config(config_file)
    provider = build_provider(
        "zonefile", config.section_for("zonefile"), dry_run=True, audit=AuditLog()
    )
    assert isinstance(provider, ZonefileProvider)
    assert provider.dry_run is True


def test_a_missing_secret_and_an_unknown_name_are_setup_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("CLOUDFLARE_API_TOKEN", "CF_API_KEY", "CF_API_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    config_file = tmp_path / "goavail.toml"
    config_file.write_text(
        '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["www"]\n'
        'ip_addresses = ["192.0.2.1"]\n'
    )
    section = load_config(config_file).section_for("cloudflare")
    with pytest.raises(SetupError, match="CLOUDFLARE_API_TOKEN"):
        build_provider("cloudflare", section, dry_run=True, audit=AuditLog())
    with pytest.raises(GoavailError, match="unknown DNS provider 'bogus'"):
        build_provider("bogus", section, dry_run=True, audit=AuditLog())
