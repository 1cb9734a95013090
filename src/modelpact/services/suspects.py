"""Suspect models, asked for labels and (where they give them) class scores.

- :class:`OnnxSuspect`: an ONNX file, checked like any model before it runs here.
- :class:`RemoteSuspect`: a black box behind ``POST <url>/infer`` with one FP64 tensor of the
  rows (the Open Inference Protocol that KServe, Triton, MLServer and this gateway's ``/v2``
  speak); the answer's ``label`` output, or else the argmax of its ``probabilities`` (or its
  only) output, are its labels, and ``probabilities`` its scores.  At most ``budget`` rows
  are ever sent, in batches; every answer is checked to have one label per row.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np

from modelpact.errors import InvalidInput, QuotaExhausted, ServerError
from modelpact.runtime import Predictor

__all__ = ["Answers", "OnnxSuspect", "RemoteSuspect", "Suspect"]


@dataclass(frozen=True)
class Answers:
    """A suspect's labels for some rows and, if it shows them, its class scores."""

    labels: Any  # one per row
    scores: Any = None  # rows x classes, or None


class Suspect(Protocol):
    """Anything that answers rows: an ONNX file run here, or an endpoint asked over HTTP."""

    def ask(self, rows: Any) -> Answers: ...


class OnnxSuspect:
    """A model file run here, on the rows as the type its input declares."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        single = predictor.summary.inputs[0].elem_type == "float"
        self.dtype = np.float32 if single else np.float64

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> OnnxSuspect:
        return cls(Predictor.from_bytes(data, source=source))

    def ask(self, rows: Any) -> Answers:
        raw = self.predictor.predict(np.asarray(rows, dtype=self.dtype))
        scores = raw.get("probabilities")
        scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        if "label" in raw:
            labels = np.asarray(raw["label"]).reshape(-1)
        elif scores is not None and scores.ndim == 2:
            labels = np.argmax(scores, axis=1)
        else:
            raise InvalidInput("the suspect model has neither a label nor class scores output")
        if scores is not None and (scores.ndim != 2 or len(scores) != len(labels)):
            scores = None
        return Answers(labels, scores)


class RemoteSuspect:
    """Labels from a V2 inference endpoint, within a query budget."""

    def __init__(
        self,
        url: str,
        *,
        budget: int,
        headers: dict[str, str] | None = None,
        ca: Path | None = None,
        batch: int = 64,
        timeout: float = 30.0,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise InvalidInput("the suspect's URL must be http(s)://.../v2/models/NAME")
        if budget < 1 or batch < 1:
            raise InvalidInput("the query budget and batch must be positive")
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        )
        self._http = httpx.Client(headers=headers or {}, verify=verify, timeout=timeout)
        self._url = url.rstrip("/") + "/infer"
        self.budget = budget
        self.batch = batch
        self.spent = 0

    def close(self) -> None:
        self._http.close()

    def labels(self, rows: Any) -> Any:
        return self.ask(rows).labels

    def ask(self, rows: Any) -> Answers:
        data = np.asarray(rows, dtype=np.float64)
        if self.spent + len(data) > self.budget:
            raise QuotaExhausted(
                f"asking the suspect about {len(data)} more rows would pass the query budget "
                f"of {self.budget} ({self.spent} spent)",
                hint="raise --budget",
            )
        labels: list[Any] = []
        scores: list[Any] | None = []
        for start in range(0, len(data), self.batch):
            answer = self._ask(data[start : start + self.batch])
            labels.extend(answer.labels)
            if scores is not None:
                scores = None if answer.scores is None else [*scores, answer.scores]
        return Answers(np.asarray(labels), None if not scores else np.vstack(scores))

    def _ask(self, rows: Any) -> Answers:
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.reshape(-1).tolist(),
                }
            ]
        }
        try:
            response = self._http.post(self._url, json=body)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the suspect ({type(exc).__name__})") from None
        self.spent += len(rows)
        if response.status_code >= 300:
            raise ServerError(f"the suspect answered HTTP {response.status_code}")
        try:
            outputs = {o["name"]: o for o in response.json()["outputs"]}
        except (ValueError, KeyError, TypeError):
            raise ServerError("the suspect's answer is not a V2 inference response") from None
        return _answers(outputs, len(rows))


def _answers(outputs: dict[str, Any], count: int) -> Answers:
    scores = None
    try:
        found = outputs.get("probabilities")
        if found is not None:
            scores = np.asarray(found["data"], dtype=np.float64).reshape(count, -1)
            if not np.isfinite(scores).all():
                raise ValueError("scores must be finite")
        if "label" in outputs:
            labels = list(outputs["label"]["data"])
        else:
            only = scores if scores is not None else next(iter(outputs.values()))["data"]
            labels = np.asarray(only, dtype=np.float64).reshape(count, -1).argmax(1).tolist()
    except (KeyError, TypeError, ValueError, StopIteration):
        raise ServerError("the suspect's answer holds no labels or class scores") from None
    if len(labels) != count:
        raise ServerError(f"the suspect answered {len(labels)} labels for {count} rows")
    return Answers(labels, scores)
