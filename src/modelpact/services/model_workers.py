"""The gateway's model workers: separate processes that alone hold decrypted weights.

:class:`WorkerPool` starts ``size`` workers (:mod:`modelpact.services.model_worker`)
on first use, on the event loop that uses it, and talks to each over its stdin
and stdout in the format of :mod:`modelpact.runtime.worker_wire`: the loop
writes a request and reads the reply in its own selector, with no thread in
between.  Several requests may be in flight on one worker; it answers them in
order.

A worker that exits, breaks the format or does not answer within ``timeout``
seconds is killed and replaced on the next request; every request it held fails
with :class:`~modelpact.errors.ModelUnavailable` (HTTP 503), and the gateway
audits each one.  ``memory_mb`` caps each worker's address space.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelpact.charter import OutputPolicy
from modelpact.errors import (
    ContextNeeded,
    InvalidInput,
    ModelpactError,
    ModelUnavailable,
    NotFound,
    Tampered,
)
from modelpact.runtime import ModelSummary, PredictionFailed
from modelpact.runtime.linear import Link
from modelpact.runtime.worker_wire import (
    WireError,
    blobs_from_payload,
    blobs_payload,
    decode,
    encode,
    frame_length,
    rows_payload,
)
from modelpact.services.encrypted import EncryptedPrediction, Packing
from modelpact.services.serving import Prediction

__all__ = ["WorkerPool"]

_ERRORS: dict[str, type[ModelpactError]] = {
    "invalid-input": InvalidInput,
    "context-needed": ContextNeeded,
    "not-found": NotFound,
    "prediction-failed": PredictionFailed,
    "tampered": Tampered,
}


class _Worker:
    """One worker process and the requests it holds."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self.failed: str | None = None
        self.reader: asyncio.Task[None] | None = None

    def fail(self, reason: str) -> None:
        """Stop using this worker: kill it, and fail what it held with ``reason``."""
        if self.failed is None:
            self.failed = reason
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ModelUnavailable(reason))


def _margins(value: Any, rows: int) -> tuple[float, ...] | None:
    """The reply's margins if they are one finite number per row; else None (not watched)."""
    if not isinstance(value, list) or len(value) != rows:
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if all(math.isfinite(v) for v in numbers) else None


def _marked(value: Any, rows: int) -> tuple[int, ...]:
    """The reply's marked row indices, each in range; a malformed list is refused."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < rows for i in value
    ):
        raise PredictionFailed("the model worker's reply names rows it was not sent")
    return tuple(value)


class WorkerPool:
    """Model workers for one workspace.  Use from one event loop at a time."""

    def __init__(
        self,
        workspace_root: Path,
        *,
        size: int = 1,
        timeout: float = 30.0,
        memory_mb: int | None = 4096,
        python: str = sys.executable,
    ) -> None:
        if size < 1:
            raise InvalidInput(f"a worker pool needs at least one worker, not {size}")
        self._root = Path(workspace_root)
        self._size = size
        self._timeout = timeout
        self._memory_mb = memory_mb
        self._python = python
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._summaries: dict[tuple[str, str], tuple[ModelSummary, str]] = {}
        self._spawning: asyncio.Lock | None = None

    @property
    def settings(self) -> dict[str, str]:
        """What an attestation document reports about the isolation."""
        return {
            "model_runtime": "worker-processes",
            "workers": str(self._size),
            "worker_memory_limit": "none" if self._memory_mb is None else f"{self._memory_mb} MiB",
            "request_timeout": f"{self._timeout:g} s",
            "decrypted_weights": "in the model workers' memory only, never in the gateway",
        }

    def pids(self) -> list[int]:
        """The live workers' process ids."""
        return [w.process.pid for w in self._workers if w.failed is None]

    async def predict(
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
        """:meth:`ModelServer.predict` in a worker (rows checked as there, in the worker)."""
        if not rows or any(len(row) != len(rows[0]) for row in rows):
            raise InvalidInput("rows must be a non-empty list of rows of equal width")
        payload, count, width = rows_payload([list(row) for row in rows])
        header = {
            "op": "predict",
            "model": model,
            "version": version,
            "policy": policy.model_dump(mode="json"),
            "max_rows": max_rows,
            "rows": count,
            "width": width,
        }
        for name, given in (("watermark", watermark), ("rotation", rotation)):
            if given is not None:
                secret, scope = given
                header[name] = {"key": base64.b64encode(secret).decode("ascii"), "scope": scope}
        reply = await self._request(header, payload)
        return Prediction(
            outputs=reply["outputs"],
            input_digest=reply["input_digest"],
            output_digest=reply["output_digest"],
            margins=_margins(reply.get("margins"), count),
            marked=_marked(reply.get("marked"), count),
        )

    async def check_context(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """``(digest, parameters)`` of a partner's public CKKS context, checked in a worker
        (which keeps it; the others are sent it when they first need it)."""
        reply = await self._request({"op": "context"}, data)
        return str(reply["digest"]), dict(reply["parameters"])

    async def score_encrypted(
        self,
        model: str,
        version: str,
        *,
        context: tuple[str, bytes],
        packing: Packing,
        ciphertexts: list[bytes],
        rows: int,
        max_rows: int,
    ) -> EncryptedPrediction:
        """:meth:`EncryptedScorer.score` in a worker.  ``context``: its digest and bytes; the
        bytes go along only when the worker answers that it does not hold the context."""
        digest, data = context
        payload, sizes = blobs_payload(ciphertexts)
        header = {
            "op": "score-encrypted",
            "model": model,
            "version": version,
            "packing": packing.value,
            "context": digest,
            "rows": rows,
            "max_rows": max_rows,
            "sizes": sizes,
        }
        try:
            reply, scores = await self._exchange(header, payload)
        except ContextNeeded:
            reply, scores = await self._exchange(header | {"context_size": len(data)},
                                                 data + payload)  # fmt: skip
        try:
            labels = reply["labels"]
            return EncryptedPrediction(
                packing=packing,
                scores=blobs_from_payload(scores, reply["sizes"]),
                rows=int(reply["rows"]),
                columns=int(reply["columns"]),
                link=Link(reply["link"]),
                labels=None if labels is None else tuple(labels),
                context_digest=str(reply["context_digest"]),
                input_digest=str(reply["input_digest"]),
                output_digest=str(reply["output_digest"]),
            )
        except (KeyError, TypeError, ValueError, WireError):
            raise PredictionFailed("the model worker's encrypted answer is malformed") from None

    async def digests(self, model: str, version: str) -> tuple[str, str]:
        """``(artifact, manifest)`` digests as the worker verified them when it loaded them."""
        reply = await self._request({"op": "digests", "model": model, "version": version})
        return str(reply["artifact"]), str(reply["manifest"])

    async def summary(self, model: str, version: str) -> tuple[ModelSummary, str]:
        """``(summary, input name)`` of a model version (versions never change: kept)."""
        key = (model, version)
        found = self._summaries.get(key)
        if found is None:
            reply = await self._request({"op": "summary", "model": model, "version": version})
            found = self._summaries[key] = (
                ModelSummary.from_dict(reply["summary"]),
                str(reply["input"]),
            )
        return found

    async def aclose(self) -> None:
        """Stop every worker (they exit at the end of their input)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 5)
            except TimeoutError:
                worker.fail("the gateway stopped")
            if worker.reader is not None:
                worker.reader.cancel()

    def close(self) -> None:
        """Kill every worker now (from outside their event loop)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.fail("the gateway stopped")

    # -- internals -------------------------------------------------------------------------

    async def _request(self, header: dict[str, Any], payload: bytes = b"") -> dict[str, Any]:
        reply, _ = await self._exchange(header, payload)
        return reply

    async def _exchange(
        self, header: dict[str, Any], payload: bytes = b""
    ) -> tuple[dict[str, Any], bytes]:
        """One request to the least busy worker: its reply's header and payload."""
        worker = await self._pick()
        request_id = next(self._ids)
        future: asyncio.Future[tuple[dict[str, Any], bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        worker.pending[request_id] = future
        stdin = worker.process.stdin
        assert stdin is not None
        try:
            stdin.write(encode({"id": request_id} | header, payload))
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            worker.fail(f"the model worker stopped taking requests ({type(exc).__name__})")
        try:
            reply, data = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            worker.fail(f"the model worker did not answer within {self._timeout:g} s")
            raise ModelUnavailable(
                f"the model worker did not answer within {self._timeout:g} s; it was replaced"
            ) from None
        finally:
            worker.pending.pop(request_id, None)
        if reply.get("ok") is True:
            return reply, data
        error = reply.get("error") or {}
        kind, message = str(error.get("kind", "error")), str(error.get("message", ""))[:500]
        raise _ERRORS.get(kind, PredictionFailed)(message or "the model worker failed")

    async def _pick(self) -> _Worker:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests run one per scenario)
            self.close()
            self._loop = loop
            self._spawning = asyncio.Lock()
        assert self._spawning is not None
        async with self._spawning:  # concurrent first requests start `size` workers, not more
            self._workers = [w for w in self._workers if w.failed is None]
            while len(self._workers) < self._size:
                self._workers.append(await self._spawn())
        return min(self._workers, key=lambda w: len(w.pending))

    async def _spawn(self) -> _Worker:
        command = [
            self._python,
            "-m",
            "modelpact.services.model_worker",
            "--workspace",
            str(self._root),
        ]
        if self._memory_mb is not None:
            command += ["--memory-mb", str(self._memory_mb)]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C to the gateway is not sent to its workers
        )
        worker = _Worker(process)
        worker.reader = asyncio.get_running_loop().create_task(self._read(worker))
        return worker

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while True:
                length = frame_length(await stdout.readexactly(4))
                header, payload = decode(await stdout.readexactly(length))
                future = worker.pending.get(header["id"])
                if future is not None and not future.done():
                    future.set_result((header, payload))
        except asyncio.IncompleteReadError:
            code = await worker.process.wait()
            reason = "ran out of its memory limit" if code == 3 else f"exited ({code})"
            worker.fail(f"the model worker {reason}; it was replaced")
        except WireError as exc:
            worker.fail(f"the model worker broke the message format ({exc.summary})")
