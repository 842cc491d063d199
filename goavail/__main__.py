"""Allow ``python -m goavail``."""

from goavail.cli import main

main()
