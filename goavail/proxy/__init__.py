"""The failover TCP proxy (``goavail proxy``; flopsy's semantics, goavail's checks).

* :mod:`goavail.proxy.select` chooses the primary and the backoff between rounds — pure;
* :mod:`goavail.proxy.relay` moves the bytes (``splice(2)``, or a portable copy loop);
* :mod:`goavail.proxy.service` runs one proxy: listener, selection, checks, connections;
* :mod:`goavail.proxy.main` merges the flags into ``[Proxy]`` and runs until SIGTERM.

docs/proxy.md describes the behaviour; BENCHMARKS.md, "Failover proxy (issue 17)",
its throughput and failover time.
"""
