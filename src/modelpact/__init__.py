"""modelpact: share ML models with partners under a signed charter."""

__version__ = "0.1.0"
