"""Running an accepted ONNX model on a batch of features.

This is the code that holds decrypted weights; it will run inside an isolated
model worker.  The session is built from bytes only, never from a path, so no
file name chosen by anyone reaches onnxruntime, and external data cannot be
followed.  The bytes are checked by :func:`inspect_model` again first (the
worker trusts nothing it was handed).  Only the CPU execution provider is
enabled: onnxruntime also ships providers that send tensors elsewhere.
Threads default to one per session so a worker's CPU use is predictable.

Errors about features never quote feature values: they are a partner's data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modelpact.errors import InvalidInput, ModelRejected, quote_untrusted
from modelpact.runtime.artifact_check import (
    DEFAULT_LIMITS,
    GraphLimits,
    ModelSummary,
    inspect_model,
)

__all__ = ["Predictor"]

_INPUT_TYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}
_ONE_LINE = "serve a model with a single float or double tensor input"


class Predictor:
    """An onnxruntime session over one accepted model, with checked inputs."""

    __slots__ = ("_dims", "_dtype", "_input", "_outputs", "_session", "_summary")

    def __init__(
        self,
        session: Any,
        summary: ModelSummary,
        *,
        input_name: str,
        dtype: type[np.floating[Any]],
        dims: tuple[int | None, ...] | None,
        outputs: tuple[str, ...],
    ) -> None:
        self._session = session
        self._summary = summary
        self._input = input_name
        self._dtype = dtype
        self._dims = dims
        self._outputs = outputs

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        source: str = "model.onnx",
        limits: GraphLimits = DEFAULT_LIMITS,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
    ) -> Predictor:
        """Check ``data`` with :func:`inspect_model`, then open a CPU session on it.

        Raises :class:`ModelRejected` if the model fails the check, cannot be
        loaded by onnxruntime, or is not one the predictor can serve (it needs a
        single float or double tensor input and at least one tensor output).
        """
        for name, value in (
            ("intra_op_threads", intra_op_threads),
            ("inter_op_threads", inter_op_threads),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, not {value!r}")
        summary = inspect_model(data, source=source, limits=limits)
        shown = quote_untrusted(source)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.use_deterministic_compute = True
        options.log_severity_level = 3  # errors only: no per-node chatter in the worker's log
        options.add_session_config_entry("session.load_model_format", "ONNX")
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                bytes(data), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelRejected(f"onnxruntime cannot load {shown}: {first[:200]}") from None

        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type not in _INPUT_TYPES:
            found = ", ".join(f"{quote_untrusted(i.name)}: {i.type}" for i in inputs[:5])
            raise ModelRejected(
                f"{shown} has inputs ({found}); the predictor can only {_ONE_LINE}",
                hint="export with one float input (modelpact.runtime.export_sklearn does)",
            )
        outputs = tuple(o.name for o in session.get_outputs() if str(o.type).startswith("tensor("))
        if not outputs:
            raise ModelRejected(
                f"{shown} has no tensor output",
                hint="export classifiers without ZipMap (export_sklearn does)",
            )
        shape = inputs[0].shape
        dims = None if shape is None else tuple(d if isinstance(d, int) else None for d in shape)
        return cls(
            session,
            summary,
            input_name=inputs[0].name,
            dtype=_INPUT_TYPES[inputs[0].type],
            dims=dims,
            outputs=outputs,
        )

    @property
    def summary(self) -> ModelSummary:
        """What :func:`inspect_model` found in the model."""
        return self._summary

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self._input,)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The tensor outputs :meth:`predict` returns (non-tensor outputs are left out)."""
        return self._outputs

    @property
    def n_features(self) -> int | None:
        """Features per row, if the model fixes it (2-D input with a static width)."""
        if self._dims is None or len(self._dims) != 2:
            return None
        return self._dims[1]

    def predict(self, features: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        """Run the model on a batch: rows are examples (2-D for tabular models).

        Raises :class:`InvalidInput` for a non-numeric array, a wrong number of
        dimensions or features, an empty batch, or NaN/infinite values (including
        values too large for the model's float type).
        """
        if not isinstance(features, np.ndarray):
            raise InvalidInput(f"features must be a numpy array, not {type(features).__name__}")
        if features.dtype.kind not in "fiu":
            raise InvalidInput(f"features must be numbers, not {features.dtype}")
        dims = self._dims
        if dims is not None and features.ndim != len(dims):
            raise InvalidInput(
                f"features must be a {len(dims)}-D array (rows first), not {features.ndim}-D"
            )
        if features.ndim == 0 or features.shape[0] == 0:
            raise InvalidInput("features hold no rows")
        if dims is not None:
            for axis, (expected, actual) in enumerate(zip(dims, features.shape, strict=True)):
                if expected is None or expected == actual:
                    continue
                if axis == 1 and len(dims) == 2:
                    raise InvalidInput(f"expected {expected} features per row, got {actual}")
                raise InvalidInput(f"expected size {expected} on axis {axis}, got {actual}")
        with np.errstate(over="ignore", invalid="ignore"):
            converted = np.ascontiguousarray(features, dtype=self._dtype)
        if not np.isfinite(converted).all():
            raise InvalidInput(
                f"features contain NaN or infinite values (or values beyond {converted.dtype})"
            )
        try:
            results = self._session.run(list(self._outputs), {self._input: converted})
        except Exception as exc:  # the message may echo input-derived values: leave it out
            raise InvalidInput(
                f"the model could not run on these features ({type(exc).__name__})"
            ) from None
        return {name: np.asarray(value) for name, value in zip(self._outputs, results, strict=True)}

    def __repr__(self) -> str:
        return f"Predictor(input={self._input!r}, dims={self._dims}, outputs={self._outputs})"
