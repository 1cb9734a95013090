"""Storage behind narrow interfaces: records in SQL, sealed artifacts in files.

The store knows nothing of charters, policies or models' meaning: it keeps
plain records (:mod:`modelpact.store.records`) behind protocols
(:mod:`modelpact.store.interfaces`) and raises only :mod:`modelpact.errors`
types.

- :func:`open_store` opens SQLite (the embedded default) or PostgreSQL and
  migrates the schema; :class:`SqlStore` hands out units of work, each one
  transaction::

      store = open_store("sqlite:///workspace/modelpact.db")
      with store.unit_of_work() as work:
          work.partners.add(partner)

- ``work.audit`` (:class:`AuditRepository`) keeps the rows of the
  tamper-evident audit log: entries, Merkle subtree hashes and checkpoints;
  the hashing and signing live with the audit log, not here.
- :class:`LocalArtifactStore` keeps write-once blobs under a directory.
"""

from modelpact.store.files import LocalArtifactStore, check_artifact_key
from modelpact.store.interfaces import (
    ArtifactStore,
    AuditAppender,
    AuditNodeReader,
    AuditRepository,
    CharterRepository,
    ModelRepository,
    PartnerRepository,
    Store,
    UnitOfWork,
)
from modelpact.store.records import (
    CHARTER_STATUSES,
    PARTNER_STATUSES,
    AuditEntryRecord,
    CharterRecord,
    CheckpointRecord,
    ModelRecord,
    ModelVersionRecord,
    PartnerRecord,
)
from modelpact.store.sql import SqlStore, open_store, redacted_url

__all__ = [
    "CHARTER_STATUSES",
    "PARTNER_STATUSES",
    "ArtifactStore",
    "AuditAppender",
    "AuditEntryRecord",
    "AuditNodeReader",
    "AuditRepository",
    "CharterRecord",
    "CharterRepository",
    "CheckpointRecord",
    "LocalArtifactStore",
    "ModelRecord",
    "ModelRepository",
    "ModelVersionRecord",
    "PartnerRecord",
    "PartnerRepository",
    "SqlStore",
    "Store",
    "UnitOfWork",
    "check_artifact_key",
    "open_store",
    "redacted_url",
]
