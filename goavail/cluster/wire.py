"""What every gossip message shares: limits, key sizes, the reject reasons, the event names.

The messages themselves (notices, pull requests, state replies) are in
:mod:`goavail.cluster.sync`. Version 1 of the wire (one Serf user event per
verdict, ``0x01 ‖ nonce ‖ AES-GCM(verdict)``, event ``goavail-verdict``) is no
longer sent; an agent that receives one counts it as ``legacy`` (see
:mod:`goavail.cluster.service`).

Sources:

- NIST SP 800-38D (GCM), section 8.2.2: a 96-bit nonce from a random bit generator; section
  8.3: with random nonces, one key must not seal more than 2**32 messages.
- hashicorp/serf ``serf/serf.go`` (``UserEvent``, ``UserEventSizeLimit``), ``serf/config.go``
  (``UserEventSizeLimit: 512`` default) and ``serf/messages.go`` (``messageUserEvent``,
  ``encodeMessage``): see :data:`SERF_USER_EVENT_LIMIT` and :data:`SERF_USER_EVENT_OVERHEAD`.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from goavail.errors import GoavailError

__all__ = [
    "EVENT_BASE",
    "KEY_SIZES",
    "NONCE_BYTES",
    "REJECT_REASONS",
    "SERF_USER_EVENT_LIMIT",
    "SERF_USER_EVENT_OVERHEAD",
    "TAG_BYTES",
    "UINT64_MAX",
    "USER_EVENT_BUDGET",
    "RejectReason",
    "WireError",
    "event_name",
]

EVENT_BASE: Final = "goavail-verdict"
"""Serf user-event name of version-1 verdicts (earlier releases) when no ``cluster_name``
is configured; recognised only to count and report them."""

SERF_USER_EVENT_LIMIT: Final = 512
"""Serf's cap on one user event, in bytes (hashicorp/serf ``serf/serf.go``, ``UserEvent``;
the agent's default ``Config.UserEventSizeLimit`` in ``serf/config.go``).

Serf checks it twice: ``len(name) + len(payload)`` before encoding, and then the *encoded*
gossip message (type byte + msgpack of ``messageUserEvent{LTime, Name, Payload, CC}``) after
encoding. The second check is the binding one, see :data:`SERF_USER_EVENT_OVERHEAD`.
"""

SERF_USER_EVENT_OVERHEAD: Final = 40
"""Worst-case bytes Serf adds around name and payload when it encodes a user event.

1 message-type byte + 1 fixmap header + the four field names as fixstr keys ("LTime" 6,
"Name" 5, "Payload" 8, "CC" 3 = 22) + LTime as uint64 (up to 9) + name header (up to 3) +
payload header (up to 3, go-msgpack's raw16) + CC bool (1) = 40. Checked against the installed
serf agent (Debian 0.9.4): with a 15-byte event name a 467-byte payload is accepted and a
468-byte one is refused with "encoded user event exceeds configured limit of 512 bytes after
encoding" (30 bytes of overhead at a small LTime; 40 allows LTime to grow to 64 bits and the
event name to 255 bytes).
"""

USER_EVENT_BUDGET: Final = SERF_USER_EVENT_LIMIT - SERF_USER_EVENT_OVERHEAD
"""Bytes available to event name + payload together (472): every notice fits in it."""

NONCE_BYTES: Final = 12
"""GCM nonce length: 96 bits, the length NIST SP 800-38D section 8.2 recommends."""

TAG_BYTES: Final = 16
"""GCM authentication tag length (128 bits, the ``cryptography`` AESGCM default)."""

KEY_SIZES: Final = (16, 24, 32)
"""Allowed ``crypto_key`` lengths in bytes (AES-128, AES-192, AES-256)."""

UINT64_MAX: Final = 2**64 - 1
"""Largest unsigned integer the wire carries (epochs, versions, milliseconds)."""

RejectReason = Literal[
    "truncated", "version", "plaintext", "sealed", "tag", "decode", "replay", "skew"
]
"""Why a received message was rejected; the label the agent counts rejections under."""

REJECT_REASONS: Final[tuple[RejectReason, ...]] = get_args(RejectReason)
"""Every :class:`WireError` reason, in order of the checks:

- ``truncated``: shorter than the shortest valid message (empty included).
- ``version``: the first byte is not a known version.
- ``plaintext``: a plaintext message reached an agent that has a key (never accepted: no
  downgrade).
- ``sealed``: a sealed message reached an agent without a key (it cannot be checked).
- ``tag``: GCM tag check failed: wrong key, forged or altered bytes, or sealed for another
  kind of message or another cluster.
- ``decode``: the (authentic or plaintext) body is not well formed.
- ``replay``: a notice older than what the receiver holds of its sender.
- ``skew``: the issue time is further than ``max_clock_skew`` from the receiver's clock.
"""


class WireError(GoavailError, ValueError):
    """A received message was rejected; ``reason`` is one of :data:`REJECT_REASONS`.

    ``str(error)`` is ``"<reason>: <detail>"``; the detail never contains key material.

    Raises:
        ValueError: (when built) an unknown reason.
    """

    reason: RejectReason

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self._detail = detail

    def __reduce__(self) -> tuple[type[WireError], tuple[RejectReason, str]]:
        return (type(self), (self.reason, self._detail))


def event_name(cluster_name: str | None) -> str:
    """Serf user-event name of version-1 verdicts: ``goavail-verdict``, or
    ``<cluster_name>-goavail-verdict``. ``None`` and ``""`` mean no cluster name."""
    return f"{cluster_name}-{EVENT_BASE}" if cluster_name else EVENT_BASE
