"""A suspect model behind an HTTP endpoint: asked for labels over the Open Inference Protocol.

``modelpact watermark verify --suspect-url`` replays marked queries to a black box:
``POST <url>/infer`` with one FP64 tensor of the rows (the V2 protocol that KServe, Triton,
MLServer and this gateway's ``/v2`` speak); the answer's ``label`` output, or else the
argmax of its ``probabilities`` (or its only) output, are the suspect's labels.  At most
``budget`` rows are ever sent, in batches; every answer is checked to have one label per row.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from modelpact.errors import InvalidInput, QuotaExhausted, ServerError

__all__ = ["RemoteSuspect"]


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
        data = np.asarray(rows, dtype=np.float64)
        if self.spent + len(data) > self.budget:
            raise QuotaExhausted(
                f"asking the suspect about {len(data)} more rows would pass the query budget "
                f"of {self.budget} ({self.spent} spent)",
                hint="raise --budget",
            )
        found: list[Any] = []
        for start in range(0, len(data), self.batch):
            found.extend(self._ask(data[start : start + self.batch]))
        return np.asarray(found)

    def _ask(self, rows: Any) -> list[Any]:
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
        return _labels(outputs, len(rows))


def _labels(outputs: dict[str, Any], count: int) -> list[Any]:
    try:
        if "label" in outputs:
            labels = list(outputs["label"]["data"])
        else:
            scores = outputs.get("probabilities") or next(iter(outputs.values()))
            values = np.asarray(scores["data"], dtype=np.float64).reshape(count, -1)
            labels = values.argmax(axis=1).tolist()
    except (KeyError, TypeError, ValueError, StopIteration):
        raise ServerError("the suspect's answer holds no labels or class scores") from None
    if len(labels) != count:
        raise ServerError(f"the suspect answered {len(labels)} labels for {count} rows")
    return labels
