"""Wire format of gossiped verdicts: round trips, every reject reason, Serf's size limit,
replay and clock-skew checks, and property tests that no input crashes the decoder."""

from __future__ import annotations

import contextlib
import pickle
from itertools import pairwise
from typing import get_args

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import example, given, settings
from hypothesis import strategies as st

from goavail.cluster.wire import (
    EVENT_BASE,
    MAX_NODE_NAME_BYTES,
    NONCE_BYTES,
    OVERRIDE_CODES,
    REJECT_REASONS,
    SERF_USER_EVENT_LIMIT,
    UINT64_MAX,
    USER_EVENT_BUDGET,
    VERSION_PLAINTEXT,
    VERSION_SEALED,
    Codec,
    OverrideMode,
    RejectReason,
    ReplayGuard,
    SeqCounter,
    Verdict,
    WireError,
    event_name,
    max_node_name_bytes,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NOW = 1_700_000_000.0
SEQ = 1_700_000_000_000_000  # what a SeqCounter seeded with the clock in microseconds yields


TARGET = "192.0.2.10"


def verdict(
    node: str = "agent-a",
    target: str = TARGET,
    *,
    up: bool = False,
    seq: int = SEQ,
    issued_at: float = NOW,
) -> Verdict:
    return Verdict(node=node, target=target, up=up, seq=seq, issued_at=issued_at)


def keyed(event: str = EVENT_BASE, key: bytes = KEY) -> Codec:
    return Codec(key, event)


def keyless(event: str = EVENT_BASE) -> Codec:
    return Codec(None, event)


def reason_of(codec: Codec, payload: bytes) -> str:
    with pytest.raises(WireError) as info:
        codec.open(payload)
    return info.value.reason


def seal_body(body: bytes, event: str = EVENT_BASE) -> bytes:
    """A correctly sealed message around an arbitrary body (to reach the inner decoder)."""
    nonce = bytes(NONCE_BYTES)
    return bytes((VERSION_SEALED,)) + nonce + AESGCM(KEY).encrypt(nonce, body, event.encode())


# --- event names, Verdict, WireError -------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster_name", "expected"),
    [(None, "goavail-verdict"), ("", "goavail-verdict"), ("prod", "prod-goavail-verdict")],
)
def test_event_name(cluster_name: str | None, expected: str) -> None:
    assert event_name(cluster_name) == expected


@pytest.mark.parametrize(
    ("given_target", "canonical"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"),
    ],
)
def test_verdict_target_is_canonical(given_target: str, canonical: str) -> None:
    assert verdict(target=given_target).target == canonical


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"node": ""}, ValueError),
        ({"node": "bad\udc80"}, ValueError),
        ({"target": "example.com"}, ValueError),
        ({"target": "fe80::1%eth0"}, ValueError),
        ({"seq": -1}, ValueError),
        ({"seq": UINT64_MAX + 1}, ValueError),
        ({"issued_at": float("nan")}, ValueError),
        ({"issued_at": float("inf")}, ValueError),
        ({"issued_at": -1.0}, ValueError),
        ({"issued_at": 2.0e16}, ValueError),
        ({"node": 5}, TypeError),
        ({"target": 3232235777}, TypeError),
        ({"up": 1}, TypeError),
        ({"seq": True}, TypeError),
        ({"seq": 1.0}, TypeError),
        ({"issued_at": "now"}, TypeError),
    ],
)
def test_verdict_rejects_bad_fields(fields: dict[str, object], error: type[Exception]) -> None:
    values: dict[str, object] = {
        "node": "a",
        "target": "192.0.2.1",
        "up": True,
        "seq": 1,
        "issued_at": NOW,
    }
    values.update(fields)
    with pytest.raises(error):
        Verdict(**values)  # type: ignore[arg-type]


def test_reject_reasons_match_the_type() -> None:
    assert get_args(RejectReason) == REJECT_REASONS
    assert len(set(REJECT_REASONS)) == 8


def test_wire_error() -> None:
    error = WireError("tag", "detail")
    assert isinstance(error, ValueError)
    assert error.reason == "tag"
    assert str(error) == "tag: detail"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, str(copy)) == ("tag", "tag: detail")
    with pytest.raises(ValueError, match="unknown reject reason"):
        WireError("nope")  # type: ignore[arg-type]


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["192.0.2.10", "203.0.113.255", "2001:db8::1", "::"])
@pytest.mark.parametrize("up", [True, False])
@pytest.mark.parametrize(
    "key", [bytes(16), bytes(24), KEY, None], ids=["k16", "k24", "k32", "plain"]
)
def test_round_trip(target: str, up: bool, key: bytes | None) -> None:
    codec = Codec(key, EVENT_BASE)
    sent = verdict(target=target, up=up, issued_at=NOW + 0.123)
    payload = codec.seal(sent)
    assert payload[0] == (VERSION_PLAINTEXT if key is None else VERSION_SEALED)
    assert codec.keyed is (key is not None)
    assert codec.open(payload) == sent


def test_issued_at_travels_in_milliseconds() -> None:
    codec = keyless()
    opened = codec.open(codec.seal(verdict(issued_at=NOW + 0.1234)))
    assert opened.issued_at == NOW + 0.123
    assert msgpack.unpackb(codec.seal(verdict())[1:]) == [
        "agent-a",
        bytes([192, 0, 2, 10]),
        False,
        SEQ,
        int(NOW * 1000),
    ]


def test_plaintext_is_not_bound_to_the_event_name() -> None:
    payload = keyless("prod-goavail-verdict").seal(verdict())
    assert keyless().open(payload) == verdict()


def test_accepts_bytes_like_payloads() -> None:
    codec = keyed()
    payload = codec.seal(verdict())
    assert codec.open(bytearray(payload)) == verdict()
    assert codec.open(memoryview(payload)) == verdict()


# --- every reject reason --------------------------------------------------------------------


def test_wrong_key_fails_the_tag() -> None:
    assert reason_of(keyed(key=OTHER_KEY), keyed().seal(verdict())) == "tag"
    assert reason_of(Codec(KEY[:16], EVENT_BASE), keyed().seal(verdict())) == "tag"


def test_other_event_name_fails_the_tag() -> None:
    payload = keyed(event_name("staging")).seal(verdict())
    assert reason_of(keyed(event_name("prod")), payload) == "tag"
    assert reason_of(keyed(), payload) == "tag"


@pytest.mark.parametrize("target", ["192.0.2.10", "2001:db8::1"])
def test_flipped_bit_anywhere_is_rejected(target: str) -> None:
    codec = keyed()
    payload = codec.seal(verdict(target=target))
    for index in range(len(payload)):
        for bit in range(8):
            mutated = bytearray(payload)
            mutated[index] ^= 1 << bit
            if index > 0:
                expected = "tag"
            elif mutated[0] == VERSION_PLAINTEXT:
                expected = "plaintext"
            else:
                expected = "version"
            assert reason_of(codec, bytes(mutated)) == expected, (index, bit)


def test_flipped_bits_in_plaintext_never_crash() -> None:
    codec = keyless()
    payload = codec.seal(verdict(target="2001:db8::1"))
    for index in range(len(payload)):
        for bit in range(8):
            mutated = bytearray(payload)
            mutated[index] ^= 1 << bit
            with contextlib.suppress(WireError):
                codec.open(bytes(mutated))  # a flip may well make another valid verdict


def test_truncated_sealed_at_every_length() -> None:
    codec = keyed()
    payload = codec.seal(verdict(node="a"))  # the shortest realistic sealed message
    shortest = 1 + NONCE_BYTES + 16 + 12
    for length in range(len(payload)):
        expected = "truncated" if length < shortest else "tag"
        assert reason_of(codec, payload[:length]) == expected, length


def test_truncated_plaintext_at_every_length() -> None:
    codec = keyless()
    payload = codec.seal(verdict(node="a"))
    for length in range(len(payload)):
        expected = "truncated" if length < 13 else "decode"
        assert reason_of(codec, payload[:length]) == expected, length


def test_shortest_possible_messages_open() -> None:
    smallest = Verdict("a", "0.0.0.0", False, 0, 0.0)
    for codec, size in ((keyed(), 1 + NONCE_BYTES + 16 + 12), (keyless(), 1 + 12)):
        payload = codec.seal(smallest)
        assert len(payload) == size
        assert codec.open(payload) == smallest


@pytest.mark.parametrize("version", [v for v in range(256) if v not in (1, 0x81)])
def test_unknown_version(version: int) -> None:
    payload = keyed().seal(verdict())
    assert reason_of(keyed(), bytes((version,)) + payload[1:]) == "version"
    assert reason_of(keyless(), bytes((version,))) == "version"


def test_plaintext_to_keyed_codec() -> None:
    assert reason_of(keyed(), keyless().seal(verdict())) == "plaintext"


def test_sealed_to_keyless_codec() -> None:
    assert reason_of(keyless(), keyed().seal(verdict())) == "sealed"


def test_not_bytes_is_decode() -> None:
    assert reason_of(keyed(), "hello") == "decode"  # type: ignore[arg-type]
    assert reason_of(keyed(), None) == "decode"  # type: ignore[arg-type]


GOOD_ROW: list[object] = ["agent-a", bytes(4), True, 1, 2]


def _row(index: int, value: object) -> list[object]:
    row = list(GOOD_ROW)
    row[index] = value
    return row


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb(GOOD_ROW[:4]),
        msgpack.packb([*GOOD_ROW, 0]),  # "auto" is sent as no sixth element
        msgpack.packb([*GOOD_ROW, 3]),
        msgpack.packb([*GOOD_ROW, True]),
        msgpack.packb([*GOOD_ROW, 1, 1]),
        msgpack.packb({"node": "agent-a"}),
        msgpack.packb("agent-a"),
        msgpack.packb(GOOD_ROW) + b"\x00",  # trailing bytes
        msgpack.packb(_row(0, "")),
        msgpack.packb(_row(0, b"agent-a")),  # bin, not str
        msgpack.packb(_row(0, 7)),
        b"\x95\xa2\xff\xfe" + msgpack.packb(GOOD_ROW)[9:],  # node not UTF-8
        msgpack.packb(_row(1, bytes(5))),
        msgpack.packb(_row(1, bytes(17))),
        msgpack.packb(_row(1, "192.0.2.1")),  # text, not packed
        msgpack.packb(_row(2, 1)),
        msgpack.packb(_row(2, None)),
        msgpack.packb(_row(3, -1)),
        msgpack.packb(_row(3, 1.0)),
        msgpack.packb(_row(3, True)),
        msgpack.packb(_row(4, -1)),
        msgpack.packb(_row(4, 1.5)),
        msgpack.packb(_row(4, msgpack.ExtType(1, b"x"))),
        msgpack.packb(_row(4, msgpack.Timestamp(1, 0))),
        b"\xc1" * 12,  # never-used msgpack byte
        b"\x91" * 5000,  # deep nesting
    ],
)
def test_bad_encoding_is_decode(body: bytes) -> None:
    # shorter than the shortest valid encoding (12 bytes): caught by the length check first
    expected = "decode" if len(body) >= 12 else "truncated"
    assert reason_of(keyed(), seal_body(body)) == expected
    assert reason_of(keyless(), bytes((VERSION_PLAINTEXT,)) + body) == expected


def test_good_row_decodes() -> None:
    """Guards the table above: it differs from a valid encoding only where it says."""
    opened = keyed().open(seal_body(msgpack.packb(GOOD_ROW)))
    assert opened == Verdict("agent-a", "0.0.0.0", True, 1, 0.002)


# --- keys, nonces ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 15, 17, 20, 31, 33, 64])
def test_key_length(length: int) -> None:
    key = (b"TOPSECRET" * 8)[:length]
    with pytest.raises(ValueError, match="16, 24 or 32 bytes") as info:
        Codec(key, EVENT_BASE)
    if length >= 4:
        assert key not in str(info.value).encode()
    assert "TOPSECRET" not in str(info.value)


def test_key_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        Codec("0123456789abcdef", EVENT_BASE)  # type: ignore[arg-type]


def test_codec_repr_hides_the_key() -> None:
    codec = Codec(b"TOPSECRET-16byte", EVENT_BASE)
    assert "TOPSECRET" not in repr(codec)


@pytest.mark.parametrize("event", ["", "x" * 500])
def test_unusable_event_name(event: str) -> None:
    with pytest.raises(ValueError, match="event name"):
        Codec(KEY, event)


def test_nonces_are_unique_and_random() -> None:
    codec = keyed()
    payloads = [codec.seal(verdict()) for _ in range(2000)]
    nonces = {p[1 : 1 + NONCE_BYTES] for p in payloads}
    assert len(nonces) == len(payloads)
    assert len(set(payloads)) == len(payloads)
    assert all(codec.open(p) == verdict() for p in payloads[:10])


def test_given_nonce_is_deterministic() -> None:
    codec = keyed()
    nonce = bytes(range(NONCE_BYTES))
    first = codec.seal(verdict(), nonce=nonce)
    assert first == codec.seal(verdict(), nonce=nonce)
    assert first[1 : 1 + NONCE_BYTES] == nonce
    assert codec.open(first) == verdict()


def test_bad_nonce() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        keyed().seal(verdict(), nonce=bytes(8))
    with pytest.raises(ValueError, match="keyed codec"):
        keyless().seal(verdict(), nonce=bytes(12))


# --- Serf's size limit ----------------------------------------------------------------------


def test_limit_constants() -> None:
    assert SERF_USER_EVENT_LIMIT == 512
    assert USER_EVENT_BUDGET == 472
    assert MAX_NODE_NAME_BYTES == 386  # 387 before verdicts carried an override
    assert max_node_name_bytes(EVENT_BASE) == MAX_NODE_NAME_BYTES
    assert keyed().max_node_name_bytes == MAX_NODE_NAME_BYTES


def _worst_case(node: str) -> Verdict:
    return Verdict(node, "2001:db8::ffff", True, UINT64_MAX, 4_102_444_800.0, "down")


@pytest.mark.parametrize("codec", [keyed(), keyless()], ids=["sealed", "plain"])
def test_longest_node_name_fits(codec: Codec) -> None:
    payload = codec.seal(_worst_case("n" * MAX_NODE_NAME_BYTES))
    assert len(EVENT_BASE) + len(payload) <= USER_EVENT_BUDGET < SERF_USER_EVENT_LIMIT
    assert codec.open(payload).node == "n" * MAX_NODE_NAME_BYTES


def test_sealed_longest_node_name_uses_the_whole_budget() -> None:
    payload = keyed().seal(_worst_case("n" * MAX_NODE_NAME_BYTES))
    assert len(EVENT_BASE) + len(payload) == USER_EVENT_BUDGET


@pytest.mark.parametrize("codec", [keyed(), keyless()], ids=["sealed", "plain"])
@pytest.mark.parametrize("node", ["n" * (MAX_NODE_NAME_BYTES + 1), "é" * 194])
def test_one_byte_more_raises(codec: Codec, node: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        codec.seal(verdict(node=node, seq=1))  # regardless of how small the rest is


def test_node_name_limit_counts_utf8_bytes() -> None:
    node = "é" * (MAX_NODE_NAME_BYTES // 2)  # 386 bytes
    assert keyed().open(keyed().seal(_worst_case(node))).node == node


def test_cluster_name_shortens_the_limit() -> None:
    event = event_name("production")
    assert max_node_name_bytes(event) == MAX_NODE_NAME_BYTES - len("production-")
    codec = keyed(event)
    codec.seal(_worst_case("n" * codec.max_node_name_bytes))
    with pytest.raises(ValueError, match="too long"):
        codec.seal(_worst_case("n" * (codec.max_node_name_bytes + 1)))


def test_max_node_name_fits_for_every_event_length() -> None:
    for event_length in range(1, 440):
        event = "e" * event_length
        longest = max_node_name_bytes(event)
        if longest == 0:
            with pytest.raises(ValueError, match="event name"):
                Codec(KEY, event)
            continue
        payload = Codec(KEY, event).seal(_worst_case("n" * longest))
        assert event_length + len(payload) <= USER_EVENT_BUDGET, event_length
        # one byte more would not have fitted in the worst case
        body = msgpack.packb(["n" * (longest + 1), bytes(16), True, UINT64_MAX, UINT64_MAX, 2])
        assert event_length + 1 + NONCE_BYTES + len(body) + 16 > USER_EVENT_BUDGET, event_length


# --- ReplayGuard ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "incoming", "expected"),
    [
        ([], ("a", 5), None),
        ([("a", 5)], ("a", 6), None),
        ([("a", 5)], ("a", 1_000_000), None),
        ([("a", 5)], ("a", 5), "replay"),
        ([("a", 5)], ("a", 4), "replay"),
        ([("a", 5)], ("a", 0), "replay"),
        ([("a", 5)], ("b", 1), None),
        ([("a", 5), ("b", 9)], ("b", 9), "replay"),
        ([("a", 5), ("b", 9)], ("a", 6), None),
        ([], ("a", 0), None),
    ],
)
def test_replay_table(
    history: list[tuple[str, int]], incoming: tuple[str, int], expected: str | None
) -> None:
    guard = ReplayGuard(30.0)
    for node, seq in history:
        guard.check(verdict(node=node, seq=seq), NOW)
    node, seq = incoming
    if expected is None:
        guard.check(verdict(node=node, seq=seq), NOW)
        assert guard.last_seq(node, TARGET) == seq
    else:
        before = guard.last_seq(node, TARGET)
        with pytest.raises(WireError) as info:
            guard.check(verdict(node=node, seq=seq), NOW)
        assert info.value.reason == expected
        assert guard.last_seq(node, TARGET) == before


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (0.0, None),
        (29.999, None),
        (-29.999, None),
        (30.0, None),  # boundary is allowed
        (-30.0, None),
        (30.001, "skew"),  # issued in the future
        (-30.001, "skew"),  # issued in the past
        (3600.0, "skew"),
        (-3600.0, "skew"),
    ],
)
def test_skew_table(offset: float, expected: str | None) -> None:
    guard = ReplayGuard(30.0)
    incoming = verdict(issued_at=NOW + offset)
    if expected is None:
        guard.check(incoming, NOW)
        assert guard.last_seq("agent-a", TARGET) == SEQ
    else:
        with pytest.raises(WireError) as info:
            guard.check(incoming, NOW)
        assert info.value.reason == expected
        assert guard.last_seq("agent-a", TARGET) is None  # a rejected verdict is not recorded


def test_replay_is_per_target_so_late_events_of_other_targets_count() -> None:
    guard = ReplayGuard(30.0)
    # Serf delivered a's verdict for .11 (seq 8) before its older one for .10 (seq 7)
    guard.check(verdict(node="a", target="192.0.2.11", seq=8), NOW)
    guard.check(verdict(node="a", target=TARGET, seq=7), NOW)
    # but a captured verdict replayed for the same target is refused
    with pytest.raises(WireError, match="replay"):
        guard.check(verdict(node="a", target=TARGET, seq=7), NOW)
    with pytest.raises(WireError, match="replay"):
        guard.check(verdict(node="a", target="192.0.2.11", seq=5), NOW)


def test_skew_is_checked_before_replay() -> None:
    guard = ReplayGuard(30.0)
    guard.check(verdict(seq=10), NOW)
    with pytest.raises(WireError) as info:
        guard.check(verdict(seq=10, issued_at=NOW - 100), NOW)
    assert info.value.reason == "skew"
    guard.check(verdict(seq=11), NOW)  # the skewed one did not consume seq 11


def test_zero_skew_and_nan_now() -> None:
    guard = ReplayGuard(0.0)
    guard.check(verdict(seq=1), NOW)
    with pytest.raises(WireError, match="skew"):
        guard.check(verdict(seq=2), float("nan"))


def test_forget() -> None:
    guard = ReplayGuard(30.0)
    guard.check(verdict(node="a", seq=100), NOW)
    guard.check(verdict(node="b", seq=100), NOW)
    guard.check(verdict(node="a", target="192.0.2.11", seq=101), NOW)
    guard.forget("a")
    guard.forget("never-seen")
    assert guard.last_seq("a", TARGET) is None
    assert guard.last_seq("a", "192.0.2.11") is None
    guard.check(verdict(node="a", seq=1), NOW)  # a restarted peer with a lower seq is accepted
    with pytest.raises(WireError, match="replay"):
        guard.check(verdict(node="b", seq=1), NOW)


def test_retire_keeps_a_floor_for_the_skew_window() -> None:
    guard = ReplayGuard(30.0)
    other = "192.0.2.11"
    guard.check(verdict(node="a", seq=100), NOW)
    guard.check(verdict(node="a", target=other, seq=105), NOW)
    guard.check(verdict(node="b", seq=7), NOW)
    assert len(guard) == 3
    guard.retire("a", NOW + 1)
    guard.retire("never-seen", NOW + 1)  # nothing recorded: no floor
    assert len(guard) == 1 and guard.floors == 1
    assert guard.last_seq("a", TARGET) is None
    # the floor is a's highest seq over all targets: every older verdict is refused
    for target, seq in ((TARGET, 100), (TARGET, 101), (other, 105), ("192.0.2.99", 50)):
        with pytest.raises(WireError, match="replay"):
            guard.check(verdict(node="a", target=target, seq=seq), NOW + 2)
    guard.check(verdict(node="a", seq=106, issued_at=NOW + 2), NOW + 2)  # a re-joined a
    assert guard.floor_lifetime == 60.0  # twice the skew: a sender may run 30 s ahead
    guard.prune(NOW + 61)
    assert guard.floors == 1  # expires at NOW + 1 + 60
    guard.prune(NOW + 61.5)
    assert guard.floors == 0 and len(guard) == 2


def test_an_expired_floor_is_dropped_on_check() -> None:
    guard = ReplayGuard(30.0)
    guard.check(verdict(node="a", seq=100), NOW)
    guard.retire("a", NOW)
    with pytest.raises(WireError, match="replay"):  # issued 30 s ahead of our clock
        guard.check(verdict(node="a", seq=99, issued_at=NOW + 30), NOW + 60)
    late = NOW + 61
    guard.check(verdict(node="a", seq=1, issued_at=late), late)  # clock stepped back: ok now
    assert guard.floors == 0 and guard.last_seq("a", TARGET) == 1


def test_forget_target_keeps_per_target_floors() -> None:
    guard = ReplayGuard(30.0)
    other = "192.0.2.11"
    guard.check(verdict(node="a", seq=100), NOW)
    guard.check(verdict(node="b", seq=200), NOW)
    guard.check(verdict(node="a", target=other, seq=101), NOW)
    guard.forget_target(TARGET, NOW)
    assert len(guard) == 1 and guard.floors == 2
    assert guard.last_seq("a", other) == 101
    with pytest.raises(WireError, match="replay"):
        guard.check(verdict(node="b", seq=200), NOW)
    guard.check(verdict(node="a", target=other, seq=102), NOW)  # other targets unaffected
    guard.check(verdict(node="a", seq=101), NOW)  # above a's floor for TARGET
    guard.retire("a", NOW)  # a's target floor folds into its node floor
    assert guard.floors == 2
    guard.forget("b")
    assert guard.floors == 1 and len(guard) == 0


@pytest.mark.parametrize("skew", [-1.0, float("nan"), float("inf")])
def test_guard_rejects_bad_skew(skew: float) -> None:
    with pytest.raises(ValueError, match="max_clock_skew"):
        ReplayGuard(skew)


def test_captured_message_replayed_end_to_end() -> None:
    codec, guard = keyed(), ReplayGuard(30.0)
    payload = codec.seal(verdict(seq=SEQ))
    guard.check(codec.open(payload), NOW + 1)
    with pytest.raises(WireError, match="replay"):
        guard.check(codec.open(payload), NOW + 2)


# --- SeqCounter -----------------------------------------------------------------------------


def test_seq_counter() -> None:
    counter = SeqCounter(SEQ)
    seqs = [counter.next() for _ in range(1000)]
    assert seqs[0] == SEQ
    assert all(b > a for a, b in pairwise(seqs))


def test_seq_counter_restart_stays_newer() -> None:
    before = SeqCounter(SEQ)
    last = [before.next() for _ in range(500)][-1]
    after = SeqCounter(SEQ + 1_000_000)  # restarted one second later (microseconds)
    guard = ReplayGuard(30.0)
    guard.check(verdict(seq=last), NOW)
    guard.check(verdict(seq=after.next()), NOW)


def test_seq_counter_limits() -> None:
    counter = SeqCounter(UINT64_MAX)
    assert counter.next() == UINT64_MAX
    with pytest.raises(OverflowError):
        counter.next()
    with pytest.raises(ValueError, match="outside"):
        SeqCounter(-1)
    with pytest.raises(ValueError, match="outside"):
        SeqCounter(UINT64_MAX + 1)
    with pytest.raises(TypeError):
        SeqCounter(True)


# --- property tests -------------------------------------------------------------------------

CODECS = {"sealed": keyed(), "plain": keyless()}

verdicts = st.builds(
    Verdict,
    node=st.text(min_size=1, max_size=60)
    | st.text(alphabet="ab-é€𝄞", min_size=1, max_size=MAX_NODE_NAME_BYTES // 4),
    target=st.ip_addresses().map(str),
    up=st.booleans(),
    seq=st.integers(min_value=0, max_value=UINT64_MAX),
    issued_at=st.integers(min_value=0, max_value=4_102_444_800_000).map(lambda ms: ms / 1000),
)


def _open_or_reject(codec: Codec, payload: bytes) -> Verdict | None:
    """Only WireError may come out; anything else fails the test by propagating."""
    try:
        return codec.open(payload)
    except WireError as error:
        reason = error.reason
    assert reason in REJECT_REASONS
    return None


@pytest.mark.parametrize("mode", CODECS)
@settings(max_examples=400)
@given(payload=st.binary(max_size=600))
@example(payload=b"")
@example(payload=b"\x81\x95\xa1a\xc4\x04\x00\x00\x00\x00\xc3\x01\x01")
@example(payload=b"\x81" + b"\x91" * 600)
@example(payload=b"\x81\xdf\xff\xff\xff\xff")
def test_random_bytes_never_crash(mode: str, payload: bytes) -> None:
    _open_or_reject(CODECS[mode], payload)


@pytest.mark.parametrize("mode", CODECS)
@settings(max_examples=200)
@given(
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=UINT64_MAX)
        | st.floats()
        | st.text(max_size=20)
        | st.binary(max_size=20),
        lambda inner: st.lists(inner, max_size=6),
        max_leaves=12,
    )
)
def test_random_msgpack_bodies_never_crash(mode: str, body: object) -> None:
    """Well-formed msgpack of the wrong shape reaches the strict type checks (also sealed)."""
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    payload = seal_body(packed) if mode == "sealed" else bytes((VERSION_PLAINTEXT,)) + packed
    _open_or_reject(CODECS[mode], payload)


@st.composite
def mutated(draw: st.DrawFn, codec: Codec) -> tuple[bytes, bytes]:
    original = codec.seal(draw(verdicts))
    payload = bytearray(original)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "extend", "version", "replace"]))
        if kind == "flip" and payload:
            index = draw(st.integers(min_value=0, max_value=len(payload) - 1))
            payload[index] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "truncate":
            del payload[draw(st.integers(min_value=0, max_value=len(payload))) :]
        elif kind == "extend":
            payload += draw(st.binary(min_size=1, max_size=40))
        elif kind == "version" and payload:
            payload[0] = draw(st.integers(min_value=0, max_value=255))
        elif kind == "replace" and payload:
            start = draw(st.integers(min_value=0, max_value=len(payload) - 1))
            chunk = draw(st.binary(min_size=1, max_size=8))
            payload[start : start + len(chunk)] = chunk
    return original, bytes(payload)


@pytest.mark.parametrize("mode", CODECS)
@settings(max_examples=400)
@given(data=st.data())
def test_mutated_payloads_never_crash(mode: str, data: st.DataObject) -> None:
    codec = CODECS[mode]
    original, payload = data.draw(mutated(codec))
    opened = _open_or_reject(codec, payload)
    if codec.keyed and payload != original:
        assert opened is None  # any change to a sealed message is caught


@pytest.mark.parametrize("mode", CODECS)
@given(sent=verdicts)
def test_random_verdicts_round_trip(mode: str, sent: Verdict) -> None:
    codec = CODECS[mode]
    payload = codec.seal(sent)
    assert len(codec.event) + len(payload) <= USER_EVENT_BUDGET
    assert codec.open(payload) == sent


@given(sent=verdicts, other=st.text(min_size=1, max_size=30))
def test_sealed_under_another_event_never_opens(sent: Verdict, other: str) -> None:
    if other == EVENT_BASE:
        return
    assert reason_of(keyed(other), keyed().seal(sent)) == "tag"


# --- overrides ride along with verdicts ------------------------------------------------------


@pytest.mark.parametrize("override", ["up", "down", "auto"])
@pytest.mark.parametrize("codec", [keyed(), keyless()], ids=["sealed", "plain"])
def test_override_round_trip(codec: Codec, override: OverrideMode) -> None:
    sent = Verdict("agent-a", "192.0.2.1", True, 7, 1_700_000_000.0, override)
    assert codec.open(codec.seal(sent)) == sent


def test_a_verdict_without_override_is_the_old_five_element_encoding() -> None:
    # Earlier releases decode exactly five elements: they keep accepting our verdicts
    # as long as no override is held.
    codec = keyless()
    body = codec.seal(Verdict("agent-a", "192.0.2.1", False, 7, 1.5))[1:]
    assert msgpack.unpackb(body) == ["agent-a", bytes([192, 0, 2, 1]), False, 7, 1500]
    with_override = codec.seal(Verdict("agent-a", "192.0.2.1", False, 7, 1.5, "down"))[1:]
    assert msgpack.unpackb(with_override) == [
        "agent-a",
        bytes([192, 0, 2, 1]),
        False,
        7,
        1500,
        OVERRIDE_CODES["down"],
    ]


def test_old_five_element_verdicts_open_as_auto() -> None:
    payload = bytes((VERSION_PLAINTEXT,)) + msgpack.packb(GOOD_ROW)
    assert keyless().open(payload).override == "auto"


def test_unknown_override_is_refused_by_the_constructor() -> None:
    with pytest.raises(ValueError, match="override"):
        Verdict("a", "192.0.2.1", True, 1, 1.0, "drain")  # type: ignore[arg-type]
