"""The floating-IP reconciler against the Hetzner Cloud API stand-in, through the
official ``hcloud`` SDK: label selectors, pagination, assign actions that take time,
dry-run, failover and failback, all-down, drift, and 429/5xx injection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from goavail.config import FloatingIpSection
from goavail.dns.audit import AuditLog
from goavail.errors import SetupError
from goavail.fip.hetzner import Hetzner, HetznerError, client_from_env
from goavail.fip.reconcile import Actuator, GroupReconciler
from goavail.health import State
from tests.hcloudstub import HcloudStub

U, D = State.UP, State.DOWN
S0, S1, S2 = "127.16.0.1", "127.16.0.2", "127.16.0.3"


@pytest.fixture
def stub() -> Iterator[HcloudStub]:
    with HcloudStub(action_seconds=0.2) as server:
        yield server


def hetzner(stub: HcloudStub) -> Hetzner:
    client = client_from_env(stub.env(), poll_interval=0.05)
    return Hetzner(client, action_timeout=10.0)


def fleet(stub: HcloudStub) -> dict[str, int]:
    """Three lb servers in fsn1 (resource_index 0-2), one other server, two indexed IPs."""
    st = stub.state
    ids = {
        "lb0": st.add_server("lb0", S0, role="lb", resource_index="0"),
        "lb1": st.add_server("lb1", S1, role="lb", resource_index="1"),
        "lb2": st.add_server("lb2", S2, role="lb", resource_index="2"),
        "db": st.add_server("db", "127.16.0.9", role="db"),
    }
    ids["ip0"] = st.add_floating_ip("ip0", "203.0.113.10", service="web", resource_index="0")
    ids["ip1"] = st.add_floating_ip("ip1", "203.0.113.11", service="web", resource_index="1")
    st.add_floating_ip("other", "203.0.113.99", service="mail")
    return ids


def group(
    stub: HcloudStub,
    decisions: dict[str, State],
    tmp_path: Path,
    *,
    dry_run: bool = False,
    agreed: bool = True,
) -> tuple[GroupReconciler, AuditLog]:
    section = FloatingIpSection(
        id="web", server_selector="role=lb", floating_ip_selector="service=web"
    )
    api = hetzner(stub)
    audit = AuditLog(tmp_path / "audit.jsonl")
    reconciler = GroupReconciler(
        section,
        api,
        Actuator(api, lambda: audit, dry_run=dry_run, group="web"),
        decisions=decisions,
        agreed=lambda _: agreed,
        on_servers=lambda _group, _addresses: None,
        jitter=lambda: 0.0,
    )
    return reconciler, audit


async def converge(reconciler: GroupReconciler, passes: int = 20) -> None:
    """Run passes until one neither moves nor fails (bounded)."""
    for _ in range(passes):
        reconciler._stale = True  # read every pass, as the poll timer would
        delay = await reconciler.run_pass()
        if reconciler.last_error is None and delay > 0:
            return
    raise AssertionError(f"no convergence: {reconciler.last_error}")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("role=lb", ["lb0", "lb1", "lb2"]),
        ("role==db", ["db"]),
        ("role!=lb", ["db"]),
        ("resource_index", ["lb0", "lb1", "lb2"]),
        ("!resource_index", ["db"]),
        ("resource_index in (0,2)", ["lb0", "lb2"]),
        ("role=lb,resource_index notin (0)", ["lb1", "lb2"]),
    ],
)
async def test_label_selectors_filter_servers(
    stub: HcloudStub, selector: str, expected: list[str]
) -> None:
    fleet(stub)
    servers, skipped = await hetzner(stub).servers(selector)
    assert sorted(s.name for s in servers) == expected
    assert skipped == []


async def test_every_page_is_read(stub: HcloudStub) -> None:
    for i in range(60):  # more than the SDK's 50 per page
        stub.state.add_server(f"s{i:02}", f"127.17.0.{i + 1}", role="lb")
    servers, _ = await hetzner(stub).servers("role=lb")
    assert len(servers) == 60
    assert stub.state.count("GET", "/v1/servers", 200) == 2


async def test_servers_carry_location_index_and_address(stub: HcloudStub) -> None:
    ids = fleet(stub)
    servers, _ = await hetzner(stub).servers("role=lb")
    assert servers[0].id == ids["lb0"]
    assert (servers[0].name, servers[0].address, servers[0].location, servers[0].index) == (
        "lb0",
        S0,
        "fsn1",
        0,
    )
    ips = await hetzner(stub).floating_ips("service=web")
    assert [(i.name, i.location, i.index, i.server) for i in ips] == [
        ("ip0", "fsn1", 0, None),
        ("ip1", "fsn1", 1, None),
    ]


def test_token_only_from_the_environment() -> None:
    with pytest.raises(SetupError, match="HCLOUD_TOKEN") as caught:
        client_from_env({"HCLOUD_ENDPOINT": "http://127.0.0.1:9/v1"})
    assert "http://127.0.0.1" not in str(caught.value)


async def test_a_wrong_token_is_an_error_that_does_not_show_it(stub: HcloudStub) -> None:
    env = {**stub.env(), "HCLOUD_TOKEN": "wrong-secret-token"}
    with pytest.raises(HetznerError) as caught:
        await Hetzner(client_from_env(env)).servers("role=lb")
    assert caught.value.code == "unauthorized"
    assert "wrong-secret-token" not in str(caught.value)


async def test_failover_and_failback_through_the_sdk(stub: HcloudStub, tmp_path: Path) -> None:
    fleet(stub)
    decisions: dict[str, State] = {}
    reconciler, audit = group(stub, decisions, tmp_path)
    await converge(reconciler)
    assert reconciler.plan is not None and reconciler.plan.pending == ("lb0", "lb1", "lb2")
    assert stub.state.assigns == []  # nothing before every server's health is known
    decisions.update({S0: U, S1: U, S2: U})
    await converge(reconciler)
    assert stub.state.targets() == {"ip0": "lb0", "ip1": "lb1", "other": None}
    # lb0 fails: its IP goes to the least loaded healthy server (lb2), ip1 stays
    decisions[S0] = D
    await converge(reconciler)
    assert stub.state.targets() == {"ip0": "lb2", "ip1": "lb1", "other": None}
    # lb0 recovers: its canonical IP comes back, nothing else moves
    before = len(stub.state.assigns)
    decisions[S0] = U
    await converge(reconciler)
    assert stub.state.targets() == {"ip0": "lb0", "ip1": "lb1", "other": None}
    assert len(stub.state.assigns) == before + 1
    applied = [e for e in audit.recent if e.get("action") == "assign"]
    assert [(e["floating_ip"], e["from"], e["to"], e["outcome"]) for e in applied] == [
        ("ip0", None, "lb0", "applied"),
        ("ip1", None, "lb1", "applied"),
        ("ip0", "lb0", "lb2", "applied"),
        ("ip0", "lb2", "lb0", "applied"),
    ]


async def test_all_down_moves_nothing(stub: HcloudStub, tmp_path: Path) -> None:
    ids = fleet(stub)
    stub.state.reassign(ids["ip0"], ids["lb0"])
    stub.state.reassign(ids["ip1"], ids["lb1"])
    reconciler, _ = group(stub, {S0: D, S1: D, S2: D}, tmp_path)
    await converge(reconciler)
    assert reconciler.plan is not None and reconciler.plan.all_down
    assert stub.state.assigns == []


async def test_dry_run_records_the_plan_once_and_changes_nothing(
    stub: HcloudStub, tmp_path: Path
) -> None:
    fleet(stub)
    reconciler, audit = group(stub, {S0: U, S1: U, S2: U}, tmp_path, dry_run=True)
    for _ in range(3):
        await converge(reconciler)
    assert stub.state.count("POST", "/v1/floating_ips") == 0
    planned = [e for e in audit.recent if e.get("action") == "assign"]
    assert [(e["floating_ip"], e["to"], e["outcome"], e["dry_run"]) for e in planned] == [
        ("ip0", "lb0", "planned", True),
        ("ip1", "lb1", "planned", True),
    ]
    assert '"outcome":"planned"' in (tmp_path / "audit.jsonl").read_text()


async def test_unbacked_decisions_hold_the_move(stub: HcloudStub, tmp_path: Path) -> None:
    fleet(stub)
    reconciler, _ = group(stub, {S0: U, S1: U, S2: U}, tmp_path, agreed=False)
    await converge(reconciler)
    assert stub.state.assigns == [] and reconciler.held == 2


async def test_drift_is_repaired_at_the_next_poll(stub: HcloudStub, tmp_path: Path) -> None:
    ids = fleet(stub)
    reconciler, _ = group(stub, {S0: U, S1: U, S2: U}, tmp_path)
    await converge(reconciler)
    stub.state.reassign(ids["ip0"], ids["db"])  # by hand, to a server outside the group
    await converge(reconciler)
    assert stub.state.targets()["ip0"] == "lb0"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_api_errors_are_retried_until_the_plan_is_made(
    stub: HcloudStub, tmp_path: Path, status: int
) -> None:
    fleet(stub)
    reconciler, _ = group(stub, {S0: U, S1: U, S2: U}, tmp_path)
    stub.state.fail_next(3 if status == 429 else 2, status)
    await converge(reconciler)
    assert stub.state.targets() == {"ip0": "lb0", "ip1": "lb1", "other": None}
    if status != 429:  # the SDK retries 429 itself; goavail retries the others
        assert reconciler.failed_passes >= 1


async def test_half_the_requests_failing_still_converges(stub: HcloudStub, tmp_path: Path) -> None:
    fleet(stub)
    decisions = {S0: U, S1: U, S2: U}
    reconciler, _ = group(stub, decisions, tmp_path)
    stub.state.set_error_rate(0.5)
    await converge(reconciler, passes=60)
    decisions[S1] = D
    await converge(reconciler, passes=60)
    stub.state.set_error_rate(0.0)
    await converge(reconciler)
    assert stub.state.targets() == {"ip0": "lb0", "ip1": "lb2", "other": None}
    assert reconciler.failed_passes >= 1
