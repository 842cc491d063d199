"""goavail: clustered DNS failover agent.

Pipeline (one folder or module per stage)::

    checks/ (probes, I/O) -> health.py (pure) -> decision.py -> dns/plan.py (pure)
        -> dns/reconcile.py -> dns/providers/ (I/O)
"""

__version__ = "0.1.0"
