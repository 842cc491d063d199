"""HTTP and HTTPS checks against real aiohttp servers on loopback addresses, in the
test session's private network namespace.

The HTTPS servers present certificates for ``app.goavail.test`` issued by a CA the
test generates (``tests/tlsca.py``); the check connects to the server's IP address
and sends the host name as SNI and Host header, as flipper does.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from goavail.checks.base import CLOSED, ProbeResult, ProbeSetupError
from goavail.checks.http import MAX_BODY, HttpProbe
from tests.appserver import AppServer, Behaviour
from tests.tlsca import DAY, Leaf, TestCA

pytestmark = pytest.mark.netns

HOST = "app.goavail.test"
GOOD, EXPIRED, SOON, OTHER = "127.40.0.1", "127.40.0.2", "127.40.0.3", "127.40.0.4"
PLAIN = "127.40.1.1"
NOBODY = "127.40.9.9"  # nothing listens there
TLS_PORT, HTTP_PORT = 18443, 18080


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def certs(ca: TestCA) -> dict[str, Leaf]:
    return {
        GOOD: ca.issue(HOST),  # 90 days
        EXPIRED: ca.issue(HOST, not_before=now() - 30 * DAY, not_after=now() - DAY),
        SOON: ca.issue(HOST, not_after=now() + 10 * DAY),
        OTHER: ca.issue("other.goavail.test"),
    }


@pytest.fixture
async def tls_servers(certs: dict[str, Leaf]) -> AsyncIterator[dict[str, AppServer]]:
    servers = {
        address: AppServer([address], TLS_PORT, ssl_context=leaf.server_context())
        for address, leaf in certs.items()
    }
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.close()


@pytest.fixture
async def plain() -> AsyncIterator[AppServer]:
    async with AppServer([PLAIN], HTTP_PORT) as server:
        yield server


def https(ca: TestCA, **kwargs: object) -> HttpProbe:
    settings: dict[str, object] = {
        "scheme": "https",
        "port": TLS_PORT,
        "host": HOST,
        "ca_file": ca.pem_path,
        "timeout": 2.0,
        "check_id": "tls",
    }
    settings.update(kwargs)
    return HttpProbe(**settings)  # type: ignore[arg-type]


async def probe_once(probe: HttpProbe, target: str) -> ProbeResult:
    await probe.start()
    try:
        return await probe.probe(target)
    finally:
        await probe.close()


# -------------------------------------------------------------------------------- HTTPS


async def test_https_by_ip_with_the_host_name_as_sni(
    ca: TestCA, tls_servers: dict[str, AppServer]
) -> None:
    probe = https(ca, path="/healthz?full=1")
    await probe.start()
    try:
        result = await probe.probe(GOOD)
        days = probe.cert_days_left(GOOD)
    finally:
        await probe.close()
    assert result.ok, result
    assert result.rtt is not None and result.rtt > 0
    (seen,) = tls_servers[GOOD].seen
    assert (seen.address, seen.method, seen.path, seen.host, seen.sni) == (
        GOOD,
        "GET",
        "/healthz?full=1",
        HOST,
        HOST,
    )
    assert days is not None and 89 < days < 90  # the leaf is valid for 90 days from yesterday


async def test_https_wrong_host_name_is_down(ca: TestCA, tls_servers: dict[str, AppServer]) -> None:
    # the server's certificate is for other.goavail.test
    assert await probe_once(https(ca), OTHER) == ProbeResult(
        ok=False, error=f"TLS certificate does not match {HOST}"
    )
    # and asking for another name than the good server's certificate has
    assert await probe_once(https(ca, host="www.goavail.test"), GOOD) == ProbeResult(
        ok=False, error="TLS certificate does not match www.goavail.test"
    )
    assert tls_servers[GOOD].seen == []  # no request is sent over an unverified connection


async def test_https_expired_certificate_is_down(
    ca: TestCA, tls_servers: dict[str, AppServer]
) -> None:
    result = await probe_once(https(ca), EXPIRED)
    assert result == ProbeResult(ok=False, error="TLS certificate expired")


async def test_https_untrusted_ca_is_down(tls_servers: dict[str, AppServer]) -> None:
    probe = HttpProbe(scheme="https", port=TLS_PORT, host=HOST, timeout=2.0)  # certifi's CAs
    result = await probe_once(probe, GOOD)
    assert result == ProbeResult(ok=False, error="TLS certificate not trusted (unknown issuer)")


async def test_https_without_verification(
    ca: TestCA, tls_servers: dict[str, AppServer], caplog: pytest.LogCaptureFixture
) -> None:
    probe = https(ca, tls_verify=False, ca_file=None)
    await probe.start()
    with caplog.at_level(logging.INFO, logger="goavail.checks.http"):
        try:
            expired = await probe.probe(EXPIRED)
            other = await probe.probe(OTHER)
            days = probe.cert_days_left(EXPIRED)
        finally:
            await probe.close()
    assert expired.ok and other.ok  # the operator turned verification off
    assert days is not None and days < 0
    records = [r for r in caplog.records if r.name == "goavail.checks.http"]
    assert [(r.levelname, EXPIRED in r.getMessage()) for r in records] == [("ERROR", True)]
    assert "EXPIRED" in records[0].getMessage()


async def test_certificate_days_are_logged_once_per_level(
    ca: TestCA, tls_servers: dict[str, AppServer], caplog: pytest.LogCaptureFixture
) -> None:
    probe = https(ca)
    await probe.start()
    with caplog.at_level(logging.INFO, logger="goavail.checks.http"):
        try:
            for _ in range(3):
                assert (await probe.probe(SOON)).ok
                assert (await probe.probe(GOOD)).ok
            assert caplog.records, "nothing logged"
            (warning,) = [r for r in caplog.records if r.name == "goavail.checks.http"]
            assert warning.levelname == "WARNING"
            assert f"the certificate of {HOST} on {SOON} expires in 10.0 days" in (
                warning.getMessage()
            )
            days = probe.cert_days_left(SOON)
            assert days is not None and 9 < days < 10.01
            # the server gets a certificate with 3 days left: one ERROR line
            caplog.clear()
            server = tls_servers[SOON]
            server.ssl_context.load_cert_chain(  # type: ignore[union-attr]
                *_paths(ca.issue(HOST, not_after=now() + 3 * DAY))
            )
            for _ in range(2):
                assert (await probe.probe(SOON)).ok
            levels = [r.levelname for r in caplog.records if r.name == "goavail.checks.http"]
            assert levels == ["ERROR"]
            # renewed: one INFO line saying so
            caplog.clear()
            server.ssl_context.load_cert_chain(*_paths(ca.issue(HOST)))  # type: ignore[union-attr]
            assert (await probe.probe(SOON)).ok
            (info,) = [r for r in caplog.records if r.name == "goavail.checks.http"]
            assert info.levelname == "INFO" and "days left" in info.getMessage()
        finally:
            await probe.close()


def _paths(leaf: Leaf) -> tuple[Path, Path]:
    return leaf.cert_path, leaf.key_path


async def test_bad_ca_file_cannot_start(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    probe = HttpProbe(scheme="https", port=TLS_PORT, host=HOST, ca_file=bad, check_id="tls")
    with pytest.raises(ProbeSetupError, match=r"check tls: cannot load ca_file"):
        await probe.start()


# -------------------------------------------------------------------------------- HTTP


def http(**kwargs: object) -> HttpProbe:
    settings: dict[str, object] = {"scheme": "http", "port": HTTP_PORT, "timeout": 1.0}
    settings.update(kwargs)
    return HttpProbe(**settings)  # type: ignore[arg-type]


async def test_http_healthy_and_what_is_sent(plain: AppServer) -> None:
    assert (await probe_once(http(path="/ready", method="HEAD", host=HOST), PLAIN)).ok
    assert (await probe_once(http(), PLAIN)).ok
    first, second = plain.seen
    assert (first.method, first.path, first.host, first.sni) == ("HEAD", "/ready", HOST, None)
    assert (second.method, second.path, second.host) == ("GET", "/", f"{PLAIN}:{HTTP_PORT}")


@pytest.mark.parametrize(
    ("behaviour", "settings", "error"),
    [
        (Behaviour(status=503), {}, "status 503 (expected 2xx)"),
        (Behaviour(status=301), {}, "status 301 (expected 2xx)"),  # redirects not followed
        (Behaviour(status=200), {"expected_status": [204, 301]}, "status 200 (expected 204, 301)"),
        (Behaviour(body="maintenance"), {"body_contains": "ok"}, "body does not contain 'ok'"),
        (Behaviour(status=500, body="ok"), {"body_contains": "ok"}, "status 500 (expected 2xx)"),
        (Behaviour(delay=3.0), {}, "timeout"),  # slower than the 1 s timeout
    ],
)
async def test_http_down(
    plain: AppServer, behaviour: Behaviour, settings: dict[str, object], error: str
) -> None:
    plain.set(PLAIN, behaviour)
    assert await probe_once(http(**settings), PLAIN) == ProbeResult(ok=False, error=error)


@pytest.mark.parametrize(
    ("behaviour", "settings"),
    [
        (Behaviour(status=204), {}),
        (Behaviour(status=301), {"expected_status": [301]}),
        (Behaviour(status=503, body="down for maintenance"), {"expected_status": [503]}),
        (Behaviour(body="status: all systems ok\n"), {"body_contains": "systems ok"}),
        (Behaviour(body="x" * (MAX_BODY - 10) + "needle"), {"body_contains": "needle"}),
    ],
)
async def test_http_up(plain: AppServer, behaviour: Behaviour, settings: dict[str, object]) -> None:
    plain.set(PLAIN, behaviour)
    assert (await probe_once(http(**settings), PLAIN)).ok


async def test_body_is_searched_in_its_first_mib_only(plain: AppServer) -> None:
    plain.set(PLAIN, Behaviour(body="x" * (MAX_BODY + 65536) + "needle"))
    result = await probe_once(http(body_contains="needle", timeout=5.0), PLAIN)
    assert result == ProbeResult(ok=False, error="body does not contain 'needle'")


async def test_nothing_listening() -> None:
    assert await probe_once(http(), NOBODY) == ProbeResult(ok=False, error="connection refused")


async def test_http_over_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback in this namespace")
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=request.host)

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "::1", HTTP_PORT).start()
    try:
        assert (await probe_once(http(body_contains=f"[::1]:{HTTP_PORT}"), "::1")).ok
    finally:
        await runner.cleanup()


async def test_close_ends_probes_in_flight(plain: AppServer) -> None:
    plain.set(PLAIN, Behaviour(delay=5.0))
    probe = http(timeout=10.0)
    await probe.start()
    results: list[ProbeResult] = []
    probe.submit(PLAIN, lambda _t, r: results.append(r))
    async with asyncio.timeout(5):
        while not plain.seen:
            await asyncio.sleep(0.02)
    await probe.close()
    assert results == [CLOSED]
