"""A real uvicorn on 127.0.0.1 in a background thread, for drills."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from modelpact.errors import ServerError

__all__ = ["serving"]


@contextlib.contextmanager
def serving(
    app: Any, *, certfile: Path, keyfile: Path, start_timeout: float = 20.0
) -> Iterator[str]:
    """Serve ``app`` over TLS on an ephemeral loopback port; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="modelpact-drill-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise ServerError("the drill's gateway did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
