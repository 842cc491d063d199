"""Several providers from one ``goavail monitor``: two zones at two providers, the
Cloudflare stand-in (through the official SDK) and Route 53 (moto, through boto3).

``providers = ["cloudflare", "route53"]``: ``www.example.com`` lies in Cloudflare's zone
only; ``www.example.org`` in both (Cloudflare's further zone and Route 53's hosted
zone), so it is published twice, as octodns users run redundant DNS. A target that goes
down is withdrawn at both; while the stand-in answers every call with HTTP 503, Route 53
still converges (each provider is reconciled on its own task) and ``/_health``,
``/metrics`` and ``/api/status`` name the provider that fails; once the faults stop,
Cloudflare converges too. ``goavail plan`` reads both and shows the changes per
provider. Targets are this test's own 127.22.0.0/24 in the private namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from goavail.dns.providers.route53 import decode_name
from tests.cfstub.server import CloudflareStub
from tests.e2e.harness import (
    FAST,
    GoavailProcess,
    addresses_of,
    free_port,
    http,
    metric,
    run_goavail,
    server_toml,
    stub_env,
    wait_until,
)
from tests.netns import Nft
from tests.route53_server import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_route53.client import Route53Client

pytestmark = pytest.mark.e2e

A, B = "127.22.0.1", "127.22.0.2"
COM, ORG = "www.example.com", "www.example.org"
LIVE = ["--no-dry-run"]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def client(moto: MotoServer) -> Route53Client:
    moto.reset()
    return boto3.client(
        "route53",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="seed",
        aws_secret_access_key="seed",
    )


def env_for(stub: CloudflareStub, moto: MotoServer, tmp_path: Path) -> dict[str, str]:
    return {
        **stub_env(stub),
        "AWS_ENDPOINT_URL_ROUTE_53": moto.url,
        "AWS_ACCESS_KEY_ID": "AKIAE2ETEST",
        "AWS_SECRET_ACCESS_KEY": "e2e-secret-access-key-value",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


def config(zone_id: str, listen: str | None) -> str:
    return (
        FAST
        + 'resync_interval = "1s"\n'
        + 'audit_file = "audit.jsonl"\n'
        + 'providers = ["cloudflare", "route53"]\n'
        + server_toml(listen)
        + f'\n[[pools]]\nname = "web"\naddresses = {json.dumps([A, B])}\n'
        + f'\n[[names]]\nname = "{COM}"\npools = ["web"]\n'
        + f'\n[[names]]\nname = "{ORG}"\npools = ["web"]\n'
        + '\n[Cloudflare]\ndns_domain = "example.com"\nzones = ["example.org"]\nttl = 120\n'
        + f'\n[Route53]\naws_domain = "example.org"\naws_zoneid = "{zone_id}"\nttl = 30\n'
        + 'aws_region = "us-west-2"\n'
    )


def route53_values(client: Route53Client, zone_id: str, name: str) -> set[str]:
    page = client.list_resource_record_sets(HostedZoneId=zone_id)
    return {
        rr["Value"]
        for s in page["ResourceRecordSets"]
        if decode_name(s["Name"]) == name and s["Type"] == "A"
        for rr in s.get("ResourceRecords", [])
    }


def test_two_zones_at_two_providers(
    tmp_path: Path,
    stub: CloudflareStub,
    moto: MotoServer,
    client: Route53Client,
    nft: Nft,
) -> None:
    stub.add_zone("example.org")
    created = client.create_hosted_zone(Name="example.org", CallerReference="multi")
    zone_id = created["HostedZone"]["Id"].rsplit("/", 1)[-1]
    env = env_for(stub, moto, tmp_path)
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"

    def cf_com() -> set[str]:
        return addresses_of(stub, "example.com", COM)

    def cf_org() -> set[str]:
        return addresses_of(stub, "example.org", ORG)

    def r53_org() -> set[str]:
        return route53_values(client, zone_id, ORG)

    # validate and plan know both providers; plan reads both, changes nothing
    path = tmp_path / "goavail.toml"
    path.write_text(config(zone_id, None))
    checked = run_goavail("validate", "-f", str(path), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "providers cloudflare (2 names), route53 (1 name)" in checked.stdout
    planned = run_goavail("plan", "-f", str(path), "--json", "--detailed-exitcode", env=env)
    assert planned.returncode == 2, planned.stderr  # changes pending
    changes = json.loads(planned.stdout)["changes"]
    assert sorted((c["provider"], c["name"], c["address"]) for c in changes) == [
        ("cloudflare", COM, A),
        ("cloudflare", COM, B),
        ("cloudflare", ORG, A),
        ("cloudflare", ORG, B),
        ("route53", ORG, A),
        ("route53", ORG, B),
    ]
    only = run_goavail("plan", "-f", str(path), "-p", "route53", "--json", env=env)
    assert only.returncode == 0, only.stderr  # -p restricts the run to one provider
    assert {c["provider"] for c in json.loads(only.stdout)["changes"]} == {"route53"}
    assert cf_com() == set() and r53_org() == set()

    with GoavailProcess(tmp_path, config(zone_id, listen), args=LIVE, env=env) as proc:
        wait_until(
            lambda: cf_com() == {A, B} and cf_org() == {A, B} and r53_org() == {A, B},
            message=proc.tail,
        )
        nft.blackhole(B)  # down: withdrawn at both providers
        wait_until(
            lambda: cf_com() == {A} and cf_org() == {A} and r53_org() == {A},
            message=proc.tail,
        )

        stub.set_faults(1.0, statuses=(503,))  # Cloudflare fails every call
        nft.clear()  # B back: Route 53 converges while Cloudflare cannot
        wait_until(lambda: r53_org() == {A, B}, message=proc.tail)
        proc.wait_for(r"cloudflare: DNS not converged")

        def cloudflare_unhealthy() -> bool:
            body = http("GET", f"{base}/_health").json()
            dns = {p["name"]: p for p in body["probes"]}["dns"]
            return not dns["healthy"] and "cloudflare" in (dns["error"] or "")

        wait_until(cloudflare_unhealthy, message=proc.tail)
        health = http("GET", f"{base}/_health")
        assert health.status == 503
        dns = {p["name"]: p for p in health.json()["probes"]}["dns"]
        assert "route53" not in dns["error"]
        text = http("GET", f"{base}/metrics").text
        assert metric(text, "goavail_dns_converged", provider="route53") == 1.0
        assert metric(text, "goavail_dns_converged", provider="cloudflare") == 0.0
        providers = {
            p["name"]: p for p in http("GET", f"{base}/api/status").json()["dns"]["providers"]
        }
        assert providers["route53"]["converged"] and providers["route53"]["last_error"] is None
        assert not providers["cloudflare"]["converged"] and providers["cloudflare"]["retries"]
        assert cf_com() == {A} and cf_org() == {A}  # untouched while it fails

        stub.set_faults(0.0)  # the faults stop: Cloudflare converges too
        wait_until(lambda: cf_com() == {A, B} and cf_org() == {A, B}, message=proc.tail)
        proc.wait_for(r"cloudflare: DNS converged after \d+ failed passes")
        assert r53_org() == {A, B}
        assert proc.stop() == 0

    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    made = {(r["provider"], r["name"], r["action"], r["address"]) for r in audit}
    for provider, name in (("cloudflare", COM), ("cloudflare", ORG), ("route53", ORG)):
        assert (provider, name, "delete", B) in made
        assert (provider, name, "create", B) in made
    assert "e2e-secret-access-key-value" not in proc.output
    assert stub.token is not None and stub.token not in proc.output
