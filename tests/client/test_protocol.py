"""The SDK's pure parts: rows in, problems to errors, receipts against proofs."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from modelpact.audit.checkpoint import Checkpoint
from modelpact.audit.tree import Frontier, inclusion_proof, leaf_hash
from modelpact.client.protocol import as_rows, check_inclusion, error_from, renew_due
from modelpact.errors import (
    AuditUnavailable,
    Denied,
    InvalidInput,
    ProofInvalid,
    QuotaExhausted,
    ServerError,
    Unauthenticated,
)
from modelpact.wire import PROBLEM_BASE, InclusionProof, Receipt, SessionGrant

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_rows_come_from_arrays_frames_and_lists() -> None:
    assert as_rows(np.array([[1, 2], [3, 4]])) == [[1.0, 2.0], [3.0, 4.0]]
    assert as_rows([[1, 2.5]]) == [[1.0, 2.5]]

    class Frame:
        def to_numpy(self) -> Any:
            return np.array([[0.5]])

    assert as_rows(Frame()) == [[0.5]]


@pytest.mark.parametrize(
    "rows",
    [[], "abc", [[1.0, float("nan")]], [[float("inf")]], [["1"]], [[True]], [1.0], None],
    ids=["empty", "text", "nan", "inf", "string", "bool", "flat", "none"],
)
def test_bad_rows_are_refused_before_sending(rows: Any) -> None:
    with pytest.raises(InvalidInput):
        as_rows(rows)


def problem(status: int, kind: str, **extra: Any) -> httpx.Response:
    body = {"type": PROBLEM_BASE + kind, "title": kind, "status": status, "detail": "why"} | extra
    return httpx.Response(status, json=body)


def test_problems_become_typed_errors() -> None:
    denied = error_from(problem(403, "denied", reasons=["no grant"]))
    assert isinstance(denied, Denied) and denied.reasons == ("no grant",)
    assert isinstance(error_from(problem(401, "unauthenticated")), Unauthenticated)
    quota = error_from(problem(429, "quota-exhausted", retry_after=3.5))
    assert isinstance(quota, QuotaExhausted) and quota.retry_after == 3.5
    from_header = error_from(
        httpx.Response(
            429, json={"type": PROBLEM_BASE + "quota-exhausted"}, headers={"Retry-After": "7"}
        )
    )
    assert isinstance(from_header, QuotaExhausted) and from_header.retry_after == 7.0
    assert isinstance(error_from(problem(503, "audit-unavailable")), AuditUnavailable)
    assert isinstance(error_from(problem(500, "something-new")), ServerError)
    assert isinstance(error_from(httpx.Response(502, text="<html>")), ServerError)


def test_sessions_are_renewed_shortly_before_they_expire() -> None:
    grant = SessionGrant(
        token="t",
        partner="acme",
        charter="c",
        charter_version=1,
        purpose="p",
        expires_at=NOW + timedelta(seconds=60),
    )
    assert renew_due(None, NOW)
    assert not renew_due(grant, NOW)
    assert renew_due(grant, NOW + timedelta(seconds=57))


def tree(entries: list[bytes]) -> tuple[Checkpoint, dict[tuple[int, int], bytes]]:
    frontier = Frontier()
    nodes: dict[tuple[int, int], bytes] = {}
    for entry in entries:
        nodes.update(frontier.append(leaf_hash(entry)))
    return Checkpoint("example.com/log", frontier.size, frontier.root()), nodes


class Reader:
    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self._nodes = nodes

    def nodes(self, ids: Any) -> dict[tuple[int, int], bytes]:
        return {i: self._nodes[i] for i in ids if i in self._nodes}


def test_receipts_verify_against_the_checkpoint_and_nothing_else() -> None:
    entries = [f"entry {i}".encode() for i in range(11)]
    checkpoint, nodes = tree(entries)
    leaf = leaf_hash(entries[6])
    receipt = Receipt(index=6, leaf_hash=b64(leaf), log_origin="example.com/log")
    hashes = [b64(h) for h in inclusion_proof(6, 11, Reader(nodes))]
    proof = InclusionProof(index=6, size=11, leaf_hash=b64(leaf), proof=hashes)
    check_inclusion(receipt, proof, checkpoint)
    other = Receipt(index=6, leaf_hash=b64(leaf_hash(b"forged")), log_origin="example.com/log")
    with pytest.raises(ProofInvalid, match="not the one the receipt names"):
        check_inclusion(other, proof, checkpoint)
    with pytest.raises(ProofInvalid):
        check_inclusion(receipt, proof.model_copy(update={"size": 10}), checkpoint)
    with pytest.raises(ProofInvalid):
        check_inclusion(receipt, proof.model_copy(update={"proof": hashes[:-1]}), checkpoint)
