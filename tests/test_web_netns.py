"""The HTTP server of an agent running in-process: real HTTP requests on loopback.

The agent probes real TCP listeners on 127.33.0.x and keeps a zone file; its server
listens on a free port of 127.0.0.1 in the test session's private network namespace.
Fine-grained cases (a DNS provider that cannot be read, a probe engine that stopped,
a rejected reload) are set up by reaching into the agent; the end-to-end tests of the
real process are in ``tests/e2e/test_server.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goavail.agent import Agent
from goavail.compose import compose, load_checked
from goavail.decision import Override
from goavail.dns.audit import AuditLog
from goavail.dns.providers.memory import MemoryProvider
from goavail.health import State
from goavail.options import Options
from goavail.overrides import load_overrides
from tests.e2e.harness import free_port

pytestmark = pytest.mark.netns

A, B = "127.33.0.1", "127.33.0.2"
TOKEN = "test-admin-token-0123456789"


def config_text(zone: Path, port: int, listen: str, *, top: str = "") -> str:
    return f"""\
failure_threshold = 2
rise_threshold = 2
interval = "200ms"
timeout = "150ms"
port = {port}
resync_interval = "1s"
overrides_file = "overrides.toml"
{top}
[Zonefile]
path = "{zone}"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["{A}", "{B}"]

[Server]
listen = "{listen}"
"""


@dataclass
class Files:
    config: Path
    zone: Path
    probe_port: int
    listen: str

    def rewrite(self, top: str = "") -> None:
        self.config.write_text(config_text(self.zone, self.probe_port, self.listen, top=top))


@dataclass
class Served(Files):
    agent: Agent

    @property
    def base(self) -> str:
        return f"http://{self.listen}"


@pytest.fixture
def listeners() -> Iterator[int]:
    port = free_port()
    socks = []
    for addr in (A, B):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(64)
        socks.append(s)
    yield port
    for s in socks:
        s.close()


async def start(
    tmp_path: Path, probe_port: int, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> tuple[Served, asyncio.Task[None]]:
    if token is None:
        monkeypatch.delenv("GOAVAIL_ADMIN_TOKEN", raising=False)
    else:
        monkeypatch.setenv("GOAVAIL_ADMIN_TOKEN", token)
    files = Files(
        tmp_path / "goavail.toml",
        tmp_path / "example.test.zone",
        probe_port,
        f"127.0.0.1:{free_port()}",
    )
    files.rewrite()
    options = Options(files.config, dry_run=False, probe_type="tcp", provider="zonefile")
    agent = compose(load_checked(options), options)
    task = asyncio.create_task(agent.run())
    await until(lambda: agent.web is not None and agent.web._runner is not None)
    return Served(files.config, files.zone, files.probe_port, files.listen, agent), task


async def stop(agent: Agent, task: asyncio.Task[None]) -> None:
    agent.request_stop()
    async with asyncio.timeout(5):
        await task


@pytest.fixture
async def served(
    tmp_path: Path, listeners: int, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Served]:
    result, task = await start(tmp_path, listeners, monkeypatch, TOKEN)
    yield result
    await stop(result.agent, task)


async def until(predicate: object, within: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, at most ``within`` seconds."""
    assert callable(predicate)
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.05)


async def request(
    method: str,
    url: str,
    *,
    body: object = None,
    data: bytes | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, data=data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.text()


async def get_json(url: str) -> tuple[int, Any]:
    status, headers, text = await request("GET", url)
    assert headers["Content-Type"].startswith("application/json")
    return status, json.loads(text)


async def all_up(served: Served) -> None:
    agent = served.agent
    rec = agent.reconciler

    def settled() -> bool:
        records = {r.content for r in rec.current.get("www.example.test", [])}
        return rec.converged and not rec.pending and not rec.lock.locked() and records == {A, B}

    await until(lambda: agent.decision.decisions == {A: State.UP, B: State.UP})
    await until(settled)


# --------------------------------------------------------------------------- /_health


async def test_health_is_philae_json_and_200_when_healthy(served: Served) -> None:
    await all_up(served)
    await until(lambda: served.agent.web is not None and served.agent.web.rounds.rounds >= 2)
    status, body = await get_json(served.base + "/_health")
    assert status == 200
    assert set(body) == {"healthy", "probes", "error"}
    assert body["healthy"] is True and body["error"] is None
    assert [p["name"] for p in body["probes"]] == ["config", "probes", "dns"]
    for probe in body["probes"]:
        assert set(probe) == {"name", "healthy", "comment", "error", "duration"}
        assert probe["healthy"] is True and probe["error"] is None
        assert isinstance(probe["duration"], int) and probe["duration"] >= 0
    assert "read by the reconciler" in body["probes"][2]["comment"]


async def test_health_503_when_the_zone_cannot_be_read(served: Served) -> None:
    await all_up(served)
    served.zone.write_text("this is { not a zone file\n")
    served.agent.reconciler.trigger()
    await until(lambda: served.agent.reconciler.read_failed)
    status, body = await get_json(served.base + "/_health")
    assert status == 503
    assert body["healthy"] is False
    dns = {p["name"]: p for p in body["probes"]}["dns"]
    assert dns["healthy"] is False and "cannot read" in dns["error"]
    assert body["error"].startswith("prober error: probe dns: ")
    assert [p["name"] for p in body["probes"] if p["healthy"]] == ["config", "probes"]


async def test_own_dns_read_is_cached(served: Served) -> None:
    await all_up(served)
    agent = served.agent
    # a provider the reconciler does not use: its reads cannot stand in for the check's
    other = MemoryProvider(dry_run=False, audit=AuditLog())
    agent.providers["zonefile"] = other
    bodies = [(await get_json(served.base + "/_health"))[1] for _ in range(3)]
    assert other.calls == ["list www.example.test"]  # one read for three health checks
    comments = [{p["name"]: p for p in b["probes"]}["dns"]["comment"] for b in bodies]
    assert comments[0] == "zonefile answered a read of www.example.test"
    assert all("(cached" in c for c in comments[1:])
    other.fail_next(1, on="list")  # cached: the failure is not seen for up to 30 s
    assert (await get_json(served.base + "/_health"))[0] == 200
    fresh = MemoryProvider(dry_run=False, audit=AuditLog())  # a new provider: no cache
    agent.providers["zonefile"] = fresh
    fresh.fail_next(1, on="list", message="HTTP 503")
    status, body = await get_json(served.base + "/_health")
    assert status == 503
    assert {p["name"]: p for p in body["probes"]}["dns"]["error"] == (
        "zonefile: cannot read www.example.test: HTTP 503"
    )


async def test_health_503_when_probing_stopped(served: Served) -> None:
    await all_up(served)
    single = served.agent.checks.single_check
    assert single is not None
    single.scheduler.stop()
    web = served.agent.web
    assert web is not None
    await until(lambda: not web.rounds.check(asyncio.get_running_loop().time(), 0.2, 2).healthy)
    status, body = await get_json(served.base + "/_health")
    assert status == 503
    probes = {p["name"]: p for p in body["probes"]}["probes"]
    assert probes["healthy"] is False and "no full probing round" in probes["error"]


async def test_health_503_after_a_rejected_reload_until_a_good_one(served: Served) -> None:
    await all_up(served)
    served.config.write_text("failure_threshold = 0\n")
    assert not await served.agent.reload()
    status, body = await get_json(served.base + "/_health")
    assert status == 503
    config = body["probes"][0]
    assert config["name"] == "config" and not config["healthy"]
    assert "rejected" in config["error"] and "failure_threshold" in config["error"]
    served.rewrite()
    assert await served.agent.reload()
    status, body = await get_json(served.base + "/_health")
    assert status == 200, body


# --------------------------------------------------------------------------- /metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_text_format(served: Served) -> None:
    await all_up(served)
    status, headers, text = await request("GET", served.base + "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    values = samples(text)
    assert values[("goavail_target_up", (("target", A),))] == 1.0
    assert values[("goavail_target_state", (("state", "up"), ("target", B)))] == 1.0
    assert values[("goavail_targets", (("state", "up"),))] == 2.0
    assert values[("goavail_dry_run", ())] == 0.0
    assert values[("goavail_probes_total", (("result", "ok"), ("type", "tcp")))] >= 4
    created = (
        "goavail_dns_changes_total",
        (
            ("action", "create"),
            ("dry_run", "false"),
            ("provider", "zonefile"),
            ("result", "applied"),
        ),
    )
    assert values[created] == 2.0
    assert ("process_resident_memory_bytes", ()) in values
    assert any(name == "goavail_build_info" for name, _ in values)


# --------------------------------------------------------------------------- /api/status


async def test_status_document(served: Served) -> None:
    await all_up(served)
    status, doc = await get_json(served.base + "/api/status")
    assert status == 200
    assert set(doc) == {
        "generated_at",
        "agent",
        "config",
        "summary",
        "warnings",
        "listing",  # issue 14: what the query asked and how many matched (additive)
        "targets",
        "overrides",
        "names",
        "dns",
        "cluster",
        "audit",
        "floating_ips",  # issue 16: floating IP groups (empty without [[floating_ips]])
    }
    assert doc["agent"]["mode"] == "single" and doc["agent"]["admin_api"] is True
    assert doc["summary"] == {
        "targets": 2,
        "up": 2,
        "down": 0,
        "unknown": 0,
        "overridden": 0,
        "pending_changes": 0,
        "names": 1,
        "names_differing": 0,
        "held": 0,
        "suppressed": 0,  # issue 15: flap damping (additive)
        "awaiting_failback": 0,  # issue 15: gated failback (additive)
    }
    assert doc["listing"]["targets"] == {
        "total": 2,
        "matched": 2,
        "page": 1,
        "pages": 1,
        "first": 1,
        "last": 2,
    }
    assert [t["address"] for t in doc["targets"]] == [A, B]  # no query: configuration order
    assert doc["targets"][0]["pools"] == ["Zonefile"]
    assert doc["targets"][0]["names"] == ["www.example.test"]
    assert doc["targets"][0]["state"] == "up" and doc["targets"][0]["successes"] >= 2
    assert doc["targets"][0]["last_rtt_seconds"] > 0
    assert doc["names"] == [
        {
            "name": "www.example.test",
            "records": [
                {"type": "A", "address": A, "managed": True},
                {"type": "A", "address": B, "managed": True},
            ],
            "pending": [],
            "fail_open": [],
            # issue 14 (additive): the name's pools, the one serving, how the answer stands
            "pools": [
                {
                    "name": "Zonefile",
                    "role": "primary",
                    "priority": 0,
                    "serving": True,
                    "addresses": [A, B],
                    "up": 2,
                    "down": 0,
                    "unknown": 0,
                }
            ],
            "serving": ["Zonefile"],
            "answer": "primary",
            "differs": False,
            "marks": [],
        }
    ]
    assert [(a["action"], a["address"], a["outcome"]) for a in doc["audit"]] == [
        ("create", B, "applied"),
        ("create", A, "applied"),
    ] or [(a["action"], a["address"]) for a in doc["audit"]] == [("create", A), ("create", B)]
    assert doc["cluster"] is None
    assert doc["warnings"] == []


# --------------------------------------------------------------------------- overrides


async def test_write_endpoint_needs_the_token(served: Served) -> None:
    url = served.base + "/api/overrides"
    body = {"target": A, "mode": "down"}
    status, headers, _ = await request("POST", url, body=body)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = await request("POST", url, body=body, token="wrong")
    assert status == 401
    status, _, _ = await request("POST", url, body=body, token=TOKEN + "x")
    assert status == 401
    assert served.agent.overrides.entries == {}


async def test_write_endpoints_are_disabled_without_a_token(
    tmp_path: Path, listeners: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, task = await start(tmp_path, listeners, monkeypatch, None)
    try:
        status, _, text = await request(
            "POST", result.base + "/api/overrides", body={"target": A, "mode": "down"}, token=""
        )
        assert status == 403 and "GOAVAIL_ADMIN_TOKEN" in text
        _, doc = await get_json(result.base + "/api/status")
        assert doc["agent"]["admin_api"] is False
    finally:
        await stop(result.agent, task)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "body must be JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'{"target": "www", "mode": "down"}', "is not an IP address"),
        (b'{"target": "127.33.0.9", "mode": "down"}', "is not a configured target"),
        (b'{"target": "127.33.0.1", "mode": "drain"}', "is not one of up, down, auto"),
        (b'{"target": "127.33.0.1", "mode": "down", "reason": "a\\nb"}', "printable"),
        (b'{"target": "127.33.0.1", "mode": "down", "until": 5}', "until: unknown field"),
    ],
)
async def test_bad_override_requests_are_refused(served: Served, body: bytes, needle: str) -> None:
    status, _, text = await request("POST", served.base + "/api/overrides", data=body, token=TOKEN)
    assert status == 400 and needle in text
    assert served.agent.overrides.entries == {}


DEEP = 20_000


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"[" * DEEP + b"]" * DEEP, "body must be JSON nested less deeply"),
        (b'{"":' * (DEEP // 2) + b"1" + b"}" * (DEEP // 2), "body must be JSON nested less deeply"),
        (b'{"target": ' + b"9" * 4301 + b"}", "without numbers of more than 100 digits"),
        (b'{"target": -' + b"9" * 101 + b"}", "without numbers of more than 100 digits"),
        (b'{"target": "127.33.0.1", "mode": NaN}', "NaN is not a JSON value"),
        (b'{"target": "127.33.0.1", "mode": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"target": 1e999, "mode": "down"}', "target: required, an IP address"),
        (b'{"target": "127.33.0.1", "mode": 1e999}', "mode: required, one of up, down, auto"),
        (b'{"target": "127.33.0.1", "mode": "down", "reason": 1e999}', "reason must be a str"),
        (b'{"target": "127.33.0.1", "mode": ' + b"[" * 900 + b"]" * 900 + b"}", "mode: required"),
        (b"\xff\xfe{}", "body must be UTF-8 JSON"),
        (b'{"target": "127.33.0.1", "mode": "down"', "body must be JSON: Expecting"),
    ],
    ids=lambda v: v[:40] if isinstance(v, bytes) else None,
)
async def test_hostile_bodies_are_400_not_500(served: Served, body: bytes, needle: str) -> None:
    status, headers, text = await request(
        "POST", served.base + "/api/overrides", data=body, token=TOKEN
    )
    assert status == 400, text
    assert headers["Content-Type"].startswith("application/json")
    assert needle in text, text
    assert served.agent.overrides.entries == {}


async def test_hostile_strings_are_not_echoed_at_length(served: Served) -> None:
    huge = "x" * 15_000  # three of them, and 50 long keys: just under the limit
    body = {
        "target": huge,
        "mode": huge,
        "reason": huge,
        **{f"k{i}{huge[:200]}": 1 for i in range(50)},
    }
    data = json.dumps(body).encode()
    assert len(data) < 64 * 1024
    status, _, text = await request("POST", served.base + "/api/overrides", data=data, token=TOKEN)
    assert status == 400
    problems = json.loads(text)["problems"]
    assert len(problems) <= 20 and all(len(p) <= 200 for p in problems), problems
    assert problems[-1].endswith("more problems")
    assert len(text) < 8_000


async def test_a_body_over_the_limit_is_413(served: Served) -> None:
    data = json.dumps({"target": A, "mode": "down", "reason": "x" * 70_000}).encode()
    status, headers, text = await request(
        "POST", served.base + "/api/overrides", data=data, token=TOKEN
    )
    assert status == 413, text
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(text) == {"error": "body must be at most 65536 bytes"}
    assert served.agent.overrides.entries == {}


async def test_a_declared_charset_does_not_matter(served: Served) -> None:
    await all_up(served)
    status, _, text = await request(
        "POST",
        served.base + "/api/overrides",
        data=json.dumps({"target": A, "mode": "up"}).encode(),
        token=TOKEN,
        headers={"Content-Type": "application/json; charset=no-such-charset"},
    )
    assert status == 200, text
    assert served.agent.decision.forced == {A: Override.UP}


async def test_drain_and_release_through_the_api(served: Served) -> None:
    await all_up(served)
    agent = served.agent
    url = served.base + "/api/overrides"
    status, _, text = await request(
        "POST", url, body={"target": B, "mode": "down", "reason": "kernel update"}, token=TOKEN
    )
    assert status == 200, text
    answer = json.loads(text)
    assert answer["in_force"] == "down" and answer["effective"] == "down"
    assert answer["persisted"] is True
    # withdrawn from DNS although healthy, persisted, audited, shown, measured
    await until(lambda: B not in served.zone.read_text())
    overrides_file = served.config.parent / "overrides.toml"
    assert load_overrides(overrides_file)[B].reason == "kernel update"
    _, doc = await get_json(served.base + "/api/status")
    target = doc["targets"][1]
    assert target["state"] == "up" and target["effective"] == "down"
    assert target["override"]["local"]["reason"] == "kernel update"
    assert [w["kind"] for w in doc["warnings"]] == ["override"]
    audit = [a for a in doc["audit"] if a["action"] in ("override", "delete")]
    assert [(a["action"], a.get("reason")) for a in audit[:2]] == [
        ("delete", f"target {B} down (override)"),
        ("override", "kernel update"),
    ]
    _, _, text = await request("GET", served.base + "/metrics")
    values = samples(text)
    assert values[("goavail_target_override", (("mode", "down"), ("target", B)))] == 1.0
    # release
    status, _, _ = await request("POST", url, body={"target": B, "mode": "auto"}, token=TOKEN)
    assert status == 200
    await until(lambda: B in served.zone.read_text())
    assert load_overrides(overrides_file) == {}
    assert agent.decision.forced == {}


async def test_override_file_is_read_again_on_reload(served: Served) -> None:
    await all_up(served)
    (served.config.parent / "overrides.toml").write_text(f'"{A}" = "down"\n')
    assert await served.agent.reload()
    assert served.agent.decision.forced == {A: Override.DOWN}
    await until(lambda: A not in served.zone.read_text())
    (served.config.parent / "overrides.toml").write_text(f'"{A}" = "sideways"\n')
    assert not await served.agent.reload()  # an invalid overrides file rejects the reload
    assert A in served.agent.decision.forced


# --------------------------------------------------------------------------- the page


async def test_page_is_html_without_scripts_and_escapes_everything(served: Served) -> None:
    await all_up(served)
    evil = '<script>alert("x")</script> & <b>bold</b>'
    status, _, _ = await request(
        "POST",
        served.base + "/api/overrides",
        body={"target": A, "mode": "up", "reason": evil},
        token=TOKEN,
    )
    assert status == 200
    status, headers, html = await request("GET", served.base + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert '<meta http-equiv="refresh"' in html
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold</b>" not in html


async def test_unknown_path_is_404(served: Served) -> None:
    status, _, _ = await request("GET", served.base + "/nope")
    assert status == 404
    status, _, _ = await request("DELETE", served.base + "/api/overrides", token=TOKEN)
    assert status == 405
