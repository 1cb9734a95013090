"""The ``modelpact`` command line, for owners and partners."""
