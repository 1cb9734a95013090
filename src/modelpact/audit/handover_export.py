"""Verify an audit export across owner-key handovers.

:func:`~modelpact.audit.bundle.verify_export` checks an export against one key.  After a
handover the log's checkpoints are signed by two or more keys, each for its own range of
tree sizes.  :func:`verify_export_following` finds the handovers among the exported
entries, follows them from the key the auditor trusts
(:func:`~modelpact.audit.handover.follow_handovers`), and then:

- hands :func:`verify_export` the export as the current key sees it: the checkpoints
  signed by the current key (and any signed by no key of the chain, so they are reported),
  with the consistency proofs between them; it checks every entry, every root it covers
  and that every entry is covered (a checkpoint signed by no key of the chain, or by a
  retired key for a tree it no longer signs, is reported here);
- checks the earlier keys' checkpoints itself: each signed by the key in force for its
  size, no two of one size disagreeing, and a consistency proof from each to the next
  checkpoint, up to the first one the current key signed, which ties them to the entries.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from modelpact.audit.bundle import EXPORT_FORMAT, ExportReport, verify_export
from modelpact.audit.checkpoint import Checkpoint
from modelpact.audit.handover import KeyChain, follow_handovers, handovers_in
from modelpact.audit.tree import verify_consistency
from modelpact.crypto import VerifyKey, canonical_json
from modelpact.errors import InvalidInput, ModelpactError

__all__ = ["export_key_chain", "verify_export_following"]


def _document(text: str) -> dict[str, Any] | None:
    """The export's JSON object, or None where :func:`verify_export` must say what is wrong."""
    try:
        document = json.loads(text)
    except (RecursionError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        return None
    return document


def export_key_chain(document: dict[str, Any], trusted: VerifyKey) -> KeyChain:
    """The owner keys of an export's log, followed from ``trusted`` through its handovers."""
    origin = document.get("origin")
    if not isinstance(origin, str):
        raise InvalidInput("the export names no log origin")
    blobs: list[tuple[int, bytes]] = []
    for position, item in enumerate(document.get("entries") or []):
        if isinstance(item, dict) and isinstance(item.get("entry"), dict):
            try:
                blobs.append((position, canonical_json(item["entry"])))
            except ModelpactError:
                continue  # verify_export reports it
    return follow_handovers(trusted, handovers_in(blobs), origin=origin)


def _proof(item: Any) -> tuple[int, int, list[bytes]] | None:
    try:
        old, new = item["old"], item["new"]
        if type(old) is not int or type(new) is not int:
            return None
        return old, new, [base64.b64decode(p, validate=True) for p in item["proof"]]
    except (KeyError, TypeError, binascii.Error, ValueError):
        return None


def verify_export_following(text: str, trusted: VerifyKey) -> ExportReport:
    """Check an export offline, trusting ``trusted`` and the handovers it leads to."""
    document = _document(text)
    if document is None:
        return verify_export(text, trusted)  # raises, naming what is wrong
    try:
        chain = export_key_chain(document, trusted)
    except ModelpactError as exc:
        report = verify_export(text, trusted)
        report.problems.insert(0, f"owner-key handovers: {exc.summary}")
        return report
    if len(chain.keys) == 1:
        return verify_export(text, trusted)
    current = chain.current
    earlier: dict[int, Checkpoint] = {}
    problems: list[str] = []
    kept: list[Any] = []
    current_sizes: dict[int, Checkpoint] = {}
    for position, note in enumerate(document.get("checkpoints") or []):
        try:
            checkpoint = chain.open_checkpoint(str(note))
        except ModelpactError as exc:
            problems.append(f"checkpoint {position}: {exc.summary}")
            continue
        if chain.key_for(checkpoint.size) == current:
            kept.append(note)
            current_sizes.setdefault(checkpoint.size, checkpoint)
            continue
        seen = earlier.get(checkpoint.size)
        if seen is not None and seen.root != checkpoint.root:
            problems.append(
                f"two signed checkpoints of size {checkpoint.size} disagree: the log forked"
            )
        earlier.setdefault(checkpoint.size, checkpoint)
    proofs = [_proof(item) for item in document.get("consistency") or []]
    ours = [
        item
        for item, parsed in zip(document.get("consistency") or [], proofs, strict=True)
        if parsed is None or (parsed[0] not in earlier and parsed[1] not in earlier)
    ]
    sub = dict(document, public_key=current.encode(), checkpoints=kept, consistency=ours)
    report = verify_export(json.dumps(sub), current)
    report.problems[:0] = problems
    report.checkpoints += len(earlier)
    # Tie the earlier keys' checkpoints to the next one by consistency proofs.
    sizes = sorted(s for s in earlier if s > 0)
    following = sorted(s for s in current_sizes if s > 0)
    given = {(p[0], p[1]): p[2] for p in proofs if p is not None}
    for position, old in enumerate(sizes):
        later = sizes[position + 1 :] + following
        if not later:
            report.problems.append(
                f"the checkpoint of size {old} (by a retired key) is followed by none "
                "that the current key signed"
            )
            continue
        new = later[0]
        new_root = (earlier.get(new) or current_sizes[new]).root
        proof = given.get((old, new))
        if proof is None:
            report.problems.append(
                f"the consistency proof between checkpoints {old} and {new} is missing"
            )
            continue
        try:
            verify_consistency(old, new, earlier[old].root, new_root, proof)
        except ModelpactError as exc:
            report.problems.append(f"consistency proof {old} -> {new}: {exc.summary}")
    return report
