"""The unprotected baseline: one POST endpoint running onnxruntime on the same ONNX bytes.

No session, no policy decision, no metering, no output policy, no audit: what serving the
model costs with FastAPI and onnxruntime alone.  The onnxruntime session is opened with the
options :meth:`modelpact.runtime.Predictor.from_bytes` uses (one intra-op and one inter-op
thread, sequential execution, every graph optimisation, no spinning), and the endpoint is a
plain ``def`` so FastAPI runs the model in its worker threads, as the gateway does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel, Field

__all__ = ["PATH", "Rows", "create_bare_app"]

PATH = "/predict"


class Rows(BaseModel):
    rows: list[list[float]] = Field(min_length=1)


def _session(onnx: bytes) -> Any:
    """An onnxruntime session with the same options as modelpact's Predictor."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.use_deterministic_compute = True
    options.log_severity_level = 3
    options.add_session_config_entry("session.load_model_format", "ONNX")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])


def create_bare_app(onnx: bytes) -> FastAPI:
    session = _session(onnx)
    input_name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]

    app = FastAPI(title="bare onnxruntime endpoint")

    @app.post(PATH)
    def predict(body: Rows) -> dict[str, Any]:
        features = np.asarray(body.rows, dtype=np.float32)
        label, scores = session.run(outputs, {input_name: features})
        return {"labels": label.tolist(), "scores": scores.tolist()}

    return app
