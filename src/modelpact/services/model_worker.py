"""A model worker: the only kind of process that holds decrypted weights.

Run by :class:`~modelpact.services.model_workers.WorkerPool`, never by hand::

    python -m modelpact.services.model_worker --workspace DIR [--memory-mb N]

It opens the workspace (for the key-encryption key and the sealed artifacts),
limits itself (address space to ``--memory-mb``, no core dumps, no new
privileges), and answers requests from stdin on stdout in the format of
:mod:`modelpact.runtime.worker_wire`, one at a time:

- ``predict``: ``model``, ``version``, ``policy`` (an output policy), ``max_rows``,
  ``rows`` and ``width``, the rows as the payload; answers the shaped ``outputs``
  and the ``input_digest`` and ``output_digest`` (what :meth:`ModelServer.predict`
  returns).  A version is decrypted, verified and checked again on first use
  (:meth:`ModelServer.predictor` runs the ONNX checks of registration).
- ``digests``: the artifact and signed-manifest digests, as verified at load;
- ``summary``: the model's summary (inputs, outputs...) and its input's name;
- ``context``: a partner's public CKKS context as the payload, checked and kept by digest;
  answers its ``digest`` and parameters;
- ``score-encrypted``: ``model``, ``version``, ``packing``, ``context`` (a digest),
  ``rows``, ``max_rows`` and ``sizes``, the ciphertexts end to end as the payload, after
  the context itself when ``context_size`` says so (a worker that has not seen it
  answers ``context-needed``); answers the scores' ``sizes`` (the ciphertexts as the
  payload), the ``link``, ``labels`` and digests.  TenSEAL is C++: a ciphertext that
  crashes it costs this worker, not the gateway.

Errors go back as ``{"kind", "message"}``; messages never hold feature values.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import resource
import sys
from pathlib import Path
from typing import Any, BinaryIO

from modelpact.charter import OutputPolicy
from modelpact.errors import ContextNeeded, InvalidInput, ModelpactError, NotFound, Tampered
from modelpact.runtime import PredictionFailed
from modelpact.runtime.worker_wire import (
    WireError,
    blobs_from_payload,
    blobs_payload,
    encode,
    read_frame,
    rows_from_payload,
)
from modelpact.services.encrypted import EncryptedScorer, Packing
from modelpact.services.serving import ModelServer
from modelpact.services.workspace import open_workspace

__all__ = ["error_kind", "main", "serve"]

_PR_SET_NO_NEW_PRIVS = 38


def error_kind(error: ModelpactError) -> str:
    """The kind a worker reports for ``error``; the gateway maps it back to a type."""
    for kind, cls in (
        ("prediction-failed", PredictionFailed),
        ("invalid-input", InvalidInput),
        ("context-needed", ContextNeeded),
        ("not-found", NotFound),
        ("tampered", Tampered),
    ):
        if isinstance(error, cls):
            return kind
    return "error"


def _handle(
    server: ModelServer, scorer: EncryptedScorer, header: dict[str, Any], payload: bytes
) -> tuple[dict[str, Any], bytes]:
    op = header.get("op")
    if op == "context":
        digest, public = scorer.context(payload)
        return {"digest": digest, "parameters": public.describe()}, b""
    model, version = header.get("model"), header.get("version")
    if not isinstance(model, str) or not isinstance(version, str):
        raise InvalidInput("a worker request names no model and version")
    if op == "predict":
        rows = rows_from_payload(payload, int(header["rows"]), int(header["width"]))
        mark, turn = header.get("watermark"), header.get("rotation")
        prediction = server.predict(
            model,
            version,
            rows,
            policy=OutputPolicy.model_validate(header["policy"]),
            max_rows=int(header["max_rows"]),
            watermark=None
            if mark is None
            else (base64.b64decode(mark["key"], validate=True), str(mark["scope"])),
            rotation=None
            if turn is None
            else (base64.b64decode(turn["key"], validate=True), str(turn["scope"])),
        )
        return {
            "outputs": prediction.outputs,
            "input_digest": prediction.input_digest,
            "output_digest": prediction.output_digest,
            "margins": None if prediction.margins is None else list(prediction.margins),
            "marked": list(prediction.marked),
        }, b""
    if op == "score-encrypted":
        attached = int(header.get("context_size", 0))
        if not 0 <= attached <= len(payload):
            raise InvalidInput("a context size beyond the payload")
        if attached:
            scorer.context(payload[:attached])
        found = scorer.score(
            model,
            version,
            context=str(header["context"]),
            packing=Packing(header["packing"]),
            ciphertexts=blobs_from_payload(payload[attached:], header["sizes"]),
            rows=int(header["rows"]),
            max_rows=int(header["max_rows"]),
        )
        scores, sizes = blobs_payload(found.scores)
        return {
            "sizes": sizes,
            "rows": found.rows,
            "columns": found.columns,
            "link": found.link.value,
            "labels": None if found.labels is None else list(found.labels),
            "context_digest": found.context_digest,
            "input_digest": found.input_digest,
            "output_digest": found.output_digest,
        }, scores
    if op == "digests":
        artifact, manifest = server.verified_digests(model, version)
        return {"artifact": artifact, "manifest": manifest}, b""
    if op == "summary":
        predictor = server.predictor(model, version)
        return {"summary": predictor.summary.as_dict(), "input": predictor.input_names[0]}, b""
    raise InvalidInput(f"unknown worker operation {str(op)[:40]!r}")


def serve(server: ModelServer, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the stream ends (or breaks the format)."""
    scorer = EncryptedScorer(server)
    while True:
        message = read_frame(requests)
        if message is None:
            return
        header, payload = message
        reply: dict[str, Any] = {"id": header["id"]}
        data = b""
        try:
            answer, data = _handle(server, scorer, header, payload)
            reply |= {"ok": True} | answer
        except ModelpactError as error:
            reply |= {"ok": False, "error": {"kind": error_kind(error), "message": error.summary}}
        except (KeyError, TypeError, ValueError) as error:
            reply |= {
                "ok": False,
                "error": {
                    "kind": "invalid-input",
                    "message": f"bad request ({type(error).__name__})",
                },
            }
        replies.write(encode(reply, data))
        replies.flush()


def _confine(memory_mb: int | None) -> None:
    """The least privilege this platform gives a process cheaply."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # weights never land in a core file
    if memory_mb is not None:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with contextlib.suppress(OSError, AttributeError):  # Linux only; nothing to gain elsewhere
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelpact.services.model_worker")
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--memory-mb", type=int, default=None)
    parser.add_argument("--max-loaded", type=int, default=8)
    args = parser.parse_args(argv)
    _confine(args.memory_mb)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the reply stream
    try:
        with open_workspace(args.workspace) as ws:
            serve(ModelServer(ws, max_loaded=args.max_loaded), requests, replies)
    except WireError as error:
        print(f"modelpact model worker: {error.summary}", file=sys.stderr)
        return 2
    except MemoryError:
        print("modelpact model worker: out of its memory limit", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
