"""The partner's side of encrypted predictions: keys, encryption, decryption and the link.

The secret key never leaves this process.  :class:`Encryption` makes one CKKS key set
per packing and row width (parameters picked for the model: see :func:`parameters_for`)
and keeps it for the client's life; each new session gets the public part (the
parameters, no keys) uploaded once.
The gateway answers ciphertexts of the model's scores with the link that turns them into
outputs, which is applied here, after decrypting: the outputs have the shape of a plain
``scores`` grant's (``{"scores": [{"label", "score"}, ...]}``, a regressor's
``{"value": v}``), at full precision (CKKS is approximate: about 1e-5 off here).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from modelpact.crypto import sha256_hex
from modelpact.crypto.homomorphic import CkksParameters, SecretContext
from modelpact.errors import InvalidInput, ServerError
from modelpact.wire import EncryptedPredictResponse, Receipt, pack_ciphertexts

__all__ = [
    "ROWS_PER_REQUEST",
    "EncryptedPrediction",
    "Encryption",
    "Keys",
    "Packing",
    "link_outputs",
    "parameters_for",
]

Packing = Literal["batch", "rows"]
#: Rows per request in row packing (row packing is for latency: a row or a few at a time;
#: each row is a ciphertext of about 115 KB, and so is its answer).
ROWS_PER_REQUEST = 16
#: The largest ring: 8,192 slots, so row packing of rows up to that wide.
_WIDE = CkksParameters(16384, (60, 40, 40, 60), 40)


def parameters_for(packing: Packing, width: int) -> CkksParameters:
    """The smallest parameter set the gateway accepts that holds a row of ``width``
    features in row packing; batch packing holds any width in the default ring."""
    if packing not in ("batch", "rows"):
        raise InvalidInput(f"packing must be 'batch' or 'rows', not {str(packing)[:20]!r}")
    if width < 1:
        raise InvalidInput("rows need at least one feature")
    default = CkksParameters()
    if packing == "batch" or width <= default.slots:
        return default
    if width <= _WIDE.slots:
        return _WIDE
    raise InvalidInput(f"row packing holds at most {_WIDE.slots} features; use batch packing")


@dataclass
class Keys:
    """One key set: the secret context, and its public part as uploaded."""

    secret: SecretContext
    public: bytes
    digest: str
    uploaded: set[str] = field(default_factory=set)  # session tokens it was uploaded in


@dataclass(frozen=True, slots=True)
class EncryptedPrediction:
    """Decrypted outputs, one per row; the raw scores (rows x columns); one receipt per
    request the rows took."""

    model: str
    version: str
    packing: Packing
    outputs: list[dict[str, Any]]
    scores: npt.NDArray[np.float64]
    receipts: list[Receipt]


class Encryption:
    """The client's key sets, made on first use and kept."""

    def __init__(self) -> None:
        self._keys: dict[tuple[Packing, int], Keys] = {}

    def keys(self, packing: Packing, width: int) -> Keys:
        params = parameters_for(packing, width)
        found = self._keys.get((packing, width))
        if found is None:
            secret = SecretContext(params)
            public = secret.public()
            found = Keys(secret, public, "sha256:" + sha256_hex(public))
            self._keys[(packing, width)] = found
        return found

    @staticmethod
    def chunk_size(keys: Keys, packing: Packing, limit: int | None) -> int:
        """Rows per request: a ciphertext's slots in batch packing, a few in row packing
        (each row is a ciphertext of hundreds of KB, and so is each of its scores), the
        charter's limit (when known) below that."""
        most = keys.secret.params.slots if packing == "batch" else ROWS_PER_REQUEST
        return max(1, min(most, limit or most))

    @staticmethod
    def body(keys: Keys, packing: Packing, rows: npt.NDArray[np.float64]) -> bytes:
        if packing == "batch":
            return pack_ciphertexts(keys.secret.encrypt_columns(rows))
        return pack_ciphertexts(keys.secret.encrypt_rows(rows))

    @staticmethod
    def read(
        keys: Keys, packing: Packing, rows: Any, answer: EncryptedPredictResponse
    ) -> npt.NDArray[np.float64]:
        """The scores (rows x columns) in ``answer`` to the request that sent ``rows``,
        after checking it is that answer; :class:`ServerError` when it is not."""
        count, width = rows.shape
        if answer.context != keys.digest or answer.rows != count or answer.packing != packing:
            raise ServerError("the gateway's encrypted answer is not for this request")
        if not 1 <= answer.columns <= max(1, keys.secret.params.degree // width):
            raise ServerError("the gateway's encrypted answer has no sensible score columns")
        try:
            blobs = [base64.b64decode(s, validate=True) for s in answer.scores]
        except (binascii.Error, ValueError):
            raise ServerError("the gateway's encrypted scores are not base64") from None
        if packing == "batch":
            if len(blobs) != answer.columns:
                raise ServerError("the gateway answered another number of score columns")
            return np.stack([keys.secret.decrypt(b, count) for b in blobs], axis=1)
        if len(blobs) != count:
            raise ServerError("the gateway answered another number of rows")
        return np.stack([keys.secret.decrypt_row(b, answer.columns, width) for b in blobs])


def link_outputs(
    link: str, labels: list[str | int] | None, scores: npt.NDArray[np.float64]
) -> list[dict[str, Any]]:
    """The outputs a plain ``scores`` grant would show, from decrypted scores."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if link == "identity":
        if s.shape[1] == 1:
            return [{"value": float(v)} for v in s[:, 0]]
        return [{"value": [float(v) for v in row]} for row in s]
    if link == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-s[:, :1]))
        probabilities = np.hstack([1.0 - p, p])
    elif link == "softmax":
        e = np.exp(s - s.max(axis=1, keepdims=True))
        probabilities = e / e.sum(axis=1, keepdims=True)
    else:
        raise ServerError(f"the gateway named an unknown link {link[:20]!r}")
    columns = labels or list(range(probabilities.shape[1]))
    if len(columns) != probabilities.shape[1]:
        raise ServerError("the gateway's labels do not match its scores")
    return [
        {"scores": [{"label": c, "score": float(v)} for c, v in zip(columns, row, strict=True)]}
        for row in probabilities
    ]
