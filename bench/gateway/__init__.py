"""Gateway: the same ONNX model served bare and through modelpact's secure path, side by side.

Run: .venv/bin/python -m bench.gateway [--seconds 10] [--concurrency 16] [--rows 1]
     [--warmup 3] [--rounds 1] [--workers N] [--tls] [--mlserver [--mlserver-workers 1]]
     [--py-spy FILE]

One run, on loopback, every server in its own process and the load generator in another:

- bare: a FastAPI app with one POST endpoint running onnxruntime on the ONNX bytes, with the
  session options of modelpact's Predictor (:mod:`bench.gateway.bare`) — no protections;
- secure: the app of :func:`modelpact.gateway.app.create_app` over a temporary workspace on
  SQLite (the embedded default) holding the same model, one partner and a charter applied
  with limits that never throttle: session check, Cedar decision, metering, output policy,
  durable audit entry and receipt on every request; the models run in the gateway process;
- with ``--workers N``, the same with N model worker processes (what ``modelpact serve`` runs
  by default, with one): the gateway process then decrypts nothing and the model step goes to
  a worker over a pipe;
- with ``--tls``, the secure path again over HTTPS with the workspace's own certificate (the
  first two are both plain HTTP, so TLS is not part of their comparison);
- with ``--mlserver``, Seldon's MLServer serving the same classifier over its V2 protocol from
  its own venv (``scripts/bench-mlserver-venv.sh``; see :mod:`bench.gateway.mlserver`).

The two uvicorn servers run with the same settings (:data:`bench.gateway.serve.UVICORN`).
Before anything is timed every server answers the same rows, and their class probabilities
must agree.  The load generator (:mod:`bench.gateway.drive`, asyncio; wrk was not on the
machine this was written on) keeps ``--concurrency`` connections busy, each with its own
session on the secure path, opened with the SDK's protocol before the clock starts; after
``--warmup`` seconds it measures ``--seconds``.  Its default client writes pre-built HTTP/1.1
requests on asyncio streams: ``--client httpx`` spends more CPU per request than the bare
server itself and, sharing a 2-core machine with it, caps the baseline, which would flatter
every ratio.  It prints req/s, p50 and p99 latency, errors (any non-2xx; a run
with errors is invalid and exits 1), CPU used by the server and by the driver (a driver near
100 % of one core means it, not the server, was the limit), the ratios to bare — the
issue's targets are secure ≥ 0.7× bare's req/s and ≤ 2× its p99, judged for both secure
lines — and a machine line.
``--rounds N`` alternates the servers N times; ``--py-spy FILE`` adds one unmeasured secure
run under py-spy and prints where the gateway process spent its samples.
"""
