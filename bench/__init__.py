"""Benchmark harness for goavail (issue 4): ``python -m bench.run``, ``make bench``.

Everything runs inside a private network namespace that holds only a loopback
interface, so no probe can leave the machine. See ``BENCHMARKS.md``.
"""
