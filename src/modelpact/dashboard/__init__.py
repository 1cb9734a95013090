"""The owner's and partners' dashboard, served by the gateway under ``/dashboard``."""

from modelpact.dashboard.pages import install_dashboard

__all__ = ["install_dashboard"]
