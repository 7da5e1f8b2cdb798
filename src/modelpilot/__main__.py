"""``python -m modelpilot``: the same as the ``modelpilot`` command."""

from modelpilot.cli.main import main

main()
