"""goavail: clustered DNS failover agent.

Pipeline (one folder or module per stage)::

    checks/ (probes, I/O) -> health.py (pure) -> decision.py -> dns/plan.py (pure)
        -> dns/reconcile.py -> dns/providers/ (I/O)
"""

__version__ = "0.1.0"

import sys as _sys

# httpx's package imports its command-line client (httpx._main: rich, pygments, click; 82
# modules, 3.6 MB of resident memory) whenever rich and click are installed, as typer's
# dependencies always are here; httpx falls back to a stub `httpx.main` when that import
# fails (the CLI's extras missing). goavail never runs the httpx CLI, so the import is made
# to fail (a None entry in sys.modules raises ImportError). Nothing else of httpx changes.
# Measured on the Cloudflare path, BENCHMARKS.md (issue 14).
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
