"""Serving registered models: resolve a version, load it once, predict, shape, digest.

:class:`ModelServer` is what the gateway runs a prediction through.  A model
version is verified (wrapped key, ciphertext, digest, owner's signature) and
decrypted into memory the first time it is asked for; the plaintext goes
straight into an onnxruntime session and is never written to disk by this
module.  (:meth:`ModelRegistry.verify` itself hands the plaintext to
``model-signing`` through a private scratch folder, memory-backed on hosts with
``/dev/shm``; see :func:`modelpact.crypto.plaintext_scratch`.)  Loaded versions
are kept in a small LRU cache: versions are immutable, so a cached session never
goes stale, and a rollback only changes which version :meth:`ModelServer.resolve`
names.

Every batch is checked before it reaches the model, each fault one line the
gateway turns into a 4xx, and no message ever quotes a feature value (they are
the partner's data).  The audit log records only :class:`Prediction`'s digests.
"""

from __future__ import annotations

import math
import numbers
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.charter import SLUG_PATTERN, OutputPolicy
from modelpact.crypto import PrfKey, canonical_digest, constant_time_equal, sha256_hex
from modelpact.errors import InvalidInput, ModelpactError, NotFound, Tampered, quote_untrusted
from modelpact.marks import KeyedRotation, Watermark, tilt_basis
from modelpact.monitor import TrainingSummary, margins
from modelpact.runtime import PredictionFailed, Predictor, shape_outputs
from modelpact.runtime.linear import LinearForm, linear_form
from modelpact.runtime.shaping import LABEL_OUTPUT, SCORES_OUTPUT
from modelpact.services.registry import ModelRegistry
from modelpact.services.state_cache import StateCache, StateView
from modelpact.services.workspace import Workspace
from modelpact.store import UnitOfWork

__all__ = ["ModelServer", "Prediction", "class_labels"]

_NAME = re.compile(SLUG_PATTERN)
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,62}$")  # as the registry accepts
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MARKS_KEPT = 4096  # partners' watermarks kept per loaded version
#: skl2onnx writes a classifier's classes, in score-column order, in one of these.
_CLASS_ATTRIBUTES = ("classlabels_ints", "classlabels_int64s", "classlabels_strings")


@dataclass(frozen=True, slots=True)
class Prediction:
    """A shaped answer and the digests the audit log keeps instead of inputs and outputs.

    Both digests are ``sha256:<hex>`` of the RFC 8785 canonical JSON of the rows
    (as numbers) and of ``outputs``, so a partner can recompute them.
    """

    outputs: list[dict[str, object]]
    input_digest: str
    output_digest: str
    #: Per row, the model's top class score minus the runner-up, whatever the partner is
    #: shown (the extraction monitor's boundary detector reads it); None without scores.
    margins: tuple[float, ...] | None = None
    #: Rows whose answer the partner's watermark swapped (kept, sealed, for attribution).
    marked: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Loaded:
    predictor: Predictor
    labels: tuple[str | int, ...] | None
    dtype: type[np.floating[Any]]
    digest: str  # the artifact's, as verified when loaded
    manifest: str  # sha256 of the signed manifest (the model-signing bundle)
    summary: TrainingSummary | None  # registered with the version: the watermark's tilt
    basis: npt.NDArray[np.float64] | None  # the multiclass tilt's, computed once
    #: Its affine part for encrypted and joint scoring, or why it has none.
    linear: LinearForm | str
    #: Partners' watermarks on this version, by (secret, scope): a tilt's keyed direction
    #: or matrix is drawn once per partner, not per request.
    marks: dict[tuple[bytes, str], Watermark] = field(default_factory=dict)


class ModelServer:
    """Registered model versions, loaded on first use and run on checked batches.

    Thread-safe: the gateway calls it from many worker threads at once.  Two
    threads that ask for a version not yet loaded wait for one load.  ``cache``:
    :meth:`resolve` reads served and registered versions through it (when given a
    unit of work), so they are read again only once the store's change counter moves.
    """

    def __init__(
        self, workspace: Workspace, *, max_loaded: int = 8, cache: StateCache | None = None
    ) -> None:
        if isinstance(max_loaded, bool) or not isinstance(max_loaded, int) or max_loaded < 1:
            raise InvalidInput(f"max_loaded must be a positive integer, not {max_loaded!r}")
        self._ws = workspace
        self._cache = cache
        self._registry = ModelRegistry(workspace)
        self._max_loaded = max_loaded
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[str, str], _Loaded] = OrderedDict()
        self._loading: dict[tuple[str, str], Future[_Loaded]] = {}

    @property
    def registry(self) -> ModelRegistry:
        """The registry versions are resolved, verified and decrypted through."""
        return self._registry

    def resolve(
        self,
        model: str,
        version: str | None,
        uow: UnitOfWork | None = None,
        *,
        follows: Callable[[str], bool] | None = None,
    ) -> str:
        """The version to run: ``version`` if registered, else the one ``model`` serves now.

        ``follows``: which versions the asker's charter pins it to or lets it follow.  When
        no version is asked for and the served one is not among them, the most recently
        registered one that is runs instead: a partner pinned to ``1.0.0`` keeps it after
        ``1.1.0`` is served, and one following ``1.*`` gets the newest 1.x while ``2.0.0``
        is served to others.  With none among them, the served version (the policy then
        refuses it).  Reads in ``uow`` when given.  Raises :class:`NotFound` for an unknown
        model or version.
        """
        _check_name(model, version)
        if uow is None:
            with self._ws.store.unit_of_work(read_only=True) as own:
                return self.resolve(model, version, own, follows=follows)
        view = StateView.direct(uow) if self._cache is None else self._cache.view(uow)
        if version is None:
            served = view.model(model).served_version
            if served is None:
                raise NotFound(f"model {model} serves no version")
            if follows is None or follows(served):
                return served
            return next((v for v in reversed(view.versions(model)) if follows(v)), served)
        view.require_version(model, version)  # raises NotFound
        return version

    def is_loaded(self, model: str, version: str) -> bool:
        """True when ``model`` ``version`` is in memory: :meth:`predict` reads nothing."""
        with self._lock:
            return (model, version) in self._loaded

    def verified_digests(self, model: str, version: str) -> tuple[str, str]:
        """``(artifact, manifest)`` digests of ``model`` ``version`` as verified when it was
        loaded (loading it now if it is not)."""
        entry = self._entry(model, version)
        return entry.digest, entry.manifest

    def linear(self, model: str, version: str) -> LinearForm:
        """The affine part of ``model`` ``version`` (:func:`~modelpact.runtime.linear.
        linear_form`); :class:`InvalidInput` for a model that is not linear or logistic."""
        found = self._entry(model, version).linear
        if isinstance(found, str):
            raise InvalidInput(found)
        return found

    def predictor(self, model: str, version: str) -> Predictor:
        """The loaded :class:`Predictor` of ``model`` ``version``, loading it on first use."""
        return self._entry(model, version).predictor

    def predict(
        self,
        model: str,
        version: str,
        rows: Sequence[Sequence[float]],
        *,
        policy: OutputPolicy,
        max_rows: int,
        watermark: tuple[bytes, str] | None = None,
        rotation: tuple[bytes, str] | None = None,
    ) -> Prediction:
        """Run ``model`` ``version`` on ``rows`` and shape the answer per ``policy``.

        ``watermark``: the partner's PRF secret and the scope (``model@version``) to mark
        a classifier's answers with (:class:`~modelpact.marks.Watermark`) before shaping;
        ``rotation``: the same, to turn an ``embedding`` answer with
        (:class:`~modelpact.marks.KeyedRotation`).

        Raises :class:`InvalidInput` (one line, no feature values) for no rows,
        more than ``max_rows`` rows, ragged rows, a width the model does not take,
        values that are not numbers, NaN or infinite, or beyond the range of the
        model's float type;
        :class:`NotFound` for an unknown model or version; :class:`PredictionFailed`
        when the model fails at run time or its answer cannot be shaped.
        """
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise InvalidInput(f"max_rows must be a positive integer, not {max_rows!r}")
        values = _read_rows(rows, max_rows)
        entry = self._entry(model, version)
        features = _to_features(values, entry, model, version)
        try:
            raw = entry.predictor.predict(features)
        except ModelpactError:
            raise  # the predictor's own errors already leave feature values out
        except Exception as exc:  # onnxruntime's messages may echo inputs: name the type only
            raise PredictionFailed(
                f"{model} {version} failed at run time ({type(exc).__name__})"
            ) from None
        scores = raw.get(SCORES_OUTPUT)
        found = None if scores is None else tuple(margins(scores).tolist())  # before marks
        marked: tuple[int, ...] = ()
        if watermark is not None:
            raw, marked = _watermarked(raw, values, watermark, entry)
        turn = None
        if rotation is not None:
            key, scope = PrfKey(rotation[0]), rotation[1]
            turn = lambda v: KeyedRotation(key, scope, v.shape[1]).apply(v)  # noqa: E731
        outputs = shape_outputs(raw, policy, labels=entry.labels, rotation=turn)
        return Prediction(
            outputs=outputs,
            input_digest=canonical_digest(values),
            output_digest=canonical_digest(outputs),
            margins=found,
            marked=marked,
        )

    # -- loading ----------------------------------------------------------------------------

    def _entry(self, model: str, version: str) -> _Loaded:
        _check_name(model, version)
        key = (model, version)
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is not None:
                self._loaded.move_to_end(key)
                return loaded
            pending = self._loading.get(key)
            loader = pending is None  # this thread loads; any others wait for its result
            if pending is None:
                pending = self._loading[key] = Future()
        if not loader:
            return pending.result()  # raises the loader's error, if it failed
        try:
            loaded = self._load(model, version)
        except BaseException as exc:
            with self._lock:
                del self._loading[key]  # a failed load is not cached: the next call retries
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._loading[key]
            self._loaded[key] = loaded
            while len(self._loaded) > self._max_loaded:
                self._loaded.popitem(last=False)  # sessions in use stay alive until they finish
        pending.set_result(loaded)
        return loaded

    def _load(self, model: str, version: str) -> _Loaded:
        verified = self._registry.verify(model, version)
        data = self._registry.decrypt(model, version)
        # decrypt checks the plaintext against the record it reads; this binds it to the
        # digest the signature was just checked over, should the record change in between.
        if not constant_time_equal("sha256:" + sha256_hex(data), verified.digest):
            raise Tampered(f"{model} {version} changed while it was being loaded")
        # One onnxruntime thread per session: the gateway runs on small (2-core) hosts with
        # many requests at once, each already on its own worker thread; more threads per
        # session would only contend for the same cores and make latency unpredictable.
        predictor = Predictor.from_bytes(
            data, source=f"{model}-{version}.onnx", intra_op_threads=1, inter_op_threads=1
        )
        dtype: type[np.floating[Any]] = (
            np.float32 if predictor.summary.inputs[0].elem_type == "float" else np.float64
        )
        bundle = self._registry.get_version(model, version).signature_bundle
        summary = self._registry.training_summary(model, version)
        basis = None
        if summary is not None:
            try:
                basis = tilt_basis(summary)
            except InvalidInput:  # fewer than two varying directions: no multiclass tilt
                basis = None
        try:
            linear: LinearForm | str = linear_form(data)
        except InvalidInput as exc:
            linear = f"{model} {version}: {exc.summary}"
        return _Loaded(
            predictor,
            class_labels(data),
            dtype,
            verified.digest,
            "sha256:" + sha256_hex(bundle),
            summary,
            basis,
            linear,
        )


def _watermarked(
    raw: dict[str, npt.NDArray[Any]],
    values: list[list[float]],
    watermark: tuple[bytes, str],
    entry: _Loaded,
) -> tuple[dict[str, npt.NDArray[Any]], tuple[int, ...]]:
    """``raw`` with the partner's marks on its class scores (and label output), and which
    rows had their label swapped (the tilt, where served, moves every row's scores).

    Left as it is when the model has no class scores, or when its labels are not
    named and not column indices (no way to name the swapped class).
    """
    scores = raw.get(SCORES_OUTPUT)
    label_out = raw.get(LABEL_OUTPUT)
    labels = entry.labels
    if scores is None or scores.ndim != 2 or scores.shape[1] < 2:
        return raw, ()
    if labels is None and label_out is not None and label_out.dtype.kind not in "iu":
        return raw, ()
    secret, scope = watermark
    summary = entry.summary
    if summary is not None and summary.width != len(values[0]):
        summary = None  # registered against other rows: no tilt rather than a wrong one
    if scores.shape[1] > 2 and entry.basis is None:
        summary = None
    mark = entry.marks.get((secret, scope))
    if mark is None or mark.classes != scores.shape[1] or mark.summary is not summary:
        mark = Watermark.served(
            PrfKey(secret), scope, classes=int(scores.shape[1]), summary=summary,
            basis=entry.basis,
        )  # fmt: skip
        if len(entry.marks) >= _MARKS_KEPT:
            entry.marks.pop(next(iter(entry.marks)))
        entry.marks[(secret, scope)] = mark
    new_scores, selected = mark.apply(values, scores)
    chosen = tuple(int(i) for i in np.nonzero(selected)[0])
    if not chosen and mark.tilt == 0:
        return raw, ()
    changed = dict(raw)
    changed[SCORES_OUTPUT] = new_scores.astype(scores.dtype)
    if label_out is not None:
        columns: Sequence[str | int] = labels if labels is not None else range(scores.shape[1])
        new_labels = np.array(label_out, copy=True).reshape(-1)
        moved = np.nonzero(np.argmax(new_scores, axis=1) != np.argmax(scores, axis=1))[0]
        for i in sorted({*chosen, *moved.tolist()}):
            new_labels[i] = columns[int(np.argmax(new_scores[i]))]
        changed[LABEL_OUTPUT] = new_labels.reshape(label_out.shape)
    return changed, chosen


def _check_name(model: str, version: str | None) -> None:
    """Refuse names no registered model can have before they reach the database."""
    if not isinstance(model, str) or not _NAME.fullmatch(model):
        shown = quote_untrusted(model) if isinstance(model, str) else type(model).__name__
        raise NotFound(f"model {shown} does not exist")
    if version is not None and (not isinstance(version, str) or not _VERSION.fullmatch(version)):
        shown = quote_untrusted(version) if isinstance(version, str) else type(version).__name__
        raise NotFound(f"model {model} has no version {shown}")


def class_labels(data: bytes) -> tuple[str | int, ...] | None:
    """The classifier's classes in score-column order, if the graph names them once.

    Where class labels come from: skl2onnx writes a classifier's classes on its
    classifier node (``LinearClassifier``, ``SVMClassifier``,
    ``TreeEnsembleClassifier``), in the order of the score columns; the model
    card has no field for them, and the label output only shows the class chosen
    per row.  Models that keep their classes elsewhere (k-nearest neighbours,
    MLP, ensembles of several classifiers) give ``None``: their columns are then
    named by index, and :func:`~modelpact.runtime.shape_outputs` refuses to serve
    scores whenever the model's own labels show those names are wrong.
    """
    import onnx  # the plaintext was already checked by inspect_model: parse it, in memory

    graph = onnx.load_from_string(data).graph
    found: list[tuple[str | int, ...]] = []
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name not in _CLASS_ATTRIBUTES:
                continue
            if attribute.name == "classlabels_strings":
                try:
                    found.append(tuple(s.decode("utf-8") for s in attribute.strings))
                except UnicodeDecodeError:
                    return None
            else:
                found.append(tuple(int(i) for i in attribute.ints))
    return found[0] if len(found) == 1 and found[0] else None


def _read_rows(rows: Sequence[Sequence[float]], max_rows: int) -> list[list[float]]:
    """The rows as plain floats, or one :class:`InvalidInput` line naming the first fault."""
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes | bytearray):
        raise InvalidInput("rows must be a list of rows of numbers")
    count = len(rows)
    if count == 0:
        raise InvalidInput("no rows to predict")
    if count > max_rows:
        raise InvalidInput(f"batch of {count} rows exceeds the charter's max_batch_rows {max_rows}")
    values: list[list[float]] = []
    width = -1
    for i, row in enumerate(rows):
        if not isinstance(row, Sequence) or isinstance(row, str | bytes | bytearray):
            raise InvalidInput(f"row {i} is not a list of numbers")
        if width < 0:
            width = len(row)
            if width == 0:
                raise InvalidInput("rows hold no values")
        elif len(row) != width:
            raise InvalidInput(f"row {i} has {len(row)} values but row 0 has {width}")
        values.append([_number(value, i) for value in row])
    return values


def _number(value: object, row: int) -> float:
    if type(value) is float:  # the common case, first: JSON numbers with a fraction
        number = value
    elif isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"row {row} holds a value that is not a number")
    else:
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            number = math.inf
    if not math.isfinite(number):
        raise InvalidInput(f"row {row} holds NaN, an infinite value or a number too large")
    return number + 0.0  # -0.0 and 0.0 are the same feature, and digest the same


def _to_features(
    values: list[list[float]], entry: _Loaded, model: str, version: str
) -> npt.NDArray[np.floating[Any]]:
    width = len(values[0])
    expected = entry.predictor.n_features
    if expected is not None and width != expected:
        raise InvalidInput(
            f"rows have {width} values but {model} {version} takes {expected} features"
        )
    array = np.asarray(values, dtype=np.float64)
    if entry.dtype is np.float32:
        too_large = np.abs(array) > _FLOAT32_MAX
        if too_large.any():
            row = int(np.nonzero(too_large.any(axis=1))[0][0])
            raise InvalidInput(
                f"row {row} holds a value beyond the float32 range of {model} {version}"
            )
    return np.ascontiguousarray(array, dtype=entry.dtype)
