"""Where the three parties of a joint run meet, and the child process that is one of them.

:func:`run_party` starts :mod:`modelpact.services.joint_party` (the MPyC program) with this
party's spec on its stdin, answers its questions through a callback, and returns its result
— or raises the error it reported, or :class:`~modelpact.errors.ServerError` when it does not
end in time (it is killed).  :class:`Network` checks the TLS files before anything starts.
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from modelpact.crypto import check_private_file
from modelpact.crypto.tls import party_cert_index
from modelpact.errors import (
    Denied,
    InvalidInput,
    ModelpactError,
    NotFound,
    ServerError,
    quote_untrusted,
)
from modelpact.services import joint_party
from modelpact.services.joint_party import ROLES, PartySpec

__all__ = ["Ask", "Network", "Role", "Task", "run_party"]

_SLACK = 10.0  # seconds the parent waits past the child's own deadline before killing it
_PEERS_HINT = (
    "check --peers, that all three parties are running, and that every party certificate "
    "was issued by the same CA"
)


class Role(StrEnum):
    OWNER = "owner"  # party 0: holds the weights; only connects
    PARTNER = "partner"  # party 1: holds the rows (and labels)
    COMPUTE = "compute"  # party 2: the third party the charter names

    @property
    def party(self) -> int:
        """This role's MPyC party index."""
        return ROLES.index(self.value)


class Task(StrEnum):
    SCORE = "score"
    EVALUATE = "evaluate"


@dataclass(frozen=True)
class Network:
    """Where the three parties meet and the TLS files of this one.

    ``peers``: ``(host, port)`` of owner, partner and compute, in that order (the owner's
    port is unused: it only connects).  ``tls_dir`` holds ``mpyc_ca.crt``,
    ``party_<i>.crt`` and ``party_<i>.key`` (mode 0600), as MPyC names them.  ``listen``:
    the address to accept peers on (default: this party's host in ``peers``).
    """

    peers: tuple[tuple[str, int], ...]
    tls_dir: Path
    timeout: float = 600.0
    connect_timeout: float = 60.0
    listen: str | None = None

    @classmethod
    def parse(cls, peers: str, tls_dir: Path, **options: Any) -> Network:
        """``peers`` as ``host:port,host:port,host:port``."""
        found: list[tuple[str, int]] = []
        for item in peers.split(","):
            host, _, port = item.strip().rpartition(":")
            host = host.removeprefix("[").removesuffix("]")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidInput(
                    f"peer {quote_untrusted(item)} is not host:port",
                    hint="give three: owner,partner,compute, e.g. "
                    "127.0.0.1:5000,127.0.0.1:5001,127.0.0.1:5002",
                )
            found.append((host, int(port)))
        if len(found) != len(ROLES):
            raise InvalidInput(f"--peers names {len(found)} parties; a joint run has three")
        return cls(tuple(found), tls_dir, **options)

    def check(self, role: Role, now: datetime) -> None:
        """The TLS files exist, the key is private, and the certificate is this party's,
        from this CA and valid at ``now`` (the host's clock: OpenSSL checks against it): a
        wrong file fails here, not as a hung handshake."""
        ca, cert, key = (self.tls_dir / name for name in _tls_names(role))
        for path in (ca, cert, key):
            if not path.is_file():
                raise NotFound(f"{path} does not exist", hint="see 'modelpact mpc certs --help'")
        check_private_file(key)
        index = party_cert_index(cert.read_bytes(), ca.read_bytes(), now=now)
        if index != role.party:
            raise InvalidInput(
                f"{cert} is the certificate of party {index}, not of the {role} "
                f"(party {role.party})"
            )


def _tls_names(role: Role) -> tuple[str, str, str]:
    return "mpyc_ca.crt", f"party_{role.party}.crt", f"party_{role.party}.key"


# ---------------------------------------------------------------------------- the child


Ask = Callable[[dict[str, Any]], dict[str, Any]]


def run_party(
    role: Role,
    task: Task,
    network: Network,
    *,
    hello: dict[str, Any],
    secrets: dict[str, Any],
    on_ask: Ask | None = None,
) -> dict[str, Any]:
    """Run this party's child process to the end; its result, or the error it reported.

    ``secrets`` (weights, rows, labels) reach the child on its stdin pipe only.  The child
    gives up at ``network.timeout``; it is killed if it has not ended shortly after.
    """
    spec = PartySpec(
        role=role.value,
        task=task.value,
        peers=network.peers,
        hello=hello,
        timeout=network.timeout,
        connect_timeout=network.connect_timeout,
        listen=network.listen or network.peers[role.party][0],
        **secrets,
    )
    work = Path(tempfile.mkdtemp(prefix="modelpact-joint-"))  # 0700: only this user
    try:
        (work / ".config").symlink_to(network.tls_dir.resolve(), target_is_directory=True)
        result: dict[str, Any] = _supervise(spec, work, on_ask, deadline=network.timeout + _SLACK)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _supervise(spec: PartySpec, work: Path, on_ask: Ask | None, *, deadline: float) -> Any:
    debug = bool(os.environ.get("MODELPACT_DEBUG"))
    # Run as a script (-P: its folder is not put on sys.path), not with -m: that would
    # import modelpact.services first, the whole server stack, a second per party.
    child = subprocess.Popen(
        [sys.executable, "-P", joint_party.__file__],
        cwd=work,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if debug else subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
    )
    assert child.stdin is not None and child.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True)
    reader.start()
    timer = threading.Timer(deadline, child.kill)
    timer.start()
    try:
        _send(child, spec.to_json())
        while True:
            try:
                line = lines.get(timeout=deadline)
            except queue.Empty:  # unreachable while the timer runs: it ends the pipe first
                line = ""
            if not line:
                code = child.wait(timeout=5)
                if code < 0:
                    raise ServerError(
                        f"the joint run did not end within {deadline:g} s and was stopped",
                        hint=_PEERS_HINT,
                    )
                raise ServerError(
                    f"the party process stopped without a result (exit code {code})",
                    hint="rerun with MODELPACT_DEBUG=1 to see its output",
                )
            message = json.loads(line)
            event = message.get("event")
            if event == "ask":
                if on_ask is None:
                    raise ServerError("the party process asked a question nobody answers")
                _send(child, json.dumps(on_ask(message)))
            elif event == "done":
                child.wait(timeout=5)
                return message["result"]
            elif event == "failed":
                child.wait(timeout=5)
                raise _failure(str(message.get("kind")), str(message.get("summary")))
    finally:
        timer.cancel()
        if child.poll() is None:
            child.kill()
            child.wait(timeout=5)
        for stream in (child.stdin, child.stdout):
            stream.close()


def _pump(stream: io.TextIOBase, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


def _send(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdin is not None
    try:
        child.stdin.write(line + "\n")
        child.stdin.flush()
    except BrokenPipeError:  # it ended already: its last line says why
        pass


def _failure(kind: str, summary: str) -> ModelpactError:
    if kind == "denied":
        return Denied(summary, reasons=(summary,))
    if kind == "invalid":
        return InvalidInput(summary)
    return ServerError(summary, hint=_PEERS_HINT)
