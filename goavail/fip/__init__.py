"""Floating IPs (flipper's job): re-target Hetzner Cloud floating IPs to healthy servers.

* :mod:`goavail.fip.plan` — the pure, deterministic planner (flipper's rules);
* :mod:`goavail.fip.hetzner` — the official ``hcloud`` SDK edge (every call in a
  worker thread);
* :mod:`goavail.fip.reconcile` — one reconciler per ``[[floating_ips]]`` group: polls the
  inventory, keeps the servers' addresses probed, plans from the decisions, applies
  (or, in dry-run, only records) the moves;
* :mod:`goavail.fip.runtime` — the groups of a run, their checks, the agent's hooks.
"""
