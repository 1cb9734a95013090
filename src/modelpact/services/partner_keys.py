"""Each partner's data key under one charter: what its sealed records are sealed under.

The key is made on first use, wrapped by the workspace's KEK (associated data: partner
and charter), and kept as one small blob in the workspace's artifact store
(``partner-keys/<partner>/<charter>``), where every gateway replica finds it.  The
partner's records are sealed under it (:func:`~modelpact.services.envelopes.seal_for_partner`),
so destroying this one blob at exit makes every copy of them — backups included —
undecryptable: crypto-shredding.

Destruction leaves a *tombstone* in the key's place (when, and the termination it came
from), never an empty name: a gateway that still holds a watch of the terminated charter
cannot make a fresh key and seal partner data again.  The tombstone is written with the
store's exclusive create, so a key made between the delete and the tombstone is deleted
in turn (:meth:`PartnerDataKeys.destroy` loops until the tombstone stands).  Destroying
twice is harmless: the second call finds the tombstone and reports the first.
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

from modelpact.crypto import DataKey
from modelpact.errors import AlreadyExists, NotFound, Tampered
from modelpact.services.workspace import Workspace

__all__ = ["KeyDestroyed", "PartnerDataKeys", "Tombstone"]

_FORMAT = "modelpact-partner-key/v1"
_TOMBSTONE = "modelpact-partner-key-destroyed/v1"


class KeyDestroyed(NotFound):
    """The partner's data key under this charter was destroyed at exit: what was sealed
    under it is gone for good."""


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What stands where a destroyed data key was."""

    partner: str
    charter: str
    destroyed_at: datetime
    terminated_at: datetime


class PartnerDataKeys:
    """Partners' data keys, one per partner and charter, wrapped by the workspace's KEK."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @staticmethod
    def name(partner: str, charter: str) -> str:
        """The artifact key of the partner's data key under ``charter``."""
        return f"partner-keys/{partner}/{charter}"

    @staticmethod
    def _ad(partner: str, charter: str) -> bytes:
        return f"partner-data-key/{partner}/{charter}".encode()

    def key(self, partner: str, charter: str, *, create: bool = False) -> DataKey:
        """The partner's data key under ``charter``; made now if there is none and ``create``.

        Raises :class:`KeyDestroyed` once it was destroyed (never made again), and
        :class:`~modelpact.errors.NotFound` if there is none and ``create`` is false.
        """
        name = self.name(partner, charter)
        ad = self._ad(partner, charter)
        for _ in range(3):
            try:
                return self._read(name, partner, charter, ad)
            except KeyDestroyed:
                raise
            except NotFound:
                if not create:
                    raise
            fresh = DataKey.generate()
            blob = {
                "format": _FORMAT,
                "wrapped": base64.b64encode(self._ws.kek().wrap(fresh, ad)).decode("ascii"),
            }
            try:
                self._ws.artifacts.put(name, json.dumps(blob).encode())
            except AlreadyExists:
                continue  # another process made it (or destroyed it) meanwhile: read theirs
            return fresh
        raise AlreadyExists(f"the data key of {partner} under {charter} keeps changing; retry")

    def tombstone(self, partner: str, charter: str) -> Tombstone | None:
        """The tombstone of the destroyed key, or None while the key lives (or never did)."""
        try:
            blob = self._blob(self.name(partner, charter))
        except NotFound:
            return None
        if blob["format"] != _TOMBSTONE:
            return None
        try:
            return Tombstone(
                partner,
                charter,
                datetime.fromisoformat(blob["destroyed_at"]),
                datetime.fromisoformat(blob["terminated_at"]),
            )
        except (KeyError, TypeError, ValueError):
            raise Tampered(f"the tombstone of {partner}'s key under {charter} is damaged") from None

    def destroy(self, partner: str, charter: str, *, terminated_at: datetime) -> Tombstone:
        """Destroy the key (if any) and leave its tombstone; the first tombstone if destroyed
        already."""
        name = self.name(partner, charter)
        while True:
            found = self.tombstone(partner, charter)
            if found is not None:
                return found
            with contextlib.suppress(NotFound):
                self._ws.artifacts.delete(name)
            blob = {
                "format": _TOMBSTONE,
                "destroyed_at": self._ws.clock().isoformat(),
                "terminated_at": terminated_at.isoformat(),
            }
            try:
                self._ws.artifacts.put(name, json.dumps(blob).encode())
            except AlreadyExists:
                continue  # a key was made in between: delete that one too

    def _blob(self, name: str) -> dict[str, str]:
        try:
            blob = json.loads(self._ws.artifacts.get(name))
            if not isinstance(blob, dict) or blob.get("format") not in (_FORMAT, _TOMBSTONE):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            raise Tampered(f"{name} is not a partner data key") from None
        return blob

    def _read(self, name: str, partner: str, charter: str, ad: bytes) -> DataKey:
        blob = self._blob(name)
        if blob["format"] == _TOMBSTONE:
            raise KeyDestroyed(
                f"the data key of {partner} under {charter} was destroyed at exit "
                f"({blob.get('destroyed_at', '?')}); what was sealed under it is gone",
            )
        try:
            wrapped = base64.b64decode(blob["wrapped"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise Tampered(f"{name} is not a partner data key") from None
        return self._ws.kek().unwrap(wrapped, ad)
