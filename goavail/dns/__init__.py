"""DNS stages: the pure planner (:mod:`plan`), the reconciler and the providers."""
