"""``goavail proxy``: the settings (file + flags), and running the proxy until SIGTERM.

The flags set ``[Proxy]`` keys and win over the file's; the merged section is validated
like the file (every problem with its key path, and the flag it came from), then
checked against the file's ``[[checks]]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from goavail import __version__
from goavail.config import Config, ConfigError, ProxySection, proxy_problems
from goavail.config.checks import CheckSection
from goavail.config.load import _format_errors, _key_path
from goavail.proxy.service import Proxy
from goavail.web.snapshot import ProxySnapshot

log = logging.getLogger("goavail.proxy")

FLAGS: dict[str, str] = {
    "port": "--port",
    "listen": "--bind",
    "hosts": "--hosts",
    "check": "--check",
    "on_failover": "--on-failover",
    "max_backoff": "--max-backoff",
    "drain": "--drain",
    "max_connections": "--max-connections",
    "relay": "--relay",
}
"""``[Proxy]`` key -> the ``goavail proxy`` flag that sets it."""


def settings_from(
    config: Config | None, flags: Mapping[str, Any], *, base_dir: Path
) -> tuple[ProxySection, list[CheckSection]]:
    """The proxy's settings: the file's ``[Proxy]`` with ``flags`` over it, and the
    ``[[checks]]`` entries its ``checks`` name, in that order.

    Args:
        config: the validated file, or None (flags only).
        flags: ``[Proxy]`` key -> value, for the flags given (None values are skipped).
        base_dir: what a relative ``--check``/``--on-failover`` path is relative to
            (the current directory for flags).

    Raises:
        ConfigError: every problem, ``"Proxy.<key>: ..."``, with ``(from --flag)`` when a
            flag set the key; ``"Proxy: section missing ..."`` without file section and
            without ``--hosts``.
    """
    source = config.source if config is not None else None
    given = {key: value for key, value in flags.items() if value is not None}
    section = config.proxy if config is not None else None
    if section is None and "hosts" not in given:
        where = f"{source} has no [Proxy] section" if source else "no configuration file"
        raise ConfigError([f"Proxy: section missing ({where}): give -H/--hosts"], source)
    data: dict[str, Any] = {}
    if section is not None:
        data = {key: getattr(section, key) for key in section.model_fields_set}
        if "port" in given or "listen" in given:  # a flag's listener replaces the file's
            data.pop("port", None)
            data.pop("listen", None)
    data.update(given)
    try:
        merged = ProxySection.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = [_from_flag(line, given) for line in _format_errors(exc)]
        raise ConfigError([f"Proxy.{line}" for line in problems], source) from None
    checks = list(config.checks) if config is not None else []
    found = proxy_problems(merged, checks)
    if found:
        lines = [f"{_key_path(('Proxy', *loc))}: {message}" for loc, message in found]
        raise ConfigError([_from_flag(line, given) for line in lines], source)
    by_id = {check.id: check for check in checks}
    return merged, [by_id[i] for i in merged.checks or ()]


def _from_flag(line: str, given: Mapping[str, Any]) -> str:
    key = line.removeprefix("Proxy.").split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
    if key in given and key in FLAGS:
        head, sep, rest = line.partition(":")
        return f"{head} (from {FLAGS[key]}){sep}{rest}"
    return line


class _Source:
    """:class:`~goavail.web.ports.ProxySource` over the running proxies."""

    def __init__(self, proxies: list[Proxy]) -> None:
        self.proxies = proxies
        self.started_at = time.time()

    def proxy_snapshot(self) -> ProxySnapshot:
        return ProxySnapshot(
            wall=time.time(),
            version=__version__,
            started_at=self.started_at,
            proxies=tuple(p.view() for p in self.proxies),
        )


async def run(
    settings: ProxySection,
    checks: list[CheckSection],
    status: tuple[str, int] | None,
    *,
    status_setting: str = "--status-listen",
) -> int:
    """Run the proxy (and its status server when ``status`` is given) until SIGTERM or
    SIGINT; returns the exit code (0 after a signal, 1 when it cannot start)."""
    from goavail.errors import SetupError

    proxy = Proxy(settings, checks)
    try:
        await proxy.start()
    except (SetupError, OSError) as exc:
        log.error("%s", exc)
        return 1
    server = None
    if status is not None:
        from goavail.web.proxy import ProxyWebServer, bind_problem

        server = ProxyWebServer(status[0], status[1], _Source([proxy]))
        try:
            await server.start()
        except OSError as exc:
            log.error("%s", bind_problem(exc, status_setting))
            await proxy.close()
            return 1
    host, _ = settings.listen_address()
    log.info(
        "proxy on %s:%d to %s (relay: %s%s)",
        host,
        proxy.port,
        ", ".join(settings.hosts),
        proxy.mode,
        f"; checks {', '.join(c.id for c in checks)}" if checks else "",
    )
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = loop.create_task(proxy.run())
    try:
        waiter = loop.create_task(stopping.wait())
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if runner in done:
            runner.result()  # a crash of the proxy's tasks: raise it
        log.info("proxy: stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await proxy.close()
        if server is not None:
            await server.stop()
    return 0


__all__ = ["FLAGS", "run", "settings_from"]
