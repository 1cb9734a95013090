"""Model workers: the same answers as in process, and a crashed or hung worker contained."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from modelpact.charter import OutputPolicy
from modelpact.errors import InvalidInput, ModelUnavailable, NotFound
from modelpact.runtime.worker_wire import WireError, decode, encode, rows_from_payload, rows_payload
from modelpact.services import ModelRegistry, Workspace
from modelpact.services.model_workers import WorkerPool
from modelpact.services.serving import ModelServer

MODEL = "fraud-detector"
SCORES = OutputPolicy.model_validate({"kind": "scores", "decimals": 4})


@pytest.fixture
def served(workspace: Workspace, onnx_bytes: bytes) -> Workspace:
    ModelRegistry(workspace).add(MODEL, onnx_bytes, version="1.0.0", source="m.onnx")
    return workspace


@pytest.fixture
def rows() -> list[list[float]]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().data[:5].tolist()  # type: ignore[no-any-return]


@pytest.fixture
def pool(served: Workspace) -> Iterator[WorkerPool]:
    workers = WorkerPool(served.root, size=1, timeout=20.0)
    yield workers
    workers.close()


def run(coro: Any, *pools: WorkerPool) -> Any:
    """Run a scenario, then stop the pools' workers on the same event loop."""

    async def scenario() -> Any:
        try:
            return await coro
        finally:
            for pool in pools:
                await pool.aclose()

    return asyncio.run(scenario())


async def predict(pool: WorkerPool, rows: list[list[float]], **options: Any) -> Any:
    arguments: dict[str, Any] = {"policy": SCORES, "max_rows": 64}
    return await pool.predict(MODEL, "1.0.0", rows, **(arguments | options))


def test_the_wire_format_round_trips_and_refuses_what_it_does_not_know() -> None:
    payload, count, width = rows_payload([[1.0, -0.5], [2.5, 1e300]])
    frame = encode({"id": 7, "op": "predict"}, payload)
    header, body = decode(frame[4:])
    assert header == {"id": 7, "op": "predict"}
    assert rows_from_payload(body, count, width) == [[1.0, -0.5], [2.5, 1e300]]
    with pytest.raises(WireError, match="version"):
        decode(b"\x02" + frame[5:])
    with pytest.raises(WireError, match="numeric id"):
        decode(encode({"op": "x"})[4:])
    with pytest.raises(WireError, match="size does not match"):
        rows_from_payload(body, 3, 2)
    with pytest.raises(ValueError):
        encode({"id": 1, "x": float("nan")})


def test_a_worker_answers_what_the_model_server_answers_in_process(
    served: Workspace, pool: WorkerPool, rows: list[list[float]]
) -> None:
    local = ModelServer(served).predict(MODEL, "1.0.0", rows, policy=SCORES, max_rows=64)

    async def scenario() -> tuple[Any, tuple[str, str]]:
        return await predict(pool, rows), await pool.digests(MODEL, "1.0.0")

    remote, (artifact, manifest) = run(scenario(), pool)
    assert remote == local
    assert artifact == ModelRegistry(served).get_version(MODEL, "1.0.0").digest
    assert manifest.startswith("sha256:")


def test_a_workers_refusals_keep_their_types(pool: WorkerPool, rows: list[list[float]]) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidInput, match="takes 30 features"):
            await pool.predict(MODEL, "1.0.0", [r[:5] for r in rows], policy=SCORES, max_rows=64)
        with pytest.raises(InvalidInput, match="exceeds the charter's max_batch_rows 2"):
            await pool.predict(MODEL, "1.0.0", rows, policy=SCORES, max_rows=2)
        with pytest.raises(NotFound):
            await pool.predict(MODEL, "9.9.9", rows, policy=SCORES, max_rows=64)
        # The worker is still the same process after refusals.
        assert len(pool.pids()) == 1

    run(scenario(), pool)


def test_a_crashed_worker_fails_its_requests_and_is_replaced(
    pool: WorkerPool, rows: list[list[float]]
) -> None:
    async def scenario() -> None:
        await predict(pool, rows)
        (first,) = pool.pids()
        in_flight = asyncio.ensure_future(predict(pool, rows * 20))
        os.kill(first, signal.SIGKILL)
        with pytest.raises(ModelUnavailable, match="exited"):
            await in_flight
        answer = await predict(pool, rows)
        assert len(answer.outputs) == len(rows)
        assert pool.pids() != [first]

    run(scenario(), pool)


def test_a_hung_worker_times_out_is_killed_and_replaced(
    served: Workspace, rows: list[list[float]]
) -> None:
    # Long enough for a fresh worker to start and load the model on a loaded 2-core machine.
    pool = WorkerPool(served.root, size=1, timeout=6.0)

    async def scenario() -> None:
        await predict(pool, rows)
        (first,) = pool.pids()
        os.kill(first, signal.SIGSTOP)  # alive, but never answers
        with pytest.raises(ModelUnavailable, match="did not answer within 6 s"):
            await predict(pool, rows)
        answer = await predict(pool, rows)
        assert len(answer.outputs) == len(rows) and pool.pids() != [first]

    run(scenario(), pool)


def test_a_worker_over_its_memory_limit_is_contained(
    served: Workspace, rows: list[list[float]]
) -> None:
    starved = WorkerPool(served.root, size=1, timeout=20.0, memory_mb=64)
    healthy = WorkerPool(served.root, size=1, timeout=20.0)

    async def scenario() -> None:
        with pytest.raises(ModelUnavailable):
            await predict(starved, rows)
        answer = await predict(healthy, rows)
        assert len(answer.outputs) == len(rows)

    run(scenario(), starved, healthy)


def hog_model() -> bytes:
    """A small, valid model whose answer needs 2.4 GB: one Tile of the input, 2e7 times."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    repeats = numpy_helper.from_array(np.array([1, 20_000_000], dtype=np.int64), name="reps")
    graph = helper.make_graph(
        [helper.make_node("Tile", ["input", "reps"], ["variable"])],
        "hog",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 30])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, None])],
        initializer=[repeats],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_a_model_that_allocates_without_bound_is_contained(
    served: Workspace, rows: list[list[float]]
) -> None:
    from modelpact.runtime import PredictionFailed

    ModelRegistry(served).add("hog", hog_model(), version="1.0.0", source="hog.onnx")
    pool = WorkerPool(served.root, size=1, timeout=60.0, memory_mb=1024)
    values = OutputPolicy.model_validate({"kind": "scores"})

    async def scenario() -> None:
        with pytest.raises((ModelUnavailable, PredictionFailed, InvalidInput)):
            await pool.predict("hog", "1.0.0", rows[:1], policy=values, max_rows=64)
        answer = await predict(pool, rows)  # the next request is served, by a worker
        assert len(answer.outputs) == len(rows)

    run(scenario(), pool)
