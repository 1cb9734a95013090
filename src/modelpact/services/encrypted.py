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
from modelpact.errors import ContextNeeded, InvalidInput
from modelpact.runtime.linear import Link
from modelpact.services.serving import ModelServer

__all__ = [
    "ACCEPTED",
    "MAX_CONTEXT_BYTES",
    "ContextShelf",
    "EncryptedPrediction",
    "EncryptedScorer",
    "Packing",
    "context_digest",
]

#: The CKKS parameter sets this gateway accepts (each 128-bit secure, one multiplication):
#: the SDK's default, and a larger ring for wider rows.
ACCEPTED = (CkksParameters(), CkksParameters(16384, (60, 40, 40, 60), 40))
MAX_CONTEXT_BYTES = 1024 * 1024  # the parameters, without keys: about 100 bytes
#: The most ciphertext bytes one answer carries (row packing: one per row and class).
MAX_ANSWER_BYTES = 40 * 1024 * 1024


class Packing(StrEnum):
    BATCH = "batch"  # one ciphertext per feature, rows in the slots
    ROWS = "rows"  # one ciphertext per row


@dataclass(frozen=True)
class EncryptedPrediction:
    """Ciphertexts of scores (batch: one per score column, the rows in its slots; rows: one
    per row, column ``c`` in coefficient ``c * features``), what turns them into outputs,
    and digests for the audit log."""

    packing: Packing
    scores: list[bytes]
    rows: int
    columns: int
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
        digest = context_digest(data)
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

    def kept(self, digest: str) -> PublicContext:
        """The context :meth:`context` checked under ``digest``; :class:`ContextNeeded` when
        it was never given or has been dropped to make room."""
        with self._lock:
            found = self._contexts.get(digest)
            if found is None:
                raise ContextNeeded(f"no encryption context {digest[:19]}… is held here")
            self._contexts.move_to_end(digest)
            return found

    def score(
        self,
        model: str,
        version: str,
        *,
        context: str,
        packing: Packing,
        ciphertexts: Sequence[bytes],
        rows: int,
        max_rows: int,
    ) -> EncryptedPrediction:
        """Score ``ciphertexts`` under the context kept as ``context`` (a digest) with
        ``model`` ``version``'s affine part.  ``rows``: how many rows the partner says they
        hold (what was metered); they must hold exactly that many.  :class:`InvalidInput`
        (one line) for a model that is not linear, a bad ciphertext, a row count that is
        not the one declared or over ``max_rows``."""
        if not 1 <= rows <= max_rows:
            raise InvalidInput(f"send 1 to {max_rows} rows per request, not {rows}")
        form = self._server.linear(model, version)
        if not ciphertexts:
            raise InvalidInput("no ciphertexts to score")
        public = self.kept(context)
        if packing is Packing.BATCH:
            scores, found = public.score_columns(ciphertexts, form.weights, form.bias)
        else:
            found = len(ciphertexts)
            if found == rows:
                scores = public.score_rows(ciphertexts, form.weights, form.bias)
        if found != rows:
            raise InvalidInput(f"the ciphertexts hold {found} rows, not the {rows} declared")
        if sum(len(c) for c in scores) > MAX_ANSWER_BYTES:
            raise InvalidInput(
                f"the encrypted scores of {rows} rows are over {MAX_ANSWER_BYTES} bytes",
                hint="send fewer rows per request",
            )
        return EncryptedPrediction(
            packing=packing,
            scores=scores,
            rows=rows,
            columns=int(form.weights.shape[0]),
            link=form.link,
            labels=form.labels,
            context_digest=context,
            input_digest=_digest(ciphertexts),
            output_digest=_digest(scores),
        )


def context_digest(data: bytes) -> str:
    """The name a serialised context goes by: ``sha256:`` and its hex digest."""
    return "sha256:" + sha256_hex(data)


class ContextShelf:
    """The gateway's copy of the public contexts each session uploaded (the bytes: the
    model workers keep parsed ones, and are sent the bytes again when they dropped them).

    A few per session (a partner may use both packings, each with its own keys), bounded in
    total: the least recently used go first, and a request under a dropped context answers
    :class:`ContextNeeded` (the SDK uploads it again).
    """

    def __init__(self, *, max_bytes: int = 256 * 1024 * 1024, per_session: int = 4) -> None:
        self._held: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._max = max_bytes
        self._per_session = per_session
        self._size = 0
        self._lock = threading.Lock()

    def put(self, session: str, digest: str, data: bytes) -> None:
        with self._lock:
            self._remove((session, digest))
            self._held[(session, digest)] = data
            self._size += len(data)
            mine = [key for key in self._held if key[0] == session]
            for key in mine[: max(0, len(mine) - self._per_session)]:
                self._remove(key)
            while self._size > self._max and len(self._held) > 1:
                self._remove(next(iter(self._held)))

    def get(self, session: str, digest: str) -> bytes:
        """The context ``session`` uploaded as ``digest``; :class:`ContextNeeded` otherwise."""
        with self._lock:
            found = self._held.get((session, digest))
            if found is None:
                raise ContextNeeded(f"this session holds no encryption context {digest[:19]}…")
            self._held.move_to_end((session, digest))
            return found

    def drop(self, session: str) -> None:
        """Forget every context of ``session`` (it closed)."""
        with self._lock:
            for key in [key for key in self._held if key[0] == session]:
                self._remove(key)

    def _remove(self, key: tuple[str, str]) -> None:
        old = self._held.pop(key, None)
        if old is not None:
            self._size -= len(old)
