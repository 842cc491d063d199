"""Benchmark harness for goavail (issue 4): ``python -m bench.run`` (scale, single-node
latency) and ``python -m bench.cluster`` (3-agent latency, loss resilience); ``make bench``.

Everything runs inside a private network namespace that holds only a loopback
interface (plus, for the cluster benchmarks, namespaces and a bridge created inside
it), so no probe can leave the machine. See ``BENCHMARKS.md``.
"""
