"""Run the Cloudflare API stand-in as a process: ``python -m tests.cfstub --port N``.

Prints one line, the base URL (``http://127.0.0.1:N/client/v4``), once it
listens, then serves until SIGTERM or SIGINT. Faults and zones are controlled
over HTTP: ``POST /__stub__/faults``, ``POST /__stub__/zones``,
``POST /__stub__/reset``, ``GET /__stub__/state`` (see :mod:`tests.cfstub.server`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from tests.cfstub.server import BASE_PATH, DEFAULT_TOKEN, StubState, build_app


async def _serve(state: StubState, port: int) -> None:
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    bound = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{bound}{BASE_PATH}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, seed zones, serve until signalled; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.cfstub", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="accepted API token")
    parser.add_argument("--api-key", default=None, help="accepted X-Auth-Key")
    parser.add_argument("--api-email", default=None, help="accepted X-Auth-Email")
    parser.add_argument("--zone", action="append", default=[], help="zone to create (repeatable)")
    parser.add_argument(
        "--legacy-exists-code", action="store_true", help="answer duplicates with 81057"
    )
    args = parser.parse_args(argv)
    state = StubState(
        token=args.token,
        api_key=args.api_key,
        api_email=args.api_email,
        legacy_exists_code=args.legacy_exists_code,
    )
    for zone in args.zone:
        state.add_zone(zone)
    asyncio.run(_serve(state, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
