"""``python -m realm_cli.cli``: how ``accelerate launch`` re-enters realm on every process."""

from realm_cli.cli import main

main()
