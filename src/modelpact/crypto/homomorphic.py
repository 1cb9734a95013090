"""CKKS (TenSEAL) for encrypted scoring: the partner keeps the secret key, the owner computes.

The partner's :class:`SecretContext` makes the keys and encrypts; it hands the owner only
:meth:`SecretContext.public` (no secret key).  The owner's :class:`PublicContext` loads that
and evaluates a linear model on ciphertexts; only the partner can decrypt the scores.

Two packings:

- *batch*: the rows are sent feature-major — one ciphertext per feature holding up to
  ``slots`` rows — so a linear model's scores are ``sum_j w_j * ct_j + b`` per class:
  plaintext multiplications and additions only, no rotations, hence no Galois keys; the
  public context is a few dozen bytes.
- *row*: one ciphertext per row, the row in the *coefficients* of the plaintext polynomial
  (``x(X) = sum_i x_i X^i``, encoded through the inverse of CKKS's canonical embedding)
  rather than in its slots.  Multiplying by the plaintext polynomial
  ``W(X) = sum_c X^(c*d) (w_c0 - sum_{i>0} w_ci X^(N-i))`` puts class ``c``'s score
  ``sum_i x_i w_ci`` in coefficient ``c*d`` of the product (negacyclic: ``X^N = -1``):
  one plaintext multiplication per row for every class together, no rotations, so no
  Galois keys — a slot-packed dot product needs log2(d) rotations (about 13 ms at
  N = 8192) and several MB of keys.  The partner reads the coefficients back from the
  decoded slots.  Every operation is SEAL's (``tenseal.sealapi``); only the encoding differs.

  What that reveals: the product's *other* coefficients hold other sums of feature-weight
  products, so a decrypted row answer tells a partner more than the scores — a crafted row
  reveals the weights (as the partial sums in the other slots of a rotate-and-sum dot
  product would).  Full-precision scores reveal a linear model in d + 1 rows anyway; see
  docs/encrypted.md.

Untrusted bytes never reach TenSEAL unchecked: deserialising a malformed vector can crash
the process (a vector with sizes but no ciphertext kills ``dot`` with SIGFPE; sizes of 1e9
exhaust memory), so both contexts and vectors are first read as protobuf here — one
ciphertext, its size within the slots, the agreed scale, no secret key — and callers still
run the computation in a worker process.  Parameters: 128-bit security per the
HomomorphicEncryption.org standard (SEAL's ``CoeffModulus.MaxBitCount`` for ``tc128``).
"""

from __future__ import annotations

import functools
import math
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput

__all__ = [
    "MAX_COEFF_BITS",
    "CkksParameters",
    "PublicContext",
    "SecretContext",
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


def _check_vector(data: bytes, params: CkksParameters) -> int:
    """The value count of a serialised CKKS vector (see :func:`_vector_parts`)."""
    return _vector_parts(data, params)[0]


def _vector_parts(data: bytes, params: CkksParameters) -> tuple[int, bytes]:
    """``(value count, SEAL ciphertext bytes)`` of a serialised CKKS vector: one ciphertext,
    one size within the slots, the agreed scale."""
    sizes: list[int] = []
    blobs: list[bytes] = []
    scales = 0
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:  # packed sizes
            at = 0
            while at < len(value):
                size, at = _varint(value, at)
                sizes.append(size)
        elif number == 1 and wire == 0:
            sizes.append(value)
        elif number == 2 and wire == 2:
            blobs.append(value)
        elif number == 3 and wire == 1:
            scales += 1
            if struct.unpack("<d", value)[0] != params.scale:
                raise InvalidInput("a ciphertext is not at the session's scale")
        else:
            raise InvalidInput("not a CKKS vector")
    if len(blobs) != 1 or len(sizes) != 1 or scales != 1:
        raise InvalidInput("a ciphertext must hold exactly one CKKS vector")
    if not 1 <= sizes[0] <= params.slots:
        raise InvalidInput(f"a ciphertext must hold 1 to {params.slots} values")
    return sizes[0], blobs[0]


def _vector(count: int, ciphertext: bytes, params: CkksParameters) -> bytes:
    """A serialised CKKS vector (TenSEAL's message) around a SEAL ciphertext."""
    return _encode([(1, 0, count), (2, 2, ciphertext), (3, 1, struct.pack("<d", params.scale))])


@functools.lru_cache(maxsize=8)
def _root_exponents(degree: int) -> npt.NDArray[np.float64]:
    """Slot k of SEAL's CKKS encoding holds the polynomial's value at zeta^(3^k mod 2N),
    zeta = exp(i pi / N): its exponents, times pi / N."""
    exponents = [pow(3, k, 2 * degree) for k in range(degree // 2)]
    return np.asarray(exponents, dtype=np.float64) * (np.pi / degree)


@functools.lru_cache(maxsize=16)
def _powers(degree: int, positions: tuple[int, ...]) -> npt.NDArray[np.complex128]:
    """root_k^j for every slot k (rows) and position j (columns)."""
    found: npt.NDArray[np.complex128] = np.exp(
        1j * np.outer(_root_exponents(degree), np.asarray(positions, dtype=np.float64))
    )
    return found


def _embed(degree: int, positions: tuple[int, ...], values: Any) -> list[complex]:
    """The slots whose encoding is the polynomial with ``values`` at ``positions``."""
    found: list[complex] = (_powers(degree, positions) @ np.asarray(values, np.float64)).tolist()
    return found


def _coefficients(
    degree: int, slots: npt.NDArray[np.complex128], positions: tuple[int, ...]
) -> npt.NDArray[np.float64]:
    """Coefficients of a real polynomial from its slots: each is the mean over all N roots
    of value x root^-j, and the roots come in conjugate pairs."""
    found: npt.NDArray[np.float64] = (2.0 / degree) * (
        slots @ np.conj(_powers(degree, positions))
    ).real
    return found


class _Scratch:
    """SEAL's Python binding saves and loads through paths only: a private scratch folder
    (in memory where the platform has one) and a lock, so threads do not share a file."""

    def __init__(self) -> None:
        import atexit
        import shutil
        import tempfile

        shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a fresh 0700 folder in it
        self._dir = Path(tempfile.mkdtemp(prefix="modelpact-", dir=shm if shm.is_dir() else None))
        self._lock = threading.Lock()
        atexit.register(shutil.rmtree, self._dir, ignore_errors=True)

    def dump(self, obj: Any) -> bytes:
        with self._lock:
            path = self._dir / "blob"
            obj.save(str(path))
            try:
                return path.read_bytes()
            finally:
                path.unlink()

    def load(self, obj: Any, context: Any, data: bytes) -> None:
        with self._lock:
            path = self._dir / "blob"
            path.write_bytes(data)
            try:
                obj.load(context, str(path))
            finally:
                path.unlink()


_SCRATCH: _Scratch | None = None


def _scratch() -> _Scratch:
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = _Scratch()
    return _SCRATCH


def _weights_polynomial(weights: Any, degree: int) -> dict[int, float]:
    """``W(X) = sum_c X^(c*d) (w_c0 - sum_{i>0} w_ci X^(N-i))``: class c's weights reversed
    behind position c*d, so that coefficient c*d of x(X) W(X) is sum_i x_i w_ci."""
    classes, width = weights.shape
    found: dict[int, float] = {}
    for c in range(classes):
        for i in range(width):
            position = c * width - i
            found[position % degree] = float(weights[c, i]) * (1.0 if position >= 0 else -1.0)
    return found


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
        self._tools: tuple[Any, Any, Any] | None = None
        self._plains: dict[tuple[Any, ...], Any] = {}

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

    def describe(self) -> dict[str, Any]:
        """What the partner asked for, to show back."""
        return {
            "degree": self.params.degree,
            "primes": list(self.params.primes),
            "scale_bits": self.params.scale_bits,
            "slots": self.params.slots,
        }

    def _seal(self) -> tuple[Any, Any, Any]:
        """SEAL's context, encoder and evaluator for this context (made once)."""
        if self._tools is None:
            _tenseal()
            import tenseal.sealapi as sealapi

            seal = self._context.seal_context().data
            self._tools = (seal, sealapi.CKKSEncoder(seal), sealapi.Evaluator(seal))
        return self._tools

    def _plain(
        self, key: tuple[Any, ...], polynomial: dict[int, float], at: Any, scale: float
    ) -> Any:
        """A plaintext polynomial at level ``at`` and ``scale``, kept (a model's weights are
        encoded once per context)."""
        found = self._plains.get(key)
        if found is None:
            import tenseal.sealapi as sealapi

            _, encoder, _ = self._seal()
            found = sealapi.Plaintext()
            positions = tuple(polynomial)
            encoder.encode(
                _embed(self.params.degree, positions, list(polynomial.values())), at, scale, found
            )
            if len(self._plains) >= 8:
                self._plains.pop(next(iter(self._plains)))
            self._plains[key] = found
        return found

    def score_rows(self, rows: Sequence[bytes], weights: Any, bias: Any) -> list[bytes]:
        """Row packing (see the module docstring): one ciphertext per row, the row's
        ``weights.shape[1]`` features in its coefficients.  Returns one ciphertext per row
        holding class ``c``'s score in coefficient ``c * width``."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        b = np.atleast_1d(np.asarray(bias, dtype=np.float64))
        classes, width = w.shape
        if len(b) != classes:
            raise InvalidInput("one bias per class")
        if classes * width > self.params.degree:
            raise InvalidInput(
                f"row packing holds classes x features up to {self.params.degree}",
                hint="use batch packing",
            )
        blobs = []
        for row in rows:
            count, blob = _vector_parts(row, self.params)
            if count != width:
                raise InvalidInput(f"each row's ciphertext must hold {width} features")
            blobs.append(blob)
        import tenseal.sealapi as sealapi

        seal, _, evaluator = self._seal()
        first = seal.first_parms_id()
        plain_w = self._plain(("w", w.tobytes()), _weights_polynomial(w, self.params.degree),
                              first, self.params.scale)  # fmt: skip
        out = []
        for blob in blobs:
            ct = sealapi.Ciphertext()
            try:
                _scratch().load(ct, seal, blob)  # SEAL's load checks it against the context
            except (ValueError, RuntimeError, TypeError, MemoryError, IndexError) as exc:
                raise InvalidInput(f"a ciphertext is malformed ({type(exc).__name__})") from None
            if ct.size() != 2 or list(ct.parms_id()) != list(first) or not ct.is_ntt_form():
                raise InvalidInput("a ciphertext is not a fresh one under this context")
            if ct.scale != self.params.scale:
                raise InvalidInput("a ciphertext is not at the session's scale")
            evaluator.multiply_plain_inplace(ct, plain_w)
            evaluator.rescale_to_next_inplace(ct)
            shifts = {c * width: float(b[c]) for c in range(classes)}
            plain_b = self._plain(("b", b.tobytes(), width, ct.scale), shifts,
                                  ct.parms_id(), ct.scale)  # fmt: skip
            evaluator.add_plain_inplace(ct, plain_b)
            out.append(_vector(classes, _scratch().dump(ct), self.params))
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
        # Symmetric: the partner encrypts under its own secret key, which it holds anyway;
        # SEAL's symmetric encryption costs about half the public-key one.
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            self.params.degree,
            coeff_mod_bit_sizes=list(self.params.primes),
            encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
        )
        self._context.global_scale = self.params.scale
        self._tools: tuple[Any, Any, Any] | None = None

    def public(self) -> bytes:
        """What the owner gets: the parameters and nothing to decrypt with (neither packing
        needs evaluation keys: a few dozen bytes)."""
        data: bytes = self._context.serialize(
            save_public_key=False,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
        return data

    def _seal(self) -> tuple[Any, Any, Any]:
        """SEAL's context, encoder and symmetric encryptor for these keys (made once)."""
        if self._tools is None:
            import tenseal.sealapi as sealapi

            seal = self._context.seal_context().data
            encryptor = sealapi.Encryptor(seal, self._context.secret_key().data)
            self._tools = (seal, sealapi.CKKSEncoder(seal), encryptor)
        return self._tools

    def _encrypt(self, values: Any, count: int) -> bytes:
        """``values`` (real or complex, at most ``slots``) encrypted under the secret key,
        serialised with its seed: SEAL writes half of a fresh symmetric ciphertext as the
        seed it was drawn from (about 115 KB instead of 235 KB at N = 8192)."""
        import tenseal.sealapi as sealapi

        _, encoder, encryptor = self._seal()
        plain = sealapi.Plaintext()
        encoder.encode(values, self.params.scale, plain)
        return _vector(count, _scratch().dump(encryptor.encrypt_symmetric(plain)), self.params)

    def encrypt_rows(self, rows: Any) -> list[bytes]:
        """Row packing: one ciphertext per row, the row in the polynomial's coefficients."""
        data = np.asarray(rows, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] > self.params.slots or not len(data):
            raise InvalidInput(f"rows must have 1 to {self.params.slots} features")
        _tenseal()
        positions = tuple(range(data.shape[1]))
        return [
            self._encrypt(_embed(self.params.degree, positions, row), data.shape[1]) for row in data
        ]

    def encrypt_columns(self, rows: Any) -> list[bytes]:
        """Rows (at most ``slots`` of them) feature-major: one ciphertext per feature."""
        data = np.asarray(rows, dtype=np.float64)
        if data.ndim != 2 or not 1 <= len(data) <= self.params.slots:
            raise InvalidInput(f"encrypt 1 to {self.params.slots} rows at a time")
        _tenseal()
        return [self._encrypt(column.tolist(), len(data)) for column in data.T]

    def decrypt_row(self, data: bytes, count: int, stride: int) -> npt.NDArray[np.float64]:
        """Row packing's answer: the ``count`` scores at coefficients 0, stride, 2 stride..."""
        _, blob = _vector_parts(data, self.params)
        import tenseal.sealapi as sealapi

        seal, encoder, _ = self._seal()
        ct, plain = sealapi.Ciphertext(), sealapi.Plaintext()
        try:
            _scratch().load(ct, seal, blob)
            sealapi.Decryptor(seal, self._context.secret_key().data).decrypt(ct, plain)
            slots = np.asarray(encoder.decode_complex(plain), dtype=np.complex128)
        except (ValueError, RuntimeError, TypeError, MemoryError, IndexError) as exc:
            raise InvalidInput(f"the scores are not readable ({type(exc).__name__})") from None
        return _coefficients(self.params.degree, slots, tuple(c * stride for c in range(count)))

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
