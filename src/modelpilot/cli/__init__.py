"""The ``modelpilot`` command line."""
