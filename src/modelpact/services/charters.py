"""Charter use cases: check, sign, apply, list, show, diff and roll back.

A charter is active only when it carries a valid owner signature by this
workspace's key and a valid countersignature by the partner's enrolled key,
its validity window is open, its partner is active, the models it grants
exist, and Cedar accepts its compiled policies.  Applying a new version of a
charter supersedes the previous one; a rollback puts an earlier applied version back in
force (the log says who, when and why).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelpact.charter import (
    Charter,
    CharterReport,
    SignedCharter,
    charter_digest,
    check_charter,
    diff_charters,
)
from modelpact.crypto import constant_time_equal
from modelpact.errors import (
    AlreadyExists,
    CharterInvalid,
    Expired,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    Tampered,
)
from modelpact.policy import CompiledCharter, compile_charter
from modelpact.services.events import record_event
from modelpact.services.owner_keys import is_owner_key
from modelpact.services.workspace import Workspace
from modelpact.store import CharterRecord, UnitOfWork

__all__ = ["AppliedCharter", "CharterDesk", "RolledBack", "check_with_policy"]


@dataclass(frozen=True, slots=True)
class AppliedCharter:
    charter: Charter
    record: CharterRecord
    superseded: int | None


def check_with_policy(text: str, *, source: str) -> CharterReport:
    """Schema and lint findings, plus an error if the policy engine cannot express the charter."""
    report = check_charter(text, source=source)
    if report.charter is not None and not report.has_errors:
        try:
            compile_charter(report.charter)
        except CharterInvalid as exc:
            report = report.with_error(f"{exc.summary}: {'; '.join(exc.findings)}")
    return report


@dataclass(frozen=True, slots=True)
class RolledBack:
    """What :meth:`CharterDesk.rollback` put back in force, and the version it replaced."""

    charter: Charter
    previous: int


class CharterDesk:
    """Where the owner signs, applies and reads charters."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def sign(self, text: str, *, source: str) -> SignedCharter:
        """Check the charter (errors refuse) and sign it with the workspace's owner key."""
        report = check_with_policy(text, source=source)
        if report.charter is None or report.has_errors:
            errors = tuple(str(f) for f in report.findings if f.severity == "error")
            raise CharterInvalid(f"{source} has errors; not signed", findings=errors)
        return SignedCharter.sign_by_owner(report.charter, self._ws.owner_key())

    def apply(self, envelope_text: str, *, source: str, actor: str = "owner") -> AppliedCharter:
        ws = self._ws
        signed = SignedCharter.from_json(envelope_text, source=source)
        charter = signed.charter
        if charter.owner.verify_key != ws.owner_verify_key:
            raise SignatureInvalid(
                f"{charter.ref} names another owner's key, not this workspace's",
                hint="sign it in this workspace with 'modelpact charter sign'",
            )
        signed.verify_complete()
        now = ws.clock()
        if not charter.valid.contains(now):
            raise Expired(
                f"{charter.ref} is not valid now ({now.isoformat(timespec='seconds')})",
                hint="its validity window is closed or not yet open",
            )
        compiled = compile_charter(charter)
        # Partner, models and the previous version are read in the transaction that writes,
        # so a partner suspended or re-keyed meanwhile cannot slip through.
        with ws.store.unit_of_work() as uow:
            try:
                partner = uow.partners.get(charter.partner.id)
            except NotFound:
                raise NotFound(
                    f"no partner named {charter.partner.id}",
                    hint="enrol it with 'modelpact partner add ID --public-key KEY'",
                ) from None
            if not constant_time_equal(partner.public_key, charter.partner.key):
                raise SignatureInvalid(
                    f"{charter.ref} names a key for {partner.id} that is not the enrolled one",
                    hint="the partner must countersign with the key the owner enrolled",
                )
            if partner.status != "active":
                raise InvalidInput(f"partner {partner.id} is {partner.status}; resume it first")
            for grant in charter.grants:
                try:
                    uow.models.get_model(grant.model)
                except NotFound:
                    raise NotFound(
                        f"{charter.ref} grants model {grant.model}, which is not registered"
                    ) from None
            superseded = self._latest_active(uow, charter)
            record = CharterRecord(
                charter_id=charter.charter,
                version=charter.version,
                partner_id=charter.partner.id,
                envelope=signed.to_json(),
                digest=signed.digest,
                status="active",
                applied_at=now,
            )
            uow.charters.add(record)
            if superseded is not None:
                uow.charters.set_status(charter.charter, superseded, "superseded")
            record_event(
                ws,
                uow,
                actor=actor,
                kind="charter.apply",
                subject=charter.ref,
                digest=signed.digest,
                superseded=superseded,
                policies=len(compiled.explanations),
            )
        return AppliedCharter(charter, record, superseded)

    @staticmethod
    def _latest_active(uow: UnitOfWork, charter: Charter) -> int | None:
        try:
            latest = uow.charters.latest(charter.charter)
        except NotFound:
            return None
        if latest.partner_id != charter.partner.id:
            raise InvalidInput(
                f"charter id {charter.charter} already belongs to partner {latest.partner_id}"
            )
        if latest.status == "terminated":  # its data key is destroyed; its exit is on record
            raise InvalidInput(
                f"{charter.charter} was terminated; a terminated charter is not applied again",
                hint="a new partnership needs a new charter id, signed by both parties",
            )
        if charter.version <= latest.version:
            raise AlreadyExists(
                f"{charter.charter} is at version {latest.version}; "
                f"version {charter.version} cannot be applied",
                hint="every change is a new, higher version signed again by both parties",
            )
        current = uow.charters.current(charter.charter)  # after a rollback, not the latest
        return current.version if current.status == "active" else None

    def all(self) -> list[CharterRecord]:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            return list(uow.charters.list())

    def get(self, charter_id: str, version: int | None = None) -> tuple[CharterRecord, Charter]:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            record = (
                uow.charters.current(charter_id)
                if version is None
                else uow.charters.get(charter_id, version)
            )
        return record, self.trusted(record)

    def trusted(self, record: CharterRecord) -> Charter:
        """Re-check a stored charter: a row written behind the owner's back must not count.

        Both signatures, this workspace's owner key, the digest, and the row's own
        id, version and partner must all agree with the signed envelope it holds, so
        an old envelope copied into a newer row is caught too.
        """
        signed = SignedCharter.from_json(record.envelope, source="stored charter")
        signed.verify_complete()
        charter = signed.charter
        if (
            not is_owner_key(self._ws, charter.owner.verify_key)  # this key, or one handed over
            or not constant_time_equal(charter_digest(charter), record.digest)
            or (charter.charter, charter.version, charter.partner.id)
            != (record.charter_id, record.version, record.partner_id)
        ):
            raise Tampered(
                f"stored charter {record.charter_id}@v{record.version} does not match its record",
                hint="the database was changed outside modelpact; restore it from a backup",
            )
        return charter

    def rollback(
        self, charter_id: str, *, to_version: int, reason: str, actor: str = "owner"
    ) -> RolledBack:
        """Put ``to_version``, applied and superseded before, back in force; the version in
        force now is superseded.  Both parties signed ``to_version`` when it was applied, so
        nobody signs again; the log records who rolled back, from which version and why.

        Sessions carry on under the reinstated version if it still lists their purpose
        (as after an amendment).  A later amendment still needs a version above every
        version applied so far.
        """
        ws = self._ws
        reason = reason.strip()
        if not reason:
            raise InvalidInput("say why the charter is rolled back (--reason)")
        now = ws.clock()
        with ws.store.unit_of_work() as uow:
            try:
                current = uow.charters.current(charter_id)
            except NotFound:
                raise NotFound(
                    f"no charter {charter_id}", hint="see 'modelpact charter list'"
                ) from None
            if current.status != "active":
                raise InvalidInput(
                    f"{charter_id} has no version in force ({charter_id}@v{current.version} "
                    f"is {current.status}); nothing to roll back"
                )
            if to_version == current.version:
                raise InvalidInput(f"{charter_id}@v{to_version} is already in force")
            try:
                target = uow.charters.get(charter_id, to_version)
            except NotFound:
                raise NotFound(
                    f"{charter_id} has no version {to_version}",
                    hint=f"see 'modelpact charter show {charter_id}'",
                ) from None
            if target.status != "superseded":
                raise InvalidInput(
                    f"{charter_id}@v{to_version} is {target.status}; it cannot be put back in force"
                )
            charter = self.trusted(target)
            if not charter.valid.contains(now):
                raise Expired(
                    f"{charter.ref} is not valid now ({now.isoformat(timespec='seconds')})",
                    hint="its validity window is closed or not yet open",
                )
            for grant in charter.grants:
                uow.models.get_model(grant.model)  # models are never removed; checked anyway
            uow.charters.set_status(charter_id, current.version, "superseded")
            uow.charters.set_status(charter_id, to_version, "active")
            record_event(
                ws,
                uow,
                actor=actor,
                kind="charter.rollback",
                subject=charter.ref,
                digest=target.digest,
                previous=current.version,
                reason=reason[:500],
            )
        return RolledBack(charter, current.version)

    def diff(self, charter_id: str, old: int, new: int) -> tuple[str, ...]:
        return diff_charters(self.get(charter_id, old)[1], self.get(charter_id, new)[1])

    def compile_active(self, records: list[CharterRecord]) -> list[CompiledCharter]:
        """Compile the active ``records`` (the policy engine's input), re-checking each."""
        active = [r for r in records if r.status == "active"]
        ids = [r.charter_id for r in active]
        if len(ids) != len(set(ids)):
            raise Tampered(
                "two versions of one charter are active",
                hint="the database was changed outside modelpact; restore it from a backup",
            )
        return [compile_charter(self.trusted(record)) for record in active]
