"""The MPyC program of a joint run: what one of the three parties executes, in a process of its own.

MPyC reads its options from ``sys.argv`` when ``mpyc.runtime`` is imported and keeps one
runtime per process, so each party is a child process (:mod:`modelpact.services.joint`
starts it) that runs this file as a script; it imports nothing of modelpact but
:mod:`modelpact.crypto`, so it starts in a fraction of a second.  The parent writes one JSON
line on the child's stdin — the :class:`PartySpec`: role, task, peers, the public hello,
and this party's secret input (the owner's weights, the partner's rows and labels) — and
the child answers with JSON lines on its stdout: ``ask`` events the owner's parent must
reply to (on stdin) before the run goes on, then one ``done`` or ``failed`` line.  Nothing
secret touches the disk and nothing is pickled.

The protocol, for parties 0 (owner), 1 (partner) and 2 (compute):

1. connect over mutual TLS and check that each peer's certificate names its index;
2. every party sends its *hello* (public: model interface, row count, metrics asked);
3. partner and compute say whether they are ready (the partner checks its labels and
   width against the owner's hello); the owner's parent decides (charter, quota, audit)
   and the owner broadcasts go or no-go, with the reason;
4. the owner secret-shares ``round(W·2^32)`` and ``round(b·2^56)``, the partner
   ``round(x·2^24)`` (and its labels), and the scores ``S = X·Wᵀ + b`` are computed exactly
   on secret-shared integers (Shamir, threshold 1), with no truncation;
5. *score*: ``S`` is opened to the partner only.  *evaluate*: the scores are truncated
   to 16 fractional bits, compared (accuracy) and sorted (AUC, with the labels carried
   along), the agreed metrics are opened to the owner, its parent audits them, the owner
   broadcasts go, and they are opened to the partner.

Hardening around MPyC, here in the child only: every message from a peer is unpickled
by an unpickler that refuses every global (MPyC pickles a few control messages; arrays
travel as field elements with ``--mix32-64bit``), a listening party binds the address
it is told instead of every interface, and the whole run has a deadline.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import math
import os
import pickle
import ssl
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpact.crypto import canonical_digest

__all__ = [
    "BOUND",
    "FRACTION_BITS",
    "ROLES",
    "PartySpec",
    "magnitude_bits",
    "main",
]

#: Party indices are fixed by role: the owner (index 0) only connects, never listens.
ROLES = ("owner", "partner", "compute")
#: Fractional bits of the fixed-point inputs: weights 2^-32, features 2^-24 (a weight's
#: rounding is multiplied by a feature of up to 2^20, a feature's by a small weight), so
#: the scores, with 56, are within about 1e-5 of the plaintext ones.
WEIGHT_FRACTION_BITS = 32
FEATURE_FRACTION_BITS = 24
FRACTION_BITS = WEIGHT_FRACTION_BITS + FEATURE_FRACTION_BITS
#: Largest magnitude of a feature, a weight or a bias (the integers must fit the field).
BOUND = 2.0**20
#: Fractional bits the scores keep for comparisons (accuracy, AUC).
_KEPT_BITS = 16
#: Fractional bits of the revealed AUC: exact to 2^-20 ≈ 1e-6.
_AUC_BITS = 20
#: Bit length of the secure integers: holds |S| < 2^(a + b + 2F + 2) for any a, b allowed.
_INT_BITS = 112
_MAX_SPEC = 512 * 1024 * 1024


class PartyFailure(Exception):
    """Why this party stops: ``kind`` is ``denied``, ``invalid`` or ``peers``."""

    def __init__(self, kind: str, summary: str) -> None:
        super().__init__(summary)
        self.kind = kind
        self.summary = summary


@dataclass(frozen=True)
class PartySpec:
    """What the parent tells one party (see the module docstring)."""

    role: str
    task: str
    peers: tuple[tuple[str, int], ...]
    hello: dict[str, Any]
    timeout: float
    connect_timeout: float
    listen: str | None = None
    weights: list[list[float]] | None = None  # owner: scores x features
    bias: list[float] | None = None
    rows: list[list[float]] | None = None  # partner
    labels: list[str] | None = None  # partner, evaluate: the class of each row, as text
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def index(self) -> int:
        return ROLES.index(self.role)

    @classmethod
    def from_json(cls, text: str) -> PartySpec:
        data = json.loads(text)
        data["peers"] = tuple((str(h), int(p)) for h, p in data["peers"])
        return cls(**data)

    def to_json(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        data["peers"] = [list(p) for p in self.peers]
        return json.dumps(data, separators=(",", ":"), allow_nan=False)


def magnitude_bits(values: Sequence[float]) -> int:
    """The least ``b >= 0`` with every ``|v| <= 2^b`` (public: a coarse magnitude)."""
    top = max((abs(v) for v in values), default=0.0)
    return max(0, math.ceil(math.log2(top))) if top > 1 else 0


# ---------------------------------------------------------------------------- hardening


class _PlainUnpickler(pickle.Unpickler):
    """Builds only plain data: a peer's message can never name a class or a function."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a peer sent a pickled global ({module}.{name})")


def _plain_loads(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


def _harden(runtime_module: types.ModuleType, mpc: Any, listen: str | None) -> None:
    """Peers' pickles decode to plain data only; a listener binds ``listen`` only."""
    runtime_module.pickle = types.SimpleNamespace(dumps=pickle.dumps, loads=_plain_loads)  # type: ignore[attr-defined]
    if not mpc.options.mix32_64bit:  # arrays would travel as pickles
        raise PartyFailure("invalid", "MPyC must run with --mix32-64bit")
    if listen:
        loop = mpc._loop
        loop.create_server = functools.partial(loop.create_server, host=listen)


class _ConnectionErrors(logging.Handler):
    """Keeps why connections failed: MPyC logs it at debug, asyncio's listener through the
    loop's exception handler.  A TLS failure is kept over later refusals (it is the cause)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.tls: str | None = None
        self.last: str | None = None

    def note(self, error: BaseException) -> None:
        text = " ".join(str(error).split())[:200]
        if isinstance(error, ssl.SSLError):
            self.tls = text
        else:
            self.last = text

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, OSError):
            self.note(record.msg)
        elif record.exc_info and isinstance(record.exc_info[1], ssl.SSLError):
            self.note(record.exc_info[1])

    def handler(self, previous: Callable[..., Any] | None) -> Callable[..., Any]:
        """A loop exception handler that notes TLS failures, then calls ``previous``."""

        def handle(loop: Any, context: dict[str, Any]) -> None:
            error = context.get("exception")
            if isinstance(error, ssl.SSLError):
                self.note(error)
                return  # a refused handshake: said once, in the failure, not as a traceback
            if isinstance(error, ConnectionResetError) and "transport" in context:
                # A client that does not trust our certificate just hangs up mid-handshake.
                self.tls = self.tls or "a peer broke off the TLS handshake: does it trust our CA?"
                return
            if previous is None:
                loop.default_exception_handler(context)
            else:
                previous(loop, context)

        return handle

    @property
    def cause(self) -> str | None:
        return self.tls or self.last


def _watch_connections() -> _ConnectionErrors:
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    watcher = _ConnectionErrors()
    root.addHandler(watcher)
    root.setLevel(logging.DEBUG)
    return watcher


# ---------------------------------------------------------------------------- the parent


class _Parent:
    """The JSON-lines channel to the parent process."""

    def __init__(self, out: io.TextIOBase) -> None:
        self._out = out

    def send(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n")
        self._out.flush()

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send({"event": "ask", **message})
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if not line:
            raise PartyFailure("invalid", "the owner's process stopped answering")
        answer: dict[str, Any] = json.loads(line)
        return answer


# ---------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class _Shape:
    rows: int
    features: int
    outputs: int
    classes: int
    weight_bits: int
    row_bits: int
    metrics: tuple[str, ...]

    @property
    def score_bits(self) -> int:
        """|S| < 2^score_bits (S: scores times 2^56)."""
        return self.weight_bits + self.row_bits + FRACTION_BITS + 2

    @property
    def kept_bits(self) -> int:
        """|T| < 2^kept_bits (T: scores times 2^16)."""
        return self.weight_bits + self.row_bits + _KEPT_BITS + 2


def _message(hello: Any, index: int) -> dict[str, Any]:
    if not isinstance(hello, str):
        raise PartyFailure("peers", f"party {index} sent something that is not a hello")
    try:
        found = json.loads(hello)
    except ValueError:
        raise PartyFailure("peers", f"party {index} sent a hello that is not JSON") from None
    if not isinstance(found, dict):
        raise PartyFailure("peers", f"party {index} sent a hello that is not an object")
    return found


def _agree(task: str, hellos: list[dict[str, Any]]) -> _Shape:
    """The public shape of the run, once every hello is what its role should send."""
    for index, (role, hello) in enumerate(zip(ROLES, hellos, strict=True)):
        if hello.get("role") != role:
            raise PartyFailure("invalid", f"party {index} is not the {role} of this run")
        if hello.get("task") != task:
            raise PartyFailure(
                "invalid", f"the {role} joined for a {hello.get('task')!r} run, not {task!r}"
            )
    owner, partner = hellos[0], hellos[1]
    try:
        shape = _Shape(
            rows=int(partner["rows"]),
            features=int(owner["features"]),
            outputs=int(owner["outputs"]),
            classes=len(owner.get("labels") or ()),
            weight_bits=int(owner["weight_bits"]),
            row_bits=int(partner["row_bits"]),
            metrics=tuple(str(m) for m in partner.get("metrics", ())),
        )
    except (KeyError, TypeError, ValueError):
        raise PartyFailure("invalid", "a hello lacks the run's shape") from None
    if shape.score_bits >= _INT_BITS:
        raise PartyFailure(
            "invalid", "the scores could exceed the joint range (too many or too large values)"
        )
    return shape


def _own_readiness(spec: PartySpec, hellos: list[dict[str, Any]]) -> str | None:
    """Why this party (partner or compute) will not go on, or None."""
    if spec.role != "partner":
        return None
    owner = hellos[0]
    if owner.get("charter") != spec.hello.get("charter"):
        return (
            f"the owner runs under charter {owner.get('charter')!r}, the partner joined "
            f"under {spec.hello.get('charter')!r}"
        )
    if owner.get("features") != spec.hello["features"]:
        return (
            f"the model takes {owner.get('features')} features; the partner's rows have "
            f"{spec.hello['features']}"
        )
    if spec.task == "evaluate":
        labels = [str(c) for c in owner.get("labels") or ()]
        unknown = sum(1 for text in spec.labels or () if text not in labels)
        if unknown:
            return f"{unknown} of the partner's labels are not among the model's classes"
    return None


async def _exchange(mpc: Any, text: str | None, senders: Sequence[int]) -> list[dict[str, Any]]:
    received = await mpc.transfer(text, senders=list(senders))
    return [_message(h, i) for i, h in zip(senders, received, strict=True)]


async def _connect(mpc: Any, spec: PartySpec, watcher: _ConnectionErrors) -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)  # only then does asyncio log a listener's failed TLS handshakes
    try:
        await asyncio.wait_for(mpc.start(), spec.connect_timeout)
        loop.set_debug(False)
        logging.getLogger().setLevel(logging.WARNING)  # MPyC logs per operation at debug
    except TimeoutError:
        cause = f" (last error: {watcher.cause})" if watcher.cause else ""
        raise PartyFailure(
            "peers",
            f"the other parties did not all connect within {spec.connect_timeout:g} s{cause}",
        ) from None
    for peer in mpc.parties:
        if peer.pid == mpc.pid:
            continue
        transport = peer.protocol.transport
        cert = transport.get_extra_info("peercert") or {}
        names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
        if names != [f"MPyC party {peer.pid}"]:
            raise PartyFailure(
                "peers", f"the peer connected as party {peer.pid} has another certificate"
            )


def _scaled(values: Any, bits: int) -> Any:
    """``round(values · 2^bits)`` as exact Python integers (an object array)."""
    array = np.asarray(values, dtype=np.float64)
    return np.vectorize(lambda v: round(float(v) * 2.0**bits), otypes=[object])(array)


def _sort_by_first_row(mpc: Any, a: Any, bits: int) -> Any:
    """``a`` (2 x n) with its columns sorted by the first row: MPyC's Batcher network, with
    comparisons told the values' bit length (they are then much cheaper)."""
    n = a.shape[1]
    if n <= 1:
        return a
    t = (n - 1).bit_length()
    p = 1 << t - 1
    while p:
        d, q, r = p, 1 << t - 1, 0
        while d:
            pick = np.fromiter((i for i in range(n - d) if i & p == r), dtype=int)
            b0, b1 = a[:, pick], a[:, pick + d]
            h = mpc.np_sgn(b1[0] - b0[0], l=bits, LT=True) * (b1 - b0)
            a = mpc.np_update(a, (slice(None), pick), b0 + h)
            a = mpc.np_update(a, (slice(None), pick + d), b1 - h)
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return a


def _floor_ratio(mpc: Any, num: Any, den: Any, size: int) -> Any:
    """``floor(num · 2^20 / den)`` for 0 <= num <= den, by long division on shares in base
    16: five rounds of comparisons made at once, rather than 21 one after another (the
    first digit may be 16: the ratio may be 1)."""
    rest = num * (1 << _AUC_BITS)
    quotient = 0
    for shift in range(_AUC_BITS - 4, -1, -4):
        top = 16 if shift == _AUC_BITS - 4 else 15
        trials = mpc.np_fromlist([rest - (digit << shift) * den for digit in range(1, top + 1)])
        digit = top - mpc.np_sum(mpc.np_sgn(trials, l=size, LT=True))
        quotient = quotient + digit * (1 << shift)
        rest = rest - digit * (1 << shift) * den
    return quotient


def _metrics(mpc: Any, shape: _Shape, scores: Any, labels: Any) -> list[Any]:
    """The asked metrics on shares, in ``shape.metrics`` order (accuracy: the count of
    rows right; auc: floor(AUC · 2^20))."""
    kept = mpc.np_trunc(scores, f=FRACTION_BITS - _KEPT_BITS, l=shape.score_bits)
    bits = shape.kept_bits
    n = shape.rows
    if shape.classes == 2:
        margin = kept[:, 0] if shape.outputs == 1 else kept[:, 1] - kept[:, 0]
    found: list[Any] = []
    for metric in shape.metrics:
        if metric == "accuracy" and shape.classes == 2:
            positive = mpc.np_sgn(-margin, l=bits, LT=True)  # sklearn: class 1 iff score > 0
            right = 1 - labels - positive + 2 * labels * positive
            found.append(mpc.np_sum(right))
        elif metric == "accuracy":
            own = mpc.np_sum(labels * kept, axis=1)
            beaten = mpc.np_sgn(own.reshape(n, 1) - kept, l=bits + 1, LT=True)
            wrong = mpc.np_sum(beaten, axis=1)
            found.append(mpc.np_sum(mpc.np_sgn(wrong, l=shape.outputs.bit_length() + 2, EQ=True)))
        else:  # auc, binary: rank sum of the positives (Mann-Whitney U)
            ordered = _sort_by_first_row(mpc, mpc.np_stack([margin, labels]), bits)
            ranks = np.arange(1, n + 1, dtype=object)
            positives = mpc.np_sum(labels)
            u = mpc.np_sum(ordered[1] * ranks) - positives * (positives + 1) / 2
            pairs = positives * (n - positives)
            size = 2 * n.bit_length() + _AUC_BITS + 4
            found.append(_floor_ratio(mpc, u, pairs, size))
    return found


def _decode(metrics: Sequence[str], values: Sequence[Any], rows: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric, value in zip(metrics, values, strict=True):
        number = int(value)
        out[metric] = number / rows if metric == "accuracy" else number / 2**_AUC_BITS
    return out


async def _session(mpc: Any, spec: PartySpec, parent: _Parent, watcher: _ConnectionErrors) -> Any:
    secint = mpc.SecInt(_INT_BITS)
    await _connect(mpc, spec, watcher)
    own = json.dumps({**spec.hello, "role": spec.role, "task": spec.task}, sort_keys=True)
    started = asyncio.get_running_loop().time()
    hellos = await _exchange(mpc, own, range(3))
    transcript = canonical_digest(hellos)
    shape: _Shape | None = None
    try:
        shape = _agree(spec.task, hellos)
        reason = _own_readiness(spec, hellos)
    except PartyFailure as failure:
        reason = failure.summary
    ready = json.dumps({"ready": reason is None, "reason": reason})
    readiness = await _exchange(mpc, ready if spec.index else None, (1, 2))
    verdict = None
    if spec.role == "owner":
        answer = await parent.ask(
            {
                "step": "admit",
                "hellos": hellos,
                "ready": readiness,
                "problem": reason,
                "transcript": transcript,
            }
        )
        verdict = json.dumps({"go": bool(answer.get("go")), "reason": answer.get("reason")})
    (go,) = await _exchange(mpc, verdict, (0,))
    if not go.get("go"):
        await mpc.shutdown()
        raise PartyFailure("denied", str(go.get("reason") or "the owner refused the run"))
    assert shape is not None  # every party agreed on it to say go
    n, d, k = shape.rows, shape.features, shape.outputs

    def shared(values: Any, dims: tuple[int, ...], sender: int) -> Any:
        local = values if spec.index == sender else np.zeros(dims, dtype=object)
        return mpc.input(secint.array(local), senders=sender)

    weights = shared(
        None if spec.weights is None else _scaled(spec.weights, WEIGHT_FRACTION_BITS).T,
        (d, k),
        0,
    )
    bias = shared(None if spec.bias is None else _scaled(spec.bias, FRACTION_BITS), (k,), 0)
    rows = shared(
        None if spec.rows is None else _scaled(spec.rows, FEATURE_FRACTION_BITS), (n, d), 1
    )
    scores = mpc.np_matmul(rows, weights) + bias
    if spec.task == "score":
        opened = await mpc.output(scores, receivers=[1])
        await mpc.shutdown()
        elapsed = asyncio.get_running_loop().time() - started
        if spec.role != "partner":
            return {"transcript": transcript, "rows": n, "seconds": elapsed}
        values = [[int(v) / 2.0**FRACTION_BITS for v in row] for row in opened.tolist()]
        return {"transcript": transcript, "rows": n, "owner": hellos[0], "scores": values,
                "seconds": elapsed}  # fmt: skip
    labels = shared(_label_input(spec, hellos[0], shape), _label_dims(shape), 1)
    values = _metrics(mpc, shape, scores, labels)
    to_owner = await mpc.output(values, receivers=[0])
    release = None
    if spec.role == "owner":
        metrics = _decode(shape.metrics, to_owner, n)
        answer = await parent.ask({"step": "release", "metrics": metrics})
        release = json.dumps({"go": bool(answer.get("go")), "reason": answer.get("reason")})
    (go,) = await _exchange(mpc, release, (0,))
    if not go.get("go"):
        await mpc.shutdown()
        raise PartyFailure("denied", str(go.get("reason") or "the owner withheld the metrics"))
    to_partner = await mpc.output(values, receivers=[1])
    await mpc.shutdown()
    elapsed = asyncio.get_running_loop().time() - started
    result: dict[str, Any] = {"transcript": transcript, "rows": n, "owner": hellos[0],
                              "seconds": elapsed}  # fmt: skip
    if spec.role == "owner":
        result["metrics"] = _decode(shape.metrics, to_owner, n)
    elif spec.role == "partner":
        result["metrics"] = _decode(shape.metrics, to_partner, n)
    return result


def _label_dims(shape: _Shape) -> tuple[int, ...]:
    return (shape.rows,) if shape.classes == 2 else (shape.rows, shape.outputs)


def _label_input(spec: PartySpec, owner: dict[str, Any], shape: _Shape) -> Any:
    """The partner's labels as class indices (binary) or one-hot rows (more classes)."""
    if spec.labels is None:
        return None
    classes = [str(c) for c in owner.get("labels") or ()]
    index = np.array([classes.index(text) for text in spec.labels], dtype=object)
    if shape.classes == 2:
        return index
    onehot = np.zeros((shape.rows, shape.outputs), dtype=object)
    onehot[np.arange(shape.rows), index.astype(int)] = 1
    return onehot


def _mpyc_argv(spec: PartySpec) -> list[str]:
    argv = ["modelpact-joint-party", "--ssl", "--no-log", "--mix32-64bit", "-I", str(spec.index)]
    for host, port in spec.peers:
        argv += ["-P", f"{host}:{port}"]
    return argv


def main(
    stdin: io.TextIOBase | None = None,
    importer: Callable[[], tuple[types.ModuleType, Any]] | None = None,
) -> int:
    """Run one party from the spec on stdin; report on the channel fd (stdout at start)."""
    # Our messages go on the original stdout; anything MPyC prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    parent = _Parent(channel)
    line = (stdin or sys.stdin).readline(_MAX_SPEC)
    try:
        spec = PartySpec.from_json(line)
    except (ValueError, TypeError, KeyError):
        parent.send({"event": "failed", "kind": "invalid", "summary": "unreadable party spec"})
        return 2
    sys.argv = _mpyc_argv(spec)
    runtime_module, mpc = (importer or _import_mpyc)()
    watcher = _watch_connections()
    loop = mpc._loop
    loop.set_exception_handler(watcher.handler(loop.get_exception_handler()))
    try:
        _harden(runtime_module, mpc, spec.listen)
        result = mpc.run(
            asyncio.wait_for(_session(mpc, spec, parent, watcher), timeout=spec.timeout)
        )
    except PartyFailure as failure:
        parent.send({"event": "failed", "kind": failure.kind, "summary": failure.summary})
        return 1
    except TimeoutError:
        summary = f"the run did not finish within {spec.timeout:g} s: a party stopped answering"
        parent.send({"event": "failed", "kind": "peers", "summary": summary})
        return 1
    except (ConnectionError, OSError) as error:
        summary = f"the connection to a party failed: {' '.join(str(error).split())[:200]}"
        parent.send({"event": "failed", "kind": "peers", "summary": summary})
        return 1
    parent.send({"event": "done", "result": result})
    return 0


def _import_mpyc() -> tuple[types.ModuleType, Any]:
    import mpyc.runtime

    return mpyc.runtime, mpyc.runtime.mpc


if __name__ == "__main__":
    sys.exit(main())
