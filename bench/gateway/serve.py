"""One benchmark server in its own process, so the load generator never shares its GIL.

Run by the benchmark, not by hand:

    python -m bench.gateway.serve bare --port P --onnx model.onnx
    python -m bench.gateway.serve secure --port P --workspace DIR [--tls] [--workers N]

Both are served by uvicorn with the same settings: 127.0.0.1 only, one worker, log level
``warning``, no access log, no ``Server`` header (as ``modelpact serve`` runs, access log
aside).  ``secure`` is the app of :func:`modelpact.gateway.app.create_app` over the
workspace, in plain HTTP unless ``--tls`` (then with the workspace's own certificate, as
``modelpact serve`` does by default).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["UVICORN", "main"]

UVICORN: dict[str, Any] = {
    "host": "127.0.0.1",
    "workers": 1,
    "log_level": "warning",
    "access_log": False,
    "server_header": False,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway.serve")
    parser.add_argument("kind", choices=("bare", "secure"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--onnx", type=Path, help="bare: the ONNX file to serve")
    parser.add_argument("--workspace", type=Path, help="secure: the workspace to serve")
    parser.add_argument("--tls", action="store_true", help="secure: serve HTTPS")
    parser.add_argument("--workers", type=int, default=0, help="secure: model worker processes")
    args = parser.parse_args()
    if args.kind == "bare":
        from bench.gateway.bare import create_bare_app

        if args.onnx is None:
            parser.error("bare needs --onnx")
        uvicorn.run(create_bare_app(args.onnx.read_bytes()), port=args.port, **UVICORN)
        return

    from modelpact.gateway.app import create_app
    from modelpact.services import open_workspace

    if args.workspace is None:
        parser.error("secure needs --workspace")
    with open_workspace(args.workspace) as ws:
        tls: dict[str, Any] = {}
        if args.tls:
            tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
        pool = None
        if args.workers:
            from modelpact.services.model_workers import WorkerPool

            pool = WorkerPool(ws.root, size=args.workers)
        uvicorn.run(create_app(ws, workers=pool), port=args.port, **UVICORN, **tls)


if __name__ == "__main__":
    main()
