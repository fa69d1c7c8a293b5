"""`python -m pumpwatch.app.cli …`: the same command line as the `pumpwatch` script."""

from pumpwatch.app.cli import main

main()
