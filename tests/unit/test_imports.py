"""Start-up memory: libraries only some configurations need are not imported with the CLI.

The agent's resident memory at 10,000 targets is a goal of issue 4 (BENCHMARKS.md); each of
these libraries costs megabytes the moment it is imported.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LAZY = (
    "httpx",  # notifications, heartbeat, http(s) checks
    "cryptography.x509",  # https checks' certificate dates
    "aiohttp",  # the HTTP server ([Server] enabled)
    "jinja2",
    "prometheus_client",
    "boto3",  # -p route53
    "cloudflare",  # -p cloudflare
    "dns.query",  # -p rfc2136
)


@pytest.mark.parametrize("entry", ["goavail.cli", "goavail.agent"])
def test_heavy_libraries_are_imported_only_when_needed(entry: str) -> None:
    code = f"import sys, {entry}; print(' '.join(m for m in {LAZY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split() == []


CLUSTER_ONLY = (
    "goavail.cluster.service",
    "goavail.cluster.wire",
    "cryptography",
    "msgpack",
    "httpx._main",  # httpx's command-line client (see goavail/__init__.py)
    "rich",
    "pygments",
)
"""The cluster layer (about 6 MB of resident memory an agent without a cluster never
needs) and httpx's command-line client (3.6 MB)."""


@pytest.mark.parametrize(
    "entry", ["goavail.web.server", "goavail.web.metrics", "goavail.dns.providers.cloudflare"]
)
def test_the_server_and_the_cloudflare_provider_import_no_cluster_layer_nor_httpx_cli(
    entry: str,
) -> None:
    code = (
        f"import sys, {entry}; "
        f"print(' '.join(m for m in {CLUSTER_ONLY!r} if sys.modules.get(m) is not None))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split() == []
