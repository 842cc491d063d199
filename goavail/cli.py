"""Command-line interface (placeholder, filled in by the core issue)."""


def main() -> None:
    """Entry point of the ``goavail`` console script."""
