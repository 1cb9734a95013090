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
- ``work.sessions`` (:class:`SessionRepository`) keeps one-time challenges and
  sessions (by the SHA-256 of their token); ``work.usage``
  (:class:`UsageRepository`) counts rows and requests per partner, charter and
  UTC day, with a quota check no two processes can both pass.
- ``work.monitor`` (:class:`MonitorRepository`) keeps what the extraction monitor
  needs: training summaries per model version, detector state and the response in
  force per partner, charter and model.
- ``work.watermarks`` (:class:`WatermarkRepository`) keeps each partner's sealed
  watermark keys and the sealed queries its watermark marked.
- ``work.privacy`` (:class:`PrivacyRepository`) counts the privacy budget spent per
  partner, charter and model, never past the charter's budget.
- ``work.keys`` (:class:`~modelpact.store.interfaces.KeyRepository`) reads and
  re-wraps the rows that hold KEK-wrapped keys when the KEK rotates.
- ``work.state`` (:class:`StateRepository`) is a counter that every write to
  partners, charters, models or session revocations increments, so a reader
  can tell in one read whether anything it keeps may have changed.
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
    MonitorRepository,
    PartnerRepository,
    PrivacyRepository,
    SessionRepository,
    StateRepository,
    Store,
    UnitOfWork,
    UsageRepository,
    WatermarkRepository,
)
from modelpact.store.records import (
    CHARTER_STATUSES,
    PARTNER_STATUSES,
    AuditEntryRecord,
    ChallengeRecord,
    CharterRecord,
    CheckpointRecord,
    MarkRecord,
    ModelRecord,
    ModelVersionRecord,
    MonitorStateRecord,
    PartnerRecord,
    ProtectionRecord,
    SessionRecord,
    UsageRecord,
    UsageTotal,
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
    "ChallengeRecord",
    "CharterRecord",
    "CharterRepository",
    "CheckpointRecord",
    "LocalArtifactStore",
    "MarkRecord",
    "ModelRecord",
    "ModelRepository",
    "ModelVersionRecord",
    "MonitorRepository",
    "MonitorStateRecord",
    "PartnerRecord",
    "PartnerRepository",
    "PrivacyRepository",
    "ProtectionRecord",
    "SessionRecord",
    "SessionRepository",
    "SqlStore",
    "StateRepository",
    "Store",
    "UnitOfWork",
    "UsageRecord",
    "UsageRepository",
    "UsageTotal",
    "WatermarkRepository",
    "check_artifact_key",
    "open_store",
    "redacted_url",
]
