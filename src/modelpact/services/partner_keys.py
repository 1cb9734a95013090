"""Each partner's data key under one charter: what its sealed records are sealed under.

The key is made on first use, wrapped by the workspace's KEK (associated data: partner
and charter), and kept as one small blob in the workspace's artifact store
(``partner-keys/<partner>/<charter>``), where every gateway replica finds it.  The
partner's records are sealed under it (:func:`~modelpact.services.envelopes.seal_for_partner`),
so destroying this one blob at exit makes every copy of them — backups included —
undecryptable: crypto-shredding.

*Generations.*  AES-GCM with random nonces allows at most 2**32 seals per key, and the
monitor seals a partner's watch state on every save, so each seal is counted
(:mod:`modelpact.services.key_budget`).  When a key reaches ``rotate_at`` a new generation
is made — ``partner-key-generations/<partner>/<charter>/<n>`` for n >= 2, written with the
store's exclusive create, so two gateways that both see the count pass make one — and new
envelopes name the generation they were sealed under; old generations stay for reading.

Destruction leaves a *tombstone* in the first generation's place (when, and the termination
it came from), never an empty name: a gateway that still holds a watch of the terminated
charter cannot make a fresh key and seal partner data again.  The tombstone is written with
the store's exclusive create, so a key made between the delete and the tombstone is deleted
in turn (:meth:`PartnerDataKeys.destroy` loops until the tombstone stands); then every later
generation is deleted.  A generation made while the tombstone went up is deleted by its
maker, who reads the tombstone after writing it, or found by the sweep, which lists after
the tombstone stands.  Destroying twice is harmless: the second call finds the tombstone,
sweeps again and reports the first.
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

from modelpact.crypto import DataKey
from modelpact.errors import AlreadyExists, NotFound, Tampered
from modelpact.services.kek import RewrapTally, Tick
from modelpact.services.key_budget import USAGE_PREFIX
from modelpact.services.workspace import Workspace

__all__ = ["KeyDestroyed", "PartnerDataKeys", "Tombstone"]

_FORMAT = "modelpact-partner-key/v1"
_TOMBSTONE = "modelpact-partner-key-destroyed/v1"
_FIRST = "partner-keys"
_LATER = "partner-key-generations"


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
    """Partners' data keys, one per partner and charter (in generations), wrapped by the KEK."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @staticmethod
    def name(partner: str, charter: str, generation: int = 1) -> str:
        """The artifact key of the partner's data key under ``charter`` (of one generation)."""
        if generation == 1:
            return f"{_FIRST}/{partner}/{charter}"
        return f"{_LATER}/{partner}/{charter}/{generation}"

    @staticmethod
    def counter(partner: str, charter: str, generation: int) -> str:
        """The name of the generation's encryption counter."""
        return f"{USAGE_PREFIX}/partner/{partner}/{charter}/{generation}"

    @staticmethod
    def _ad(partner: str, charter: str, generation: int = 1) -> bytes:
        suffix = "" if generation == 1 else f"/{generation}"
        return f"partner-data-key/{partner}/{charter}{suffix}".encode()

    def key(self, partner: str, charter: str, *, create: bool = False) -> DataKey:
        """The partner's current data key under ``charter``; made now if none and ``create``.

        Raises :class:`KeyDestroyed` once it was destroyed (never made again), and
        :class:`~modelpact.errors.NotFound` if there is none and ``create`` is false.
        """
        return self.current(partner, charter, create=create)[1]

    def current(self, partner: str, charter: str, *, create: bool = False) -> tuple[int, DataKey]:
        """The newest generation and its key (see :meth:`key`)."""
        first = self._first(partner, charter, create=create)
        generation = 1
        while self._ws.artifacts.exists(self.name(partner, charter, generation + 1)):
            generation += 1
        if generation == 1:
            return 1, first
        return generation, self._later(partner, charter, generation)

    def generation(self, partner: str, charter: str, generation: int) -> DataKey:
        """One generation's key, to open what was sealed under it; :class:`KeyDestroyed`
        after exit, :class:`~modelpact.errors.NotFound` if it never existed."""
        first = self._first(partner, charter, create=False)  # KeyDestroyed after exit
        if generation == 1:
            return first
        if generation < 1:
            raise NotFound(f"{partner} has no data key generation {generation} under {charter}")
        return self._later(partner, charter, generation)

    def _later(self, partner: str, charter: str, generation: int) -> DataKey:
        name = self.name(partner, charter, generation)
        return self._read(name, partner, charter, self._ad(partner, charter, generation))

    def for_sealing(self, partner: str, charter: str) -> tuple[int, DataKey]:
        """The generation to seal under now, and its key, the seal counted.

        When the count reaches the workspace's ``rotate_at`` a new generation is made and
        used; :class:`~modelpact.services.key_budget.KeyExhausted` past ``limit``.
        """
        budget = self._ws.encryptions()
        for _ in range(4):
            generation, key = self.current(partner, charter, create=True)
            # A generation without a counter is older than counting: due at once.
            counter = self.counter(partner, charter, generation)
            if not budget.due(budget.spend(counter, start=budget.limits.rotate_at)):
                return generation, key
            self._new_generation(partner, charter, generation + 1)
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
        """Destroy every generation of the key (if any) and leave its tombstone; the first
        tombstone if destroyed already."""
        name = self.name(partner, charter)
        while True:
            found = self.tombstone(partner, charter)
            if found is not None:
                self._sweep(partner, charter)
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

    def rewrap_all(self, tick: Tick) -> RewrapTally:
        """Wrap every live generation again under the newest KEK (a KEK rotation); each blob
        is a compare-and-set replace, so a key destroyed meanwhile stays destroyed.

        A later generation of a destroyed key (its first generation a tombstone: a destroy
        interrupted before its sweep ended) is never re-wrapped: the sweep is finished here
        instead, its generations and counters deleted, so the old KEK goes with the last
        wrap of it.
        """
        tally = RewrapTally()
        kek = self._ws.kek()
        destroyed: set[tuple[str, str]] = set()
        for name in self._ws.artifacts.keys(_FIRST) + self._ws.artifacts.keys(_LATER):
            parsed = _parse_name(name)
            if parsed is None:
                continue
            partner, charter, generation = parsed
            pair = (partner, charter)
            if generation > 1 and pair not in destroyed and self.tombstone(*pair) is not None:
                destroyed.add(pair)  # destroyed since its first generation was read
            if pair in destroyed:
                continue
            try:
                raw = self._ws.artifacts.get(name)
            except NotFound:
                continue
            blob = _decode(raw, name)
            if blob["format"] == _TOMBSTONE:
                destroyed.add(pair)
                continue
            new = kek.rewrap(_wrapped(blob, name), self._ad(*parsed))
            if new is None:
                tally.already += 1
            else:
                blob["wrapped"] = base64.b64encode(new).decode("ascii")
                replaced = json.dumps(blob).encode()
                tally.count(self._ws.artifacts.replace(name, replaced, expected=raw))
            tick()
        for partner, charter in sorted(destroyed):
            self._sweep(partner, charter)
        return tally

    def _first(self, partner: str, charter: str, *, create: bool) -> DataKey:
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
            if not self._store_new(name, fresh, ad, self.counter(partner, charter, 1)):
                continue  # another process made it (or destroyed it) meanwhile: read theirs
            return fresh
        raise AlreadyExists(f"the data key of {partner} under {charter} keeps changing; retry")

    def _new_generation(self, partner: str, charter: str, generation: int) -> None:
        name = self.name(partner, charter, generation)
        fresh = DataKey.generate()
        ad = self._ad(partner, charter, generation)
        if not self._store_new(name, fresh, ad, self.counter(partner, charter, generation)):
            return  # another process made this generation: use theirs
        if self.tombstone(partner, charter) is not None:  # destroyed meanwhile: undo ours
            with contextlib.suppress(NotFound):
                self._ws.artifacts.delete(name)
            self._first(partner, charter, create=False)  # raises KeyDestroyed

    def _store_new(self, name: str, key: DataKey, ad: bytes, counter: str) -> bool:
        """Wrap ``key`` and store it under ``name`` (exclusive create, flushed) inside the
        KEK lock; False if the name is taken.

        Its counter is made at 0 first, so no process that reads the key finds it without
        one (which would make it due at once).  A crash in between leaves a counter at 0
        for a key not made yet: the key made later is new too.
        """
        self._ws.encryptions().begin(counter)
        with self._ws.kek().wrapping() as wrap:
            wrapped = base64.b64encode(wrap(key, ad)).decode("ascii")
            blob = json.dumps({"format": _FORMAT, "wrapped": wrapped}).encode()
            try:
                self._ws.artifacts.put(name, blob)
            except AlreadyExists:
                return False
        return True

    def _sweep(self, partner: str, charter: str) -> None:
        """Delete every generation after the first, newest first; then their counters."""
        for name in reversed(self._ws.artifacts.keys(f"{_LATER}/{partner}/{charter}")):
            with contextlib.suppress(NotFound):
                self._ws.artifacts.delete(name)
        for name in self._ws.artifacts.keys(f"{USAGE_PREFIX}/partner/{partner}/{charter}"):
            self._ws.encryptions().forget(name)

    def _blob(self, name: str) -> dict[str, str]:
        return _decode(self._ws.artifacts.get(name), name)

    def _read(self, name: str, partner: str, charter: str, ad: bytes) -> DataKey:
        blob = self._blob(name)
        if blob["format"] == _TOMBSTONE:
            raise KeyDestroyed(
                f"the data key of {partner} under {charter} was destroyed at exit "
                f"({blob.get('destroyed_at', '?')}); what was sealed under it is gone",
            )
        return self._ws.kek().unwrap(_wrapped(blob, name), ad)


def _decode(raw: bytes, name: str) -> dict[str, str]:
    try:
        blob = json.loads(raw)
        if not isinstance(blob, dict) or blob.get("format") not in (_FORMAT, _TOMBSTONE):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise Tampered(f"{name} is not a partner data key") from None
    return blob


def _wrapped(blob: dict[str, str], name: str) -> bytes:
    try:
        return base64.b64decode(blob["wrapped"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise Tampered(f"{name} is not a partner data key") from None


def _parse_name(name: str) -> tuple[str, str, int] | None:
    """``(partner, charter, generation)`` of a key blob's name, or None for another name."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == _FIRST:
        return parts[1], parts[2], 1
    if len(parts) == 4 and parts[0] == _LATER and parts[3].isdigit() and int(parts[3]) >= 2:
        return parts[1], parts[2], int(parts[3])
    return None
