"""Verdict sync v2 (pure parts): message sealing, entry packing, vectors and their convergence."""

from __future__ import annotations

import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goavail.cluster.sync import (
    DIGEST_BYTES,
    PULL_NONCE_BYTES,
    LocalVector,
    Notice,
    PeerVector,
    PullRequest,
    Sealer,
    StateReply,
    code_override,
    code_state,
    entry_code,
    pack_entries,
    sync_event_name,
    unpack_entries,
    vector_digest,
)
from goavail.cluster.wire import USER_EVENT_BUDGET, WireError
from goavail.config.values import NOTICE_NODE_NAME_BYTES

KEY = b"k" * 32
EVENT = sync_event_name(None)
NONCE = b"n" * PULL_NONCE_BYTES
UP, DOWN = entry_code("up"), entry_code("down")


def sealer(key: bytes | None = KEY, event: str = EVENT) -> Sealer:
    return Sealer(key, event)


def notice(**kw: object) -> Notice:
    fields: dict[str, object] = {
        "node": "a",
        "epoch": 1_700_000_000_000_000,
        "version": 7,
        "digest": b"d" * DIGEST_BYTES,
        "port": 7947,
        "issued_at": 1_700_000_000.123,
    }
    fields.update(kw)
    return Notice(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [KEY, None], ids=["sealed", "plaintext"])
def test_messages_round_trip(key: bytes | None) -> None:
    s = sealer(key)
    n = notice()
    assert Notice.open(s, n.seal(s)) == n
    req = PullRequest("b", NONCE, 5, 9, 1_700_000_000.5)
    assert PullRequest.open(s, req.seal(s)) == req
    rep = StateReply("a", NONCE, 5, 10, b"x" * 8, False, {"192.0.2.1": UP, "2001:db8::1": DOWN})
    assert StateReply.open(s, rep.seal(s)) == rep


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"\x02abc", "truncated"),
        (b"\x01" + b"\0" * 60, "version"),  # a version-1 verdict
        (b"\x82\x90", "plaintext"),
    ],
)
def test_open_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(WireError) as info:
        Notice.open(sealer(), data)
    assert info.value.reason == reason


def test_kinds_clusters_and_keys_do_not_mix() -> None:
    s = sealer()
    payload = notice().seal(s)
    with pytest.raises(WireError, match="tag"):
        PullRequest.open(s, payload)  # another kind
    with pytest.raises(WireError, match="tag"):
        Notice.open(sealer(event=sync_event_name("other")), payload)
    with pytest.raises(WireError, match="tag"):
        Notice.open(sealer(b"x" * 32), payload)
    tampered = bytearray(payload)
    tampered[-1] ^= 1
    with pytest.raises(WireError, match="tag"):
        Notice.open(s, bytes(tampered))
    with pytest.raises(WireError, match="sealed"):
        Notice.open(sealer(None), payload)


def test_decode_errors_are_wire_errors() -> None:
    s = sealer()
    rows: list[list[object]] = [
        [],
        ["a"] * 6,
        ["a", 1, 2, b"short", 7947, 1],
        ["a", -1, 2, b"d" * 8, 1, 1],
    ]
    for row in rows:
        with pytest.raises(WireError, match="decode"):
            Notice.open(s, s.seal("notice", row))
    with pytest.raises(WireError, match="decode"):
        Notice.open(s, s.seal("notice", ["a", 1, 2, b"d" * 8, 0, 1]))  # port 0


@pytest.mark.parametrize("cluster", [None, "production"])
def test_the_node_name_limit_is_exact(cluster: str | None) -> None:
    event = sync_event_name(cluster)
    s = sealer(event=event)
    limit = NOTICE_NODE_NAME_BYTES - (len(cluster) + 1 if cluster else 0)
    worst = {"version": 2**64 - 1, "epoch": 2**64 - 1, "port": 65535, "issued_at": 2**63 / 1000}
    payload = notice(node="n" * limit, **worst).seal(s)
    assert len(event) + len(payload) == USER_EVENT_BUDGET
    with pytest.raises(ValueError, match="too long"):
        notice(node="n" * (limit + 1), **worst).seal(s)


def test_a_notice_fits_a_serf_user_event_and_a_long_name_is_refused() -> None:
    s = sealer()
    payload = notice(node="n" * 300, version=2**64 - 1, epoch=2**64 - 1).seal(s)
    assert len(EVENT) + len(payload) <= USER_EVENT_BUDGET
    with pytest.raises(ValueError, match="too long"):
        notice(node="n" * 500).seal(s)


def test_codes() -> None:
    assert entry_code("unknown") == 0
    for state in ("unknown", "up", "down"):
        for override in ("auto", "up", "down"):
            code = entry_code(state, override)
            assert (code_state(code), code_override(code)) == (state, override)


def test_entries_pack_and_unpack() -> None:
    entries = {"192.0.2.1": UP, "2001:db8::1": DOWN, "198.51.100.7": entry_code("up", "down")}
    assert unpack_entries(pack_entries(entries.items())) == entries
    # 10,000 sequential IPv4 targets pack small
    many = {f"10.{i // 65536}.{i // 256 % 256}.{i % 256}": UP for i in range(10_000)}
    blob = pack_entries(many.items())
    assert unpack_entries(blob) == many
    assert len(blob) < 25_000  # 2.1 bytes a target, 50,000 raw


@pytest.mark.parametrize(
    "raw",
    [
        b"\x01\xc0\x00\x02",  # truncated entry
        b"\x03\xc0\x00\x02\x01",  # state code 3
        b"\x01\xc0\x00\x02\x01\x01\xc0\x00\x02\x01",  # a target twice
    ],
)
def test_bad_entries_are_decode_errors(raw: bytes) -> None:
    with pytest.raises(WireError, match="decode"):
        unpack_entries(zlib.compress(raw))
    with pytest.raises(WireError, match="decode"):
        unpack_entries(b"not zlib")


def test_a_decompression_bomb_is_refused() -> None:
    with pytest.raises(WireError, match="decode"):
        unpack_entries(zlib.compress(b"\x01\xc0\x00\x02\x01" * 4_000_000))


def test_digest_ignores_history_and_order() -> None:
    a = {"192.0.2.1": UP, "192.0.2.2": DOWN}
    b = {"192.0.2.2": DOWN, "192.0.2.1": UP, "192.0.2.3": 0}
    assert vector_digest(a) == vector_digest(b)
    assert vector_digest(a) != vector_digest({"192.0.2.1": UP, "192.0.2.2": UP})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1"]),
                st.sampled_from([0, UP, DOWN, entry_code("up", "down")]),
            ),
            max_size=6,
        ),
        max_size=8,
    )
)
def test_the_kept_digest_is_the_digest_of_the_vector(
    batches: list[list[tuple[str, int]]],
) -> None:
    # commit() keeps the digest up to date per change (O(changes), not O(targets) per
    # version: at 10,000 targets recomputing it cost ~25 ms per batch of transitions)
    local = LocalVector(epoch=1)
    for batch in batches:
        for target, code in batch:
            local.set(target, code)
        local.commit()
        assert local.digest() == vector_digest(local.codes)
        assert len(local.digest()) == DIGEST_BYTES


def test_the_digest_is_not_recomputed_per_version() -> None:
    local = LocalVector(epoch=1)
    for i in range(1, 201):
        local.set(f"198.18.0.{i}", UP)
    local.commit()
    before = local.digest()
    local.codes["198.18.0.1"] = DOWN  # behind commit()'s back: the kept sum does not see it
    assert local.digest() == before != vector_digest(local.codes)


def test_incremental_and_full_replies() -> None:
    local = LocalVector(epoch=1)
    peer = PeerVector()
    configured = {"192.0.2.1", "192.0.2.2", "192.0.2.3"}
    local.set("192.0.2.1", UP)
    local.set("192.0.2.2", UP)
    local.set("203.0.113.9", DOWN)  # not configured at the receiver
    assert local.commit()
    first = local.reply("a", PullRequest("b", NONCE, peer.epoch, peer.version, 0))
    assert first.full and first.version == 1
    assert peer.apply(first, configured) == {"192.0.2.1": UP, "192.0.2.2": UP}
    assert peer.codes == {"192.0.2.1": UP, "192.0.2.2": UP}
    local.set("192.0.2.2", DOWN)
    local.set("192.0.2.3", UP)
    local.set("192.0.2.3", 0)  # staged back: nothing to publish for it
    assert local.commit()
    second = local.reply("a", PullRequest("b", NONCE, peer.epoch, peer.version, 0))
    assert not second.full and second.entries == {"192.0.2.2": DOWN}
    assert peer.apply(second, configured) == {"192.0.2.2": DOWN}
    assert peer.current(notice(epoch=1, version=2, digest=local.digest()))
    # a stale reply (overtaken) changes nothing
    assert peer.apply(first, configured) == {}
    # a restart (new epoch): the peer gets everything again, removals included
    fresh = LocalVector(epoch=2)
    fresh.set("192.0.2.1", DOWN)
    fresh.commit()
    reply = fresh.reply("a", PullRequest("b", NONCE, peer.epoch, peer.version, 0))
    assert reply.full
    assert peer.apply(reply, configured) == {"192.0.2.1": DOWN, "192.0.2.2": 0}


def test_a_pull_from_beyond_the_log_gets_the_whole_vector() -> None:
    local = LocalVector(epoch=1, log_limit=4)
    for i in range(10):
        local.set(f"192.0.2.{i}", UP)
        local.commit()
    assert local.reply("a", PullRequest("b", NONCE, 1, 2, 0)).full
    assert not local.reply("a", PullRequest("b", NONCE, 1, 7, 0)).full


def test_an_incremental_reply_of_another_epoch_is_ignored() -> None:
    peer = PeerVector(epoch=1, version=3, codes={"192.0.2.1": UP})
    reply = StateReply("a", NONCE, 2, 4, b"x" * 8, False, {"192.0.2.1": DOWN})
    assert peer.apply(reply, {"192.0.2.1"}) == {}


def test_prune() -> None:
    peer = PeerVector(epoch=1, version=3, codes={"192.0.2.1": UP, "192.0.2.2": DOWN})
    assert peer.prune({"192.0.2.1"}) == {"192.0.2.2": 0}
    assert peer.codes == {"192.0.2.1": UP}


TARGETS = [f"192.0.2.{i}" for i in range(8)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("set"), st.sampled_from(TARGETS), st.sampled_from([0, UP, DOWN])),
            st.tuples(st.just("commit"), st.none(), st.none()),
            st.tuples(st.just("pull"), st.none(), st.none()),
            st.tuples(st.just("restart"), st.none(), st.none()),
        ),
        max_size=60,
    ),
    st.integers(min_value=1, max_value=8),
)
def test_a_pull_always_brings_the_committed_vector(
    ops: list[tuple[str, str | None, int | None]], log_limit: int
) -> None:
    """Whatever the order of changes, commits, pulls and restarts, a pull leaves the
    peer holding exactly the committed vector (over the configured targets)."""
    configured = set(TARGETS[:6])
    epoch = 1
    local = LocalVector(epoch, log_limit)
    peer = PeerVector()
    shadow: dict[str, int] = {}  # what the peer's votes are, from the changes reported
    for op, target, code in ops:
        if op == "set":
            assert target is not None and code is not None
            local.set(target, code)
        elif op == "commit":
            local.commit()
        elif op == "restart":
            epoch += 1
            local = LocalVector(epoch, log_limit)
        else:
            request = PullRequest("b", NONCE, peer.epoch, peer.version, 0)
            reply = StateReply.open(sealer(), local.reply("a", request).seal(sealer()))
            for t, c in peer.apply(reply, configured).items():
                if c == 0:
                    shadow.pop(t, None)
                else:
                    shadow[t] = c
            want = {t: c for t, c in local.codes.items() if t in configured}
            assert peer.codes == want
            assert shadow == want
            assert peer.current(notice(epoch=epoch, version=local.version, digest=local.digest()))


def test_reply_body_is_msgpack_of_seven() -> None:
    s = sealer(None)
    rep = StateReply("a", NONCE, 1, 1, b"x" * 8, True, {})
    assert len(msgpack.unpackb(rep.seal(s)[1:])) == 7


def test_the_log_never_keeps_part_of_a_version() -> None:
    """Found by the property above: with a log of one change, a version of two changes
    was cut in half, and a pull from the version before got only one of them (and took
    the reply as complete). Now that pull gets the whole vector."""
    local = LocalVector(1, log_limit=1)
    peer = PeerVector()
    local.set(TARGETS[0], UP)
    local.commit()

    def pull() -> None:
        request = PullRequest("b", NONCE, peer.epoch, peer.version, 0)
        peer.apply(StateReply.open(sealer(), local.reply("a", request).seal(sealer())), TARGETS)

    pull()
    local.set(TARGETS[1], UP)
    local.set(TARGETS[0], 0)
    local.commit()  # version 2: two changes, more than the log holds
    request = PullRequest("b", NONCE, peer.epoch, peer.version, 0)
    assert local.reply("a", request).full
    pull()
    assert peer.codes == {TARGETS[1]: UP} == local.codes
