"""Scoring on ciphertexts: a registered linear or logistic model run on a partner's CKKS data.

The partner keeps the secret key (:class:`~modelpact.crypto.homomorphic.SecretContext`);
the owner gets its public context and the encrypted rows, computes the scores (the
model's affine part, :func:`~modelpact.runtime.linear.linear_form`) on ciphertexts and
returns ciphertexts, with the link and the class labels the partner applies after
decrypting.  Nothing here sees a feature value or a score, and no output policy can apply
to what it cannot read: the audit log gets the digests and the row count.  TenSEAL is C++:
:mod:`modelpact.crypto.homomorphic` refuses every crash known so far before it parses, and
the gateway is to run this in a model worker process, where one unknown would cost a worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from modelpact.crypto import canonical_digest, sha256_hex
from modelpact.crypto.homomorphic import CkksParameters, PublicContext
from modelpact.errors import InvalidInput
from modelpact.runtime.linear import Link
from modelpact.services.serving import ModelServer

__all__ = ["ACCEPTED", "EncryptedPrediction", "EncryptedScorer", "Packing"]

#: The CKKS parameter sets this gateway accepts (each 128-bit secure, one multiplication):
#: the SDK's default, and a larger ring for wider rows.
ACCEPTED = (CkksParameters(), CkksParameters(16384, (60, 40, 40, 60), 40))
MAX_CONTEXT_BYTES = 16 * 1024 * 1024


class Packing(StrEnum):
    BATCH = "batch"  # one ciphertext per feature, rows in the slots
    ROWS = "rows"  # one ciphertext per row


@dataclass(frozen=True)
class EncryptedPrediction:
    """Ciphertexts of scores (batch: one per score; rows: per row, one per score), what
    turns them into outputs, and digests for the audit log."""

    packing: Packing
    scores: list[bytes]
    rows: int
    link: Link
    labels: tuple[str | int, ...] | None
    context_digest: str
    input_digest: str
    output_digest: str


def _digest(blobs: Sequence[bytes]) -> str:
    return canonical_digest([sha256_hex(b) for b in blobs])


class EncryptedScorer:
    """Partners' public contexts (a few kept, by digest: one per session is typical) and
    the scoring itself."""

    def __init__(self, server: ModelServer, *, contexts: int = 16) -> None:
        self._server = server
        self._contexts: OrderedDict[str, PublicContext] = OrderedDict()
        self._kept = contexts
        self._lock = threading.Lock()

    def context(self, data: bytes) -> tuple[str, PublicContext]:
        """A partner's public context, checked once and kept by its digest."""
        digest = "sha256:" + sha256_hex(data)
        with self._lock:
            found = self._contexts.get(digest)
            if found is not None:
                self._contexts.move_to_end(digest)
                return digest, found
        loaded: PublicContext = PublicContext.load(
            data, allowed=ACCEPTED, max_bytes=MAX_CONTEXT_BYTES
        )
        with self._lock:
            self._contexts[digest] = loaded
            while len(self._contexts) > self._kept:
                self._contexts.popitem(last=False)
        return digest, loaded

    def score(
        self,
        model: str,
        version: str,
        *,
        context: bytes,
        packing: Packing,
        ciphertexts: Sequence[bytes],
        max_rows: int,
    ) -> EncryptedPrediction:
        """Score ``ciphertexts`` under ``context`` with ``model`` ``version``'s affine part.
        :class:`InvalidInput` (one line) for a model that is not linear, a bad context or
        ciphertext, or more than ``max_rows`` rows."""
        form = self._server.linear(model, version)
        if not ciphertexts:
            raise InvalidInput("no ciphertexts to score")
        digest, public = self.context(context)
        if packing is Packing.BATCH:
            scores, rows = public.score_columns(ciphertexts, form.weights, form.bias)
        else:
            rows = len(ciphertexts)
            if rows > max_rows:
                raise InvalidInput(f"at most {max_rows} rows per request")
            scores = [c for row in public.score_rows(ciphertexts, form.weights, form.bias)
                      for c in row]  # fmt: skip
        if rows > max_rows:
            raise InvalidInput(f"at most {max_rows} rows per request")
        return EncryptedPrediction(
            packing=packing,
            scores=scores,
            rows=rows,
            link=form.link,
            labels=form.labels,
            context_digest=digest,
            input_digest=_digest(ciphertexts),
            output_digest=_digest(scores),
        )
