"""The served-answer verifiers of a run, their tasks, and what a reload changes.

Kept apart from :mod:`goavail.dns.verifier` (dnspython's query code) so that the agent
imports no DNS library unless a section turns ``verify`` on (``tests/unit/test_imports.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from goavail.dns.propagation import KeyState, PropagationView
from goavail.dns.reconcile import PassOutcome

if TYPE_CHECKING:
    from goavail.config import DnsSection
    from goavail.dns.providers.base import Provider
    from goavail.dns.verifier import Verifier


VerifierFactory = Callable[[str, "DnsSection", "Provider"], "Verifier"]
"""``(provider name, section, provider) -> its verifier`` (built in :mod:`goavail.compose`)."""


class VerifierSet:
    """The verifiers of a run (one per provider whose section turns ``verify`` on),
    their tasks, and what a reload changes.

    Args:
        build: ``(provider name, section, provider) -> Verifier`` for a section whose
            :meth:`~goavail.config.DnsSection.verification` is not None.
        dry_run: no verification at all (nothing is written, so nothing is served).
    """

    def __init__(self, build: VerifierFactory, *, dry_run: bool) -> None:
        self._build = build
        self.dry_run = dry_run
        self.verifiers: dict[str, Verifier] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False

    def reconfigure(
        self,
        sections: Mapping[str, DnsSection],
        providers: Mapping[str, Provider],
        resync_interval: float,
    ) -> None:
        """Follow a (re)loaded configuration: a verifier whose settings are unchanged is
        kept (its provider and resync interval updated), a changed one is replaced
        (its state starts over), one no longer configured is stopped."""
        wanted = {
            name: section
            for name, section in sections.items()
            if not self.dry_run and section.verification() is not None and name in providers
        }
        for name in list(self.verifiers):
            old = self.verifiers[name]
            section = wanted.get(name)
            if section is not None and section.verification() == old.settings:
                old.provider, old.zone = providers[name], section.domain
                old.resync_interval = resync_interval
                continue
            del self.verifiers[name]
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()
        for name, section in wanted.items():
            if name not in self.verifiers:
                verifier = self._build(name, section, providers[name])
                verifier.resync_interval = resync_interval
                self.verifiers[name] = verifier
                if self._running:
                    self._start(name)

    def offer(self, provider: str, outcome: PassOutcome) -> None:
        """A reconcile pass of ``provider`` (its ``on_pass``); ignored when it has no
        verifier. Returns at once."""
        verifier = self.verifiers.get(provider)
        if verifier is not None:
            verifier.offer(outcome)

    def _start(self, name: str) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self.verifiers[name].run(), name=f"verify-{name}"
        )

    async def run(self) -> None:
        """Run every verifier until cancelled (then stop them all)."""
        self._running = True
        for name in self.verifiers:
            if name not in self._tasks:
                self._start(name)
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def __bool__(self) -> bool:
        """True when some provider verifies."""
        return bool(self.verifiers)

    def views(self) -> tuple[PropagationView, ...]:
        """Every verifier's view, in the run's order."""
        return tuple(v.view() for v in self.verifiers.values())

    def answer(self, name: str) -> dict[str, list[KeyState]]:
        """Provider -> the planned vs. served answer of ``name`` (see :meth:`Verifier.answer`)."""
        return {p: v.answer(name) for p, v in self.verifiers.items() if v.answer(name)}


__all__ = ["VerifierFactory", "VerifierSet"]
