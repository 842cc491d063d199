"""DNS providers. See :mod:`goavail.dns.providers.base` for the contract."""

from goavail.dns.providers.base import (
    Outcome,
    Provider,
    ProviderError,
    RecordExists,
    RecordMissing,
)

__all__ = ["Outcome", "Provider", "ProviderError", "RecordExists", "RecordMissing"]
