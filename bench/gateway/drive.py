"""The load generator, in its own process and the same for every server.

Run by the benchmark, not by hand: ``python -m bench.gateway.drive`` reads a :class:`Load`
as JSON on standard input and writes a :class:`Result` as JSON on standard output.

``concurrency`` workers each hold one keep-alive connection and send the same pre-encoded
body back to back.  For the secure path each worker first opens its own session the way the
SDK does (ask for a challenge, sign it with the partner's key, exchange it for a token, over
httpx) and then sends ``Authorization: Bearer`` on its connection; that happens before the
clock starts.  Then ``warmup`` seconds of load whose requests are not measured, then
``seconds`` measured: every request completed inside that window counts, with its latency.
Any non-2xx answer or transport failure (timeouts included), in the warm-up or in the window,
is an error, and a run with errors is not valid.

Two clients send the load:

- ``raw`` (default): asyncio streams writing one pre-built HTTP/1.1 request and reading the
  status line, the headers and ``Content-Length`` bytes of body — about a tenth of httpx's
  CPU per request, so that the load generator, which shares the machine's cores with the
  server, is not what limits the fastest server;
- ``httpx``: one ``httpx.AsyncClient`` per worker with a pool of one connection.

CPU use over the window is read from ``/proc`` for the server's process tree and from this
process's own clock: a driver near 100 % of a core is the bottleneck, not the server.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from modelpact.client import Identity
from modelpact.crypto import SigningKey
from modelpact.wire import Challenge, ChallengeRequest, SessionGrant

__all__ = ["CLIENTS", "Load", "Result", "SessionSpec", "drive"]

CLIENTS = ("raw", "httpx")
_TICKS = os.sysconf("SC_CLK_TCK")
_SETUP_SECONDS = 60.0
_SESSION_TIMEOUT = 10.0  # per request while opening a session (outside the measured window)
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """Who the secure path's workers are: each opens one session with these."""

    partner: str
    key_path: str
    charter: str
    purpose: str


@dataclass(frozen=True, slots=True)
class Load:
    url: str
    path: str
    body: str
    concurrency: int
    warmup: float
    seconds: float
    timeout: float
    server_pid: int
    client: str = "raw"
    ca_path: str | None = None
    session: SessionSpec | None = None
    window_mark: str | None = None  # a file created when the measured window starts


@dataclass(slots=True)
class Result:
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    first_error: str | None = None
    server_cpu: float = 0.0  # cores busy over the window (1.0 = one core)
    driver_cpu: float = 0.0


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its descendants (Linux ``/proc``)."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue  # a process that ended in between
    return total


async def _open_session(load: Load, identity: Identity, verify: ssl.SSLContext | bool) -> str:
    """The SDK's protocol: challenge, proof of key, token."""
    async with httpx.AsyncClient(
        base_url=load.url, verify=verify, timeout=httpx.Timeout(_SESSION_TIMEOUT)
    ) as http:
        asked = ChallengeRequest(partner=identity.partner).model_dump(mode="json")
        response = await http.post("/v1/sessions/challenge", json=asked)
        response.raise_for_status()
        challenge = Challenge.model_validate_json(response.content)
        request = identity.session_request(challenge, datetime.now(UTC))
        response = await http.post("/v1/sessions", json=request.model_dump(mode="json"))
        response.raise_for_status()
        return SessionGrant.model_validate_json(response.content).token


class _Connection(Protocol):
    async def send(self) -> str | None:
        """Send the request once; None for a 2xx answer, else what went wrong."""

    async def close(self) -> None: ...


class _HttpxConnection:
    def __init__(self, load: Load, headers: dict[str, str], verify: ssl.SSLContext | bool):
        self._path = load.path
        self._body = load.body.encode()
        self._headers = headers | {"content-type": "application/json"}
        self._http = httpx.AsyncClient(
            base_url=load.url,
            verify=verify,
            timeout=httpx.Timeout(load.timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def send(self) -> str | None:
        try:
            response = await self._http.post(self._path, content=self._body, headers=self._headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:300]}"

    async def close(self) -> None:
        await self._http.aclose()


class _RawConnection:
    """One HTTP/1.1 keep-alive connection, reopened after any failure."""

    def __init__(self, load: Load, headers: dict[str, str], tls: ssl.SSLContext | None):
        url = urlsplit(load.url)
        assert url.hostname is not None
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = tls
        self._timeout = load.timeout
        body = load.body.encode()
        lines = [
            f"POST {load.path} HTTP/1.1",
            f"Host: {url.netloc}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                if self._streams is None:
                    self._streams = await asyncio.open_connection(
                        self._host,
                        self._port,
                        ssl=self._tls,
                        server_hostname=self._host if self._tls else None,
                        limit=_MAX_HEAD,
                    )
                reader, writer = self._streams
                writer.write(self._request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = _content_length(head)
                if length is None:
                    await self.close()
                    return f"HTTP {status} without Content-Length (not handled by this client)"
                content = await reader.readexactly(length)
        except TimeoutError:  # before OSError, of which it is a subclass
            await self.close()
            return f"no answer within {self._timeout:g} s"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.close()
            return f"{type(exc).__name__}: {exc}"
        if b"\r\nconnection: close" in head.lower():
            await self.close()
        if 200 <= status < 300:
            return None
        return f"HTTP {status}: {content[:300].decode(errors='replace')}"

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            try:
                async with asyncio.timeout(2):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                pass


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


async def drive(load: Load) -> Result:
    if load.client not in CLIENTS:
        raise ValueError(f"unknown client {load.client!r}")
    tls: ssl.SSLContext | None = None
    if load.url.startswith("https:"):
        tls = ssl.create_default_context(cafile=load.ca_path)
    verify: ssl.SSLContext | bool = tls or True
    identity = None
    if load.session is not None:
        spec = load.session
        key = SigningKey.load(Path(spec.key_path))
        identity = Identity(
            partner=spec.partner, key=key, charter=spec.charter, purpose=spec.purpose
        )
    latencies: list[float] = []
    errors: list[str] = []
    ready, connected = asyncio.Event(), asyncio.Event()
    waiting = [load.concurrency]
    window: list[float] = [0.0, 0.0]  # start, end (perf_counter)

    async def worker() -> None:
        headers = {}
        if identity is not None:
            token = await _open_session(load, identity, verify)
            headers["Authorization"] = f"Bearer {token}"
        connection: _Connection = (
            _RawConnection(load, headers, tls)
            if load.client == "raw"
            else _HttpxConnection(load, headers, verify)
        )
        try:
            waiting[0] -= 1
            if waiting[0] == 0:
                connected.set()
            await ready.wait()
            start, end = window
            while (sent := time.perf_counter()) < end:
                failure = await connection.send()
                done = time.perf_counter()
                if failure is not None:
                    errors.append(failure)
                elif start <= done <= end:
                    latencies.append(done - sent)
        finally:
            await connection.close()

    result = Result()
    tasks = [asyncio.create_task(worker()) for _ in range(load.concurrency)]
    try:
        all_connected = asyncio.create_task(connected.wait())
        done, _ = await asyncio.wait(
            [all_connected, *tasks], timeout=_SETUP_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if all_connected not in done:
            all_connected.cancel()
            for task in done:
                task.result()  # raises the worker's error (a refused session, say)
            raise TimeoutError(f"the workers did not open their sessions within {_SETUP_SECONDS} s")
        begin = time.perf_counter()
        window[:] = [begin + load.warmup, begin + load.warmup + load.seconds]
        ready.set()
        await asyncio.sleep(max(window[0] - time.perf_counter(), 0.0))
        cpu_server, cpu_driver = _tree_cpu(load.server_pid), time.process_time()
        if load.window_mark is not None:
            Path(load.window_mark).touch()
        await asyncio.sleep(max(window[1] - time.perf_counter(), 0.0))
        result.server_cpu = (_tree_cpu(load.server_pid) - cpu_server) / load.seconds
        result.driver_cpu = (time.process_time() - cpu_driver) / load.seconds
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=load.timeout + 5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result.requests = len(latencies)
    result.seconds = load.seconds
    result.rps = len(latencies) / load.seconds
    result.errors = len(errors)
    result.first_error = errors[0] if errors else None
    if latencies:
        ms = sorted(x * 1e3 for x in latencies)
        result.p50_ms = statistics.median(ms)
        result.p99_ms = ms[max(0, math.ceil(0.99 * len(ms)) - 1)]  # nearest rank
        result.mean_ms = statistics.fmean(ms)
        result.max_ms = ms[-1]
    return result


def main() -> None:
    raw = json.load(sys.stdin)
    session = raw.pop("session", None)
    load = Load(**raw, session=SessionSpec(**session) if session else None)
    result = asyncio.run(drive(load))
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
