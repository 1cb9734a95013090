"""The audit export: everything an auditor needs to check the log offline.

An export holds every entry (as JSON, with the leaf hash the log recorded for
it), every signed checkpoint, and a consistency proof between each pair of
successive checkpoints.  :func:`verify_export` needs nothing but the export and
the owner's public key; it recomputes every leaf and every checkpointed root
from the entries and names each problem precisely: which entry changed, which
is missing or out of place, which checkpoint does not match or is not signed,
and which two checkpoints of one size disagree.

An entry whose retention period ended holds a
:class:`~modelpact.audit.entries.PrunedEntry` marker instead of its payload: its
recorded leaf hash goes into the roots like any other (so a wrong one still breaks
the signed checkpoints), it is counted as pruned rather than changed, and it must be
explained by a ``log.prune`` entry the export holds, later in the log, whose range
covers it.  The verifier cannot see what a pruned entry held, so it holds each prune to
what the retention policy allows: one charter (the marker's, the prune's subject and
detail alike), that charter's partner as the marker's actor, the charter's
``charter.terminate`` entry earlier in the log with the same partner, time and retention
days, the prune no sooner than the end of that retention, one prune per charter, and as
many markers as the prune says it pruned and its per-kind counts add up to.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelpact.audit.checkpoint import Checkpoint, open_checkpoint
from modelpact.audit.entries import (
    PRUNE_ACTION,
    TERMINATE_ACTION,
    AdminEntry,
    PrunedEntry,
    decode_entry,
)
from modelpact.audit.tree import Frontier, leaf_hash, verify_consistency
from modelpact.crypto import VerifyKey, canonical_json, constant_time_equal
from modelpact.errors import InvalidInput, ModelpactError

__all__ = [
    "EXPORT_FORMAT",
    "PRUNED_KINDS",
    "TERMINATE_ACTION",
    "ExportReport",
    "build_export",
    "verify_export",
]

EXPORT_FORMAT = "modelpact-audit-export/v1"
#: The owner's entry that ends a charter (subject ``<charter>@v<version>``; detail: partner,
#: retention days); written by :mod:`modelpact.services.exit`, which this must not import.
#: What retention prunes: a charter's partner's entries of these kinds (their counts are
#: in the log.prune entry's detail).
PRUNED_KINDS = ("access", "incident", "output", "session")
_PRUNE_DETAIL = frozenset(
    ("charter", "partner", "terminated_at", "retention_days", "entries", "first", "last")
) | frozenset(PRUNED_KINDS)
_EXPLAINING = (PRUNE_ACTION, TERMINATE_ACTION)
#: Stands in for an entry that could not be read, so later roots are still recomputed.
_UNREADABLE = bytes(32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_export(
    *,
    origin: str,
    public_key: VerifyKey,
    entries: Sequence[tuple[int, bytes, bytes]],
    checkpoints: Sequence[str],
    consistency: Sequence[tuple[int, int, Sequence[bytes]]],
) -> str:
    """JSON text of an export: ``entries`` as (index, leaf hash, canonical bytes)."""
    document = {
        "format": EXPORT_FORMAT,
        "origin": origin,
        "public_key": public_key.encode(),
        "entries": [
            {"index": index, "leaf_hash": _b64(leaf), "entry": json.loads(blob)}
            for index, leaf, blob in entries
        ],
        "checkpoints": list(checkpoints),
        "consistency": [
            {"old": old, "new": new, "proof": [_b64(p) for p in proof]}
            for old, new, proof in consistency
        ],
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


@dataclass
class ExportReport:
    """What :func:`verify_export` checked, and every problem it found (empty when sound)."""

    entries: int = 0
    checkpoints: int = 0
    pruned: int = 0  # entries whose payload retention removed (their leaf hashes checked)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _count(detail: dict[str, Any], key: str) -> int | None:
    value = detail.get(key)
    return value if type(value) is int and value >= 0 else None


def _terminations(admins: dict[int, AdminEntry]) -> dict[str, list[tuple[int, AdminEntry]]]:
    """Each charter's ``charter.terminate`` entries (subject ``<charter>@v<n>``), in order."""
    found: dict[str, list[tuple[int, AdminEntry]]] = {}
    for at, entry in sorted(admins.items()):
        charter, sep, version = entry.subject.rpartition("@v")
        if entry.action == TERMINATE_ACTION and sep and version.isdigit():
            found.setdefault(charter, []).append((at, entry))
    return found


def _unsound_prune(
    at: int, prune: AdminEntry, terminations: dict[str, list[tuple[int, AdminEntry]]]
) -> list[str]:
    """What is wrong with one ``log.prune`` entry on its own: it must name one charter
    terminated earlier in the log, by that partner, and come no sooner than that
    termination plus the retention days it recorded; its per-kind counts must add up."""
    detail = prune.detail
    charter, partner = detail.get("charter"), detail.get("partner")
    where = f"log.prune entry {at}"
    if not isinstance(charter, str) or charter != prune.subject:
        return [f"{where} does not name one charter (subject and detail disagree)"]
    problems = []
    unknown = sorted(set(detail) - _PRUNE_DETAIL)
    if unknown:
        problems.append(f"{where} declares what no prune records: {', '.join(unknown)}")
    said = _count(detail, "entries")
    kinds = [_count(detail, kind) for kind in PRUNED_KINDS if kind in detail]
    if said is None or None in kinds or sum(k or 0 for k in kinds) != said:
        problems.append(f"{where}: its per-kind counts do not add up to the entries it pruned")
    earlier = [(i, e) for i, e in terminations.get(charter, []) if i < at]
    if not earlier:
        problems.append(f"{where} prunes {charter}, which the log never terminated before it")
        return problems
    _, terminated = earlier[-1]
    days, declared = _count(detail, "retention_days"), detail.get("terminated_at")
    try:
        declared_at = datetime.fromisoformat(declared) if isinstance(declared, str) else None
    except ValueError:
        declared_at = None
    if (
        partner != terminated.detail.get("partner")
        or declared_at != terminated.time
        or days is None
        or days != terminated.detail.get("retention_days")
    ):
        problems.append(
            f"{where} does not match the termination of {charter} "
            "(partner, time or retention days differ)"
        )
    elif prune.time < terminated.time + timedelta(days=days):
        problems.append(
            f"{where} prunes {charter} before its retention of {days} days ended "
            f"({(terminated.time + timedelta(days=days)).isoformat()})"
        )
    return problems


def _unexplained(
    pruned: dict[int, PrunedEntry], prunes: dict[int, AdminEntry], admins: dict[int, AdminEntry]
) -> list[str]:
    """Every pruned entry must point at a later, sound ``log.prune`` entry whose range
    covers it and whose charter, partner and time its marker repeats; each ``log.prune``
    entry must account for exactly the entries pointing at it; one per charter."""
    problems = []
    pointing: dict[int, list[int]] = {}
    for index, marker in sorted(pruned.items()):
        prune = prunes.get(marker.prune)
        detail = {} if prune is None else prune.detail
        first, last = _count(detail, "first"), _count(detail, "last")
        if (
            prune is None
            or marker.prune <= index
            or first is None
            or last is None
            or not first <= index <= last
        ):
            problems.append(
                f"entry {index} is pruned, but no log.prune entry at {marker.prune} covers it"
            )
            continue
        pointing.setdefault(marker.prune, []).append(index)
        if (
            marker.charter != detail.get("charter")
            or marker.actor != detail.get("partner")
            or marker.time != prune.time
        ):
            problems.append(
                f"entry {index} is pruned, but its marker does not match the log.prune entry "
                f"at {marker.prune} (charter, partner or time differ)"
            )
    terminations = _terminations(admins)
    seen: dict[str, int] = {}
    for at, prune in sorted(prunes.items()):
        problems.extend(_unsound_prune(at, prune, terminations))
        charter = prune.subject
        if charter in seen:
            problems.append(
                f"log.prune entry {at} prunes {charter} again (after log.prune entry "
                f"{seen[charter]}): a charter is pruned once"
            )
        seen.setdefault(charter, at)
        indexes = pointing.get(at, [])
        said = _count(prune.detail, "entries")
        if said is not None and len(indexes) != said:
            problems.append(
                f"log.prune entry {at} says it pruned {said} entries, "
                f"but {len(indexes)} point at it"
            )
        elif indexes and (
            indexes[0] != prune.detail.get("first") or indexes[-1] != prune.detail.get("last")
        ):
            problems.append(f"log.prune entry {at} names a range its entries do not span")
    return problems


def _decode_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not valid base64") from None


def verify_export(text: str, key: VerifyKey) -> ExportReport:
    """Check an export offline against the owner's public ``key``."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the export is not JSON (line {exc.lineno}): {exc.msg}") from None
    except (RecursionError, ValueError):
        raise InvalidInput(
            "the export is not JSON a verifier can read (nested too deeply)"
        ) from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f"not a modelpact audit export (format {EXPORT_FORMAT} expected)")
    origin = document.get("origin")
    if not isinstance(origin, str):
        raise InvalidInput("the export names no log origin")
    for part in ("entries", "checkpoints", "consistency"):
        if not isinstance(document.get(part, []), list):
            raise InvalidInput(f"the export's {part} is not a list")
    report = ExportReport()
    problems = report.problems
    if document.get("public_key") != key.encode():
        problems.append("the export names another public key than the one given to verify it")

    # Entries: in order, gap-free, each hashing to its recorded leaf, each a known schema;
    # or pruned, each explained by a log.prune entry that the log kept.
    leaves: list[bytes] = []
    pruned: dict[int, PrunedEntry] = {}
    prunes: dict[int, AdminEntry] = {}
    admins: dict[int, AdminEntry] = {}  # prunes and the terminations that explain them
    for position, item in enumerate(document.get("entries") or []):
        index_value = item.get("index") if isinstance(item, dict) else None
        if type(index_value) is not int:
            problems.append(f"entry at position {position} is malformed")
            leaves.append(_UNREADABLE)
            continue
        index = index_value
        if index != position:
            kind = "missing or reordered" if index > position else "duplicated or reordered"
            problems.append(
                f"entry at position {position} has index {index}: entries are {kind} "
                f"(expected index {position})"
            )
        try:
            blob = canonical_json(item.get("entry"))
            recorded = _decode_b64(item.get("leaf_hash"), f"leaf hash of entry {index}")
        except ModelpactError as exc:
            problems.append(f"entry {index}: {exc.summary}")
            leaves.append(_UNREADABLE)
            continue
        leaf = leaf_hash(blob)
        try:
            decoded = decode_entry(blob)
        except ModelpactError as exc:
            problems.append(f"entry {index}: {exc.summary}")
            decoded = None
        if isinstance(decoded, PrunedEntry) and not constant_time_equal(leaf, recorded):
            # Its payload is gone; the recorded leaf still goes into every root below.
            pruned[index] = decoded
            leaf = recorded
        elif not constant_time_equal(leaf, recorded):
            problems.append(f"entry {index} was changed: its content no longer hashes to its leaf")
        elif isinstance(decoded, AdminEntry) and decoded.action in _EXPLAINING:
            admins[index] = decoded
            if decoded.action == PRUNE_ACTION:
                prunes[index] = decoded
        leaves.append(leaf)
    report.entries = len(leaves)
    report.pruned = len(pruned)
    problems.extend(_unexplained(pruned, prunes, admins))

    # Checkpoints: signed by the key, sizes never shrinking, roots recomputed from the leaves.
    notes = document.get("checkpoints") or []
    opened: list[tuple[Checkpoint, str]] = []
    for position, note in enumerate(notes):
        try:
            checkpoint = open_checkpoint(str(note), key, name=origin)
        except ModelpactError as exc:
            problems.append(f"checkpoint {position}: {exc.summary}")
            continue
        if checkpoint.origin != origin:
            problems.append(f"checkpoint {position} is for another log ({checkpoint.origin})")
            continue
        opened.append((checkpoint, str(note)))
    report.checkpoints = len(opened)
    by_size: dict[int, Checkpoint] = {}
    for checkpoint, _ in opened:
        seen = by_size.get(checkpoint.size)
        if seen is not None and seen.root != checkpoint.root:
            problems.append(
                f"two signed checkpoints of size {checkpoint.size} disagree: the log forked"
            )
        by_size.setdefault(checkpoint.size, checkpoint)
    sizes = [c.size for c, _ in opened]
    if sizes != sorted(sizes):
        problems.append("checkpoints are not in order of size")
    frontier = Frontier()
    previous_good = 0
    for size in sorted(by_size):
        if size > len(leaves):
            problems.append(
                f"checkpoint of size {size} covers entries the export lacks "
                f"(it holds {len(leaves)}): entries were dropped"
            )
            continue
        while frontier.size < size:
            frontier.append(leaves[frontier.size])
        if not constant_time_equal(frontier.root(), by_size[size].root):
            problems.append(
                f"the entries do not match the signed checkpoint of size {size}: "
                f"an entry between {previous_good} and {size - 1} was changed, dropped or reordered"
            )
        else:
            previous_good = size

    # Every entry must be covered by a signed checkpoint: entries after the last one are
    # vouched for by nobody, however well their recorded hashes match.
    covered = max(by_size, default=0)
    if not by_size:
        problems.append("no valid signed checkpoint: nothing in the export is vouched for")
    elif covered < len(leaves):
        problems.append(
            f"entries {covered} to {len(leaves) - 1} are not covered by any signed checkpoint"
        )

    # Consistency proofs between successive checkpoints, as the log served them: one for
    # every pair, each verifying.
    wanted = {(a, b) for a, b in itertools.pairwise(sorted(s for s in by_size if s > 0))}
    given: set[tuple[int, int]] = set()
    for item in document.get("consistency") or []:
        if isinstance(item, dict) and type(item.get("old")) is int and type(item.get("new")) is int:
            given.add((item["old"], item["new"]))
        try:
            old, new = int(item["old"]), int(item["new"])
            proof = [_decode_b64(p, "consistency proof") for p in item["proof"]]
            verify_consistency(old, new, by_size[old].root, by_size[new].root, proof)
        except KeyError as exc:
            problems.append(f"consistency proof refers to an unknown checkpoint {exc}")
        except (TypeError, ValueError):
            problems.append("a consistency proof is malformed")
        except ModelpactError as exc:
            problems.append(
                f"consistency proof {item.get('old')} -> {item.get('new')}: {exc.summary}"
            )
    for old, new in sorted(wanted - given):
        problems.append(f"the consistency proof between checkpoints {old} and {new} is missing")
    return report
