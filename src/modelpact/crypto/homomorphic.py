"""CKKS (TenSEAL) for encrypted scoring: the partner keeps the secret key, the owner computes.

The partner's :class:`SecretContext` makes the keys and encrypts; it hands the owner only
:meth:`SecretContext.public` (no secret key).  The owner's :class:`PublicContext` loads that
and evaluates a linear model on ciphertexts; only the partner can decrypt the scores.

Two packings:

- *batch*: the rows are sent feature-major — one ciphertext per feature holding up to
  ``slots`` rows — so a linear model's scores are ``sum_j w_j * ct_j + b`` per class:
  plaintext multiplications and additions only, no rotations, hence no Galois keys; the
  public context is a few dozen bytes.
- *row*: one ciphertext per row; a score is a dot product, whose sum over the slots needs
  rotations by the powers of two below the row's width.  TenSEAL's Python API makes Galois
  keys for every power of two (35 MB at N = 8192); SEAL's key generator (``tenseal.sealapi``)
  makes just the ones needed, which are placed in the public context (about 4 MB).

Untrusted bytes never reach TenSEAL unchecked: deserialising a malformed vector can crash
the process (a vector with sizes but no ciphertext kills ``dot`` with SIGFPE; sizes of 1e9
exhaust memory), so both contexts and vectors are first read as protobuf here — one
ciphertext, its size within the slots, the agreed scale, no secret key — and callers still
run the computation in a worker process.  Parameters: 128-bit security per the
HomomorphicEncryption.org standard (SEAL's ``CoeffModulus.MaxBitCount`` for ``tc128``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput

__all__ = [
    "MAX_COEFF_BITS",
    "CkksParameters",
    "PublicContext",
    "SecretContext",
    "rotation_steps",
]

#: The largest total coefficient modulus (bits) for 128-bit security, per polynomial degree
#: (HomomorphicEncryption.org standard; SEAL's CoeffModulus.MaxBitCount, tc128).
MAX_COEFF_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}


@dataclass(frozen=True)
class CkksParameters:
    """A CKKS parameter set: degree N (N/2 slots), the coefficient primes' bit sizes, and
    the scale (2^scale_bits).  One plaintext multiplication uses one middle prime."""

    degree: int = 8192
    primes: tuple[int, ...] = (60, 40, 60)
    scale_bits: int = 40

    @property
    def slots(self) -> int:
        return self.degree // 2

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    def check(self) -> None:
        """Raise :class:`InvalidInput` unless these are 128-bit secure and leave room for one
        plaintext multiplication at this scale."""
        limit = MAX_COEFF_BITS.get(self.degree)
        if limit is None:
            raise InvalidInput(f"CKKS degree must be one of {sorted(MAX_COEFF_BITS)}")
        if sum(self.primes) > limit:
            raise InvalidInput(
                f"{sum(self.primes)} bits of coefficient modulus at degree {self.degree} are "
                f"below 128-bit security (at most {limit})"
            )
        if len(self.primes) < 3 or any(not 20 <= p <= 60 for p in self.primes):
            raise InvalidInput("CKKS needs at least three primes of 20 to 60 bits each")
        if not 20 <= self.scale_bits <= min(self.primes[1:-1]):
            raise InvalidInput("the CKKS scale must fit the middle primes (20 bits or more)")
        if self.primes[0] < self.scale_bits + 10 or self.primes[-1] < max(self.primes[:-1]):
            raise InvalidInput("the first and last CKKS primes must exceed the scale")


# -- protobuf, just enough to check TenSEAL's messages before TenSEAL parses them ------------


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise InvalidInput("not a TenSEAL message (truncated)")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message, in order."""
    found: list[tuple[int, int, Any]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise InvalidInput("not a TenSEAL message (unknown wire type)")
        if at > len(data) or number == 0:
            raise InvalidInput("not a TenSEAL message (truncated)")
        found.append((number, wire, value))
    return found


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _encode(fields: Sequence[tuple[int, int, Any]]) -> bytes:
    """A protobuf message from (field number, wire type, value), as :func:`_fields` reads."""
    out = bytearray()
    for number, wire, value in fields:
        out += _encode_varint(number << 3 | wire)
        if wire == 0:
            out += _encode_varint(value)
        elif wire == 2:
            out += _encode_varint(len(value)) + value
        else:
            out += value
    return bytes(out)


def rotation_steps(width: int) -> list[int]:
    """The rotations TenSEAL's ``sum``/``dot`` make over ``width`` slots: every power of two
    below it, and those of what is left after the largest power of two, recursively."""
    steps: set[int] = set()
    while width > 1:
        top = 1 << (width.bit_length() - 1)
        steps.update(1 << i for i in range(top.bit_length() - 1))
        if top == width:
            break
        steps.add(top)
        width -= top
    return sorted(steps)


def _check_vector(data: bytes, params: CkksParameters) -> int:
    """The slot count of a serialised CKKS vector: one ciphertext, one size within the slots,
    the agreed scale."""
    sizes: list[int] = []
    ciphertexts = scales = 0
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:  # packed sizes
            at = 0
            while at < len(value):
                size, at = _varint(value, at)
                sizes.append(size)
        elif number == 1 and wire == 0:
            sizes.append(value)
        elif number == 2 and wire == 2:
            ciphertexts += 1
        elif number == 3 and wire == 1:
            scales += 1
            if struct.unpack("<d", value)[0] != params.scale:
                raise InvalidInput("a ciphertext is not at the session's scale")
        else:
            raise InvalidInput("not a CKKS vector")
    if ciphertexts != 1 or len(sizes) != 1 or scales != 1:
        raise InvalidInput("a ciphertext must hold exactly one CKKS vector")
    if not 1 <= sizes[0] <= params.slots:
        raise InvalidInput(f"a ciphertext must hold 1 to {params.slots} values")
    return sizes[0]


def _tenseal() -> Any:
    try:
        import tenseal
    except ImportError:
        raise InvalidInput(
            "encrypted inference needs TenSEAL",
            hint="pip install 'modelpact[encrypted]' (or the server install)",
        ) from None
    return tenseal


def _context_parameters(context: Any) -> CkksParameters:
    """The parameters a loaded context was made with (its modulus chain, level by level)."""
    data = context.seal_context().data
    top = data.key_context_data()
    degree = int(top.parms().poly_modulus_degree())
    bits, level = [], top
    while level is not None:
        bits.append(int(level.total_coeff_modulus_bit_count()))
        level = level.next_context_data()
    # From the key level down each level drops one prime: the special prime first, the
    # first data prime last.
    dropped = [a - b for a, b in zip(bits, [*bits[1:], 0], strict=True)]
    return CkksParameters(degree, tuple(reversed(dropped)), round(math.log2(context.global_scale)))


class PublicContext:
    """The owner's side: a partner's public CKKS context, checked, and linear scoring."""

    def __init__(self, context: Any, params: CkksParameters) -> None:
        self._context = context
        self.params = params

    @classmethod
    def load(cls, data: bytes, *, allowed: Sequence[CkksParameters], max_bytes: int) -> Any:
        """A partner's serialised context.  Refused (:class:`InvalidInput`, nothing kept):
        over ``max_bytes``, not a TenSEAL context, carrying a secret key, not CKKS, or made
        with parameters other than ``allowed`` (each 128-bit secure)."""
        if not isinstance(data, bytes) or not data:
            raise InvalidInput("the encryption context is empty")
        if len(data) > max_bytes:
            raise InvalidInput(f"the encryption context is over {max_bytes} bytes")
        numbers = {number for number, _, _ in _fields(data)}
        if 3 in numbers:
            raise InvalidInput(
                "the encryption context carries its secret key: it never leaves the partner",
                hint="serialise it with save_secret_key=False",
            )
        if not {1, 2} <= numbers or not numbers <= {1, 2, 4}:
            raise InvalidInput("not a TenSEAL public context")
        ts = _tenseal()
        try:
            context = ts.context_from(data, n_threads=1)
        except (ValueError, RuntimeError, TypeError, MemoryError, IndexError) as exc:
            raise InvalidInput(f"not a usable encryption context ({type(exc).__name__})") from None
        if context.has_secret_key() or context.is_private():
            raise InvalidInput("the encryption context carries its secret key")
        try:
            params = _context_parameters(context)
        except (ValueError, RuntimeError, AttributeError):
            raise InvalidInput("not a CKKS context") from None
        if params not in allowed:
            raise InvalidInput(
                f"CKKS parameters N={params.degree}, primes {list(params.primes)}, scale "
                f"2^{params.scale_bits} are not among those this gateway accepts"
            )
        return cls(context, params)

    def score_rows(self, rows: Sequence[bytes], weights: Any, bias: Any) -> list[list[bytes]]:
        """Row packing: one ciphertext per row of ``weights.shape[1]`` features.  Returns,
        per row, one ciphertext per class whose first slot is the score."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        b = np.atleast_1d(np.asarray(bias, dtype=np.float64))
        if len(b) != w.shape[0]:
            raise InvalidInput("one bias per class")
        if w.shape[1] > 1 and not self._context.has_galois_keys():
            raise InvalidInput(
                "row packing needs the context's Galois keys", hint="or use batch packing"
            )
        for row in rows:
            if _check_vector(row, self.params) != w.shape[1]:
                raise InvalidInput(f"each row's ciphertext must hold {w.shape[1]} features")
        ts = _tenseal()
        out = []
        try:
            for row in rows:
                vector = ts.ckks_vector_from(self._context, row)
                out.append(
                    [
                        (vector.dot(weight.tolist()) + float(shift)).serialize()
                        for weight, shift in zip(w, b, strict=True)
                    ]
                )
        except (RuntimeError, TypeError, MemoryError, IndexError) as exc:
            raise InvalidInput(f"a ciphertext is malformed ({type(exc).__name__})") from None
        except ValueError as exc:  # a Galois key missing, or the scale out of bounds
            raise InvalidInput(f"the context cannot carry this computation ({exc})") from None
        return out

    def score_columns(
        self, columns: Sequence[bytes], weights: Any, bias: Any
    ) -> tuple[list[bytes], int]:
        """Batch packing: ``columns`` one ciphertext per feature (rows in slots), ``weights``
        classes x features, ``bias`` per class.  Returns one ciphertext of scores per class,
        and the row count."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        b = np.atleast_1d(np.asarray(bias, dtype=np.float64))
        if len(columns) != w.shape[1] or len(b) != w.shape[0]:
            raise InvalidInput(f"send one ciphertext per feature: {w.shape[1]} of them")
        sizes = {_check_vector(c, self.params) for c in columns}
        if len(sizes) != 1:
            raise InvalidInput("every feature's ciphertext must hold the same rows")
        ts = _tenseal()
        try:
            vectors = [ts.ckks_vector_from(self._context, c) for c in columns]
        except (ValueError, RuntimeError, TypeError, MemoryError, IndexError) as exc:
            raise InvalidInput(f"a ciphertext is malformed ({type(exc).__name__})") from None
        out = []
        try:
            for weight, shift in zip(w, b, strict=True):
                total = vectors[0] * float(weight[0])
                for vector, value in zip(vectors[1:], weight[1:], strict=True):
                    total += vector * float(value)
                out.append((total + float(shift)).serialize())
        except ValueError as exc:  # "scale out of bounds": parameters too small for this
            raise InvalidInput(f"the ciphertexts cannot carry this computation ({exc})") from None
        return out, sizes.pop()


class SecretContext:
    """The partner's side: keys (the secret one stays here), encryption and decryption."""

    def __init__(self, params: CkksParameters | None = None) -> None:
        self.params = params or CkksParameters()
        self.params.check()
        ts = _tenseal()
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS, self.params.degree, coeff_mod_bit_sizes=list(self.params.primes)
        )
        self._context.global_scale = self.params.scale

    def public(self, *, row_width: int | None = None) -> bytes:
        """What the owner gets: the parameters and nothing to decrypt with.  Batch packing
        needs no keys at all; ``row_width``: row packing of rows that wide, with Galois keys
        for just the rotations a dot product over them makes."""
        data: bytes = self._context.serialize(
            save_public_key=False,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
        if row_width is None:
            return data
        if not 1 <= row_width <= self.params.slots:
            raise InvalidInput(f"rows must have 1 to {self.params.slots} features")
        keys = self._galois_keys(rotation_steps(row_width))
        fields = _fields(data)
        for index, (number, wire, value) in enumerate(fields):
            if number == 2:  # TenSEALPublicProto: field 5 holds the Galois keys
                public = [f for f in _fields(value) if f[0] != 5] + [(5, 2, keys)]
                fields[index] = (number, wire, _encode(public))
        return _encode(fields)

    def _galois_keys(self, steps: Sequence[int]) -> bytes:
        import tempfile
        from pathlib import Path

        _tenseal()
        import tenseal.sealapi as sealapi

        generator = sealapi.KeyGenerator(
            self._context.seal_context().data, self._context.secret_key().data
        )
        keys = sealapi.GaloisKeys()
        # SEAL takes Galois elements: a rotation by s slots is the element 3^s mod 2N.
        generator.create_galois_keys([pow(3, s, 2 * self.params.degree) for s in steps], keys)
        with tempfile.TemporaryDirectory() as scratch:  # SEAL's binding saves to paths only
            path = Path(scratch) / "galois"
            keys.save(str(path))
            return path.read_bytes()

    def encrypt_rows(self, rows: Any) -> list[bytes]:
        """Row packing: one ciphertext per row."""
        data = np.asarray(rows, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] > self.params.slots or not len(data):
            raise InvalidInput(f"rows must have 1 to {self.params.slots} features")
        ts = _tenseal()
        return [ts.ckks_vector(self._context, row.tolist()).serialize() for row in data]

    def encrypt_columns(self, rows: Any) -> list[bytes]:
        """Rows (at most ``slots`` of them) feature-major: one ciphertext per feature."""
        data = np.asarray(rows, dtype=np.float64)
        if data.ndim != 2 or not 1 <= len(data) <= self.params.slots:
            raise InvalidInput(f"encrypt 1 to {self.params.slots} rows at a time")
        ts = _tenseal()
        return [ts.ckks_vector(self._context, column.tolist()).serialize() for column in data.T]

    def decrypt(self, data: bytes, count: int) -> npt.NDArray[np.float64]:
        """The first ``count`` values of a ciphertext of scores."""
        _check_vector(data, self.params)
        ts = _tenseal()
        try:
            values = ts.ckks_vector_from(self._context, data).decrypt()
        except (ValueError, RuntimeError, TypeError, MemoryError, IndexError) as exc:
            raise InvalidInput(f"the scores are not readable ({type(exc).__name__})") from None
        found: npt.NDArray[np.float64] = np.asarray(values[:count], dtype=np.float64)
        return found
