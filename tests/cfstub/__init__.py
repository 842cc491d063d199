"""A stateful stand-in for the Cloudflare API v4, for tests (see :mod:`tests.cfstub.server`)."""

from tests.cfstub.server import (
    BASE_PATH,
    DEFAULT_TOKEN,
    CFError,
    CloudflareStub,
    RequestLogEntry,
    StubState,
    build_app,
)

__all__ = [
    "BASE_PATH",
    "DEFAULT_TOKEN",
    "CFError",
    "CloudflareStub",
    "RequestLogEntry",
    "StubState",
    "build_app",
]
