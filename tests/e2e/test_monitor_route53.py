"""``goavail monitor --dns-provider route53`` end to end against moto's Route 53 server.

The real process runs with the Go original's ``[Route53]`` keys; boto3 inside it
reaches moto (a real HTTP server on 127.0.0.1 of the private test namespace)
through ``AWS_ENDPOINT_URL_ROUTE_53`` and fake keys in ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` — the standard boto3 chain, nothing goavail-specific.
The zone starts the way the Go original left it: a weighted set whose
SetIdentifier is the short host name. Targets are this test's own
127.20.53.0/24; an outage is an nftables blackhole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from goavail.dns.providers.route53 import decode_name
from tests.e2e.harness import FAST, GoavailProcess, hold, run_goavail, wait_until
from tests.netns import Nft
from tests.route53_server import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_route53.client import Route53Client

pytestmark = pytest.mark.e2e

DOMAIN = "example.com"
NAME = f"test.{DOMAIN}"
A, B, C = "127.20.53.2", "127.20.53.3", "127.20.53.4"
UNMANAGED = "127.20.53.250"  # in the set, not a target: never touched
LIVE = ["--dns-provider", "route53", "--no-dry-run"]


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


def aws_env(moto: MotoServer, tmp_path: Path) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_ROUTE_53": moto.url,
        "AWS_ACCESS_KEY_ID": "AKIAE2ETEST",
        "AWS_SECRET_ACCESS_KEY": "e2e-secret-access-key-value",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


def original_config(zone_id: str) -> str:
    """The Go original's [Route53] section (its keys and shape), with fast timings."""
    return (
        FAST
        + 'resync_interval = "1s"\n'
        + 'audit_file = "audit.jsonl"\n'
        + "\n[Route53]\n"
        + f'aws_domain = "{DOMAIN}"\n'
        + 'hostnames = ["test"]\n'
        + f"ip_addresses = {json.dumps([A, B, C])}\n"
        + "ttl = 30\n"
        + f'aws_zoneid = "{zone_id}"\n'
        + 'aws_region = "us-west-2"\n'
    )


def sets(client: Route53Client, zone_id: str) -> list[dict[str, Any]]:
    """Every record set at ``NAME``."""
    page = client.list_resource_record_sets(HostedZoneId=zone_id)
    return [dict(s) for s in page["ResourceRecordSets"] if decode_name(s["Name"]) == NAME]


def weighted_values(client: Route53Client, zone_id: str) -> set[str]:
    [a_set] = [s for s in sets(client, zone_id) if s["Type"] == "A"]
    return {rr["Value"] for rr in a_set["ResourceRecords"]}


def test_route53_failover_keeps_the_originals_weighted_set(
    tmp_path: Path, moto: MotoServer, client: Route53Client, nft: Nft
) -> None:
    zone_id = client.create_hosted_zone(Name=DOMAIN, CallerReference="e2e")["HostedZone"]["Id"]
    zone_id = zone_id.rsplit("/", 1)[-1]
    client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": NAME,
                        "Type": "A",
                        "SetIdentifier": "test",
                        "Weight": 0,
                        "TTL": 30,
                        "ResourceRecords": [{"Value": v} for v in (A, B, UNMANAGED)],
                    },
                },
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": NAME,
                        "Type": "TXT",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": '"not goavail\'s"'}],
                    },
                },
            ]
        },
    )
    env = aws_env(moto, tmp_path)
    config = tmp_path / "goavail.toml"
    config.write_text(original_config(zone_id))

    # one-shot plan: reads Route 53, changes nothing
    planned = run_goavail("plan", "-f", str(config), "-p", "route53", "--json", env=env)
    assert planned.returncode == 0, planned.stderr
    changes = json.loads(planned.stdout)["changes"]
    assert [(c["action"], c["name"], c["address"]) for c in changes] == [("create", NAME, C)]
    assert weighted_values(client, zone_id) == {A, B, UNMANAGED}

    with GoavailProcess(tmp_path, original_config(zone_id), args=LIVE, env=env) as proc:
        wait_until(
            lambda: weighted_values(client, zone_id) == {A, B, C, UNMANAGED}, message=proc.tail
        )
        nft.blackhole(B)
        wait_until(lambda: weighted_values(client, zone_id) == {A, C, UNMANAGED}, message=proc.tail)
        nft.clear()
        wait_until(
            lambda: weighted_values(client, zone_id) == {A, B, C, UNMANAGED}, message=proc.tail
        )
        hold(lambda: weighted_values(client, zone_id) == {A, B, C, UNMANAGED}, 1.0)
        assert proc.stop() == 0

    by_type = {s["Type"]: s for s in sets(client, zone_id)}
    assert set(by_type) == {"A", "TXT"}  # no second, unweighted A set appeared
    assert (by_type["A"]["SetIdentifier"], by_type["A"]["Weight"], by_type["A"]["TTL"]) == (
        "test",
        0,
        30,
    )
    assert by_type["TXT"]["ResourceRecords"] == [{"Value": '"not goavail\'s"'}]
    assert "e2e-secret-access-key-value" not in proc.output
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["action"], r["address"], r["outcome"]) for r in audit] == [
        ("create", C, "applied"),
        ("delete", B, "applied"),
        ("create", B, "applied"),
    ]
    assert all(r["provider"] == "route53" and r["name"] == NAME for r in audit)
