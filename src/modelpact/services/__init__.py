"""Use cases over one workspace: the only layer the interfaces call."""

from modelpact.services.charters import AppliedCharter, CharterDesk, RolledBack, check_with_policy
from modelpact.services.clock import Clock, system_clock
from modelpact.services.decisions import Decider
from modelpact.services.partners import PartnerDirectory
from modelpact.services.registry import ModelRegistry, RegisteredVersion, VerifiedVersion
from modelpact.services.workspace import Workspace, WorkspaceConfig, init_workspace, open_workspace

__all__ = [
    "AppliedCharter",
    "CharterDesk",
    "Clock",
    "Decider",
    "ModelRegistry",
    "PartnerDirectory",
    "RegisteredVersion",
    "RolledBack",
    "VerifiedVersion",
    "Workspace",
    "WorkspaceConfig",
    "check_with_policy",
    "init_workspace",
    "open_workspace",
    "system_clock",
]
