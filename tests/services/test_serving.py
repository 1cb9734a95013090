"""ModelServer against a real workspace with real registered scikit-learn models."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from onnx import TensorProto, helper

from modelpact.charter import OutputPolicy
from modelpact.crypto import canonical_digest
from modelpact.errors import InvalidInput, ModelpactError, NotFound, Tampered
from modelpact.runtime import PredictionFailed, Predictor
from modelpact.services import ModelRegistry, Workspace, init_workspace
from modelpact.services.serving import ModelServer, Prediction
from modelpact.wire import PredictRequest
from tests.runtime.graphs import model_bytes

Dataset = tuple[npt.NDArray[np.float64], npt.NDArray[Any]]
LABEL = OutputPolicy(kind="label")
TOP_2 = OutputPolicy(kind="top_k", k=2, decimals=3)
SCORES = OutputPolicy(kind="scores")
#: A feature value no error message may ever quote.
MARKER = 123456.789


@pytest.fixture(scope="module")
def cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    return features, labels


@pytest.fixture(scope="module")
def iris() -> Dataset:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    return features, np.array(["setosa", "versicolor", "virginica"])[labels]


@pytest.fixture(scope="module")
def cancer_model(cancer: Dataset) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="newton-cg", max_iter=1_000).fit(*cancer)


@pytest.fixture(scope="module")
def iris_model(iris: Dataset) -> Any:
    """Classes are strings: the served labels must be the model's own, not column numbers."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5_000).fit(*iris)


def _log_model(elem_type: int = TensorProto.FLOAT) -> bytes:
    """``y = log(x)`` over ``x: [N, 1]``: a "regressor" that answers NaN for x < 0."""
    value = helper.make_tensor_value_info
    return model_bytes(
        [helper.make_node("Log", ["x"], ["y"], name="log")],
        inputs=[value("x", elem_type, ["N", 1])],
        outputs=[value("y", elem_type, ["N", 1])],
    )


def _reshape_model() -> bytes:
    """``x: [N, 3]`` reshaped to ``[1, 3]``: loads fine, fails at run time for N > 1."""
    return model_bytes(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        initializers=[helper.make_tensor("shape", TensorProto.INT64, [2], [1, 3])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, cancer_model: Any, iris_model: Any
) -> Iterator[Workspace]:
    """One SQLite workspace with every model registered, for tests that only read it."""
    root: Path = tmp_path_factory.mktemp("serving")
    with init_workspace(root / "ws", database_url=f"sqlite:///{root / 'db.sqlite'}") as ws:
        registry = ModelRegistry(ws)
        registry.add_sklearn("cancer", cancer_model, version="1.0.0")
        registry.add_sklearn("iris", iris_model, version="1")
        registry.add("log", _log_model(), version="1", source="log.onnx")
        registry.add("log64", _log_model(TensorProto.DOUBLE), version="1", source="log64.onnx")
        registry.add("reshape", _reshape_model(), version="1", source="reshape.onnx")
        yield ws


@pytest.fixture(scope="module")
def server(shared: Workspace) -> ModelServer:
    return ModelServer(shared)


def _count(server: ModelServer, method: str, *, delay: float = 0.0) -> list[tuple[str, str]]:
    """Wrap the server's registry ``method`` (the instance's, not the class's); log its calls."""
    calls: list[tuple[str, str]] = []
    original: Callable[..., Any] = getattr(server.registry, method)

    def counted(model: str, version: str | None = None) -> Any:
        calls.append((model, version or ""))
        time.sleep(delay)
        return original(model, version)

    setattr(server.registry, method, counted)
    return calls


def _rows(features: npt.NDArray[np.float64], count: int = 5) -> list[list[float]]:
    return [[float(v) for v in row] for row in features[:count]]


# -- resolving versions ------------------------------------------------------------------


def test_no_version_means_the_served_one(workspace: Workspace, cancer_model: Any) -> None:
    registry = ModelRegistry(workspace)
    registry.add_sklearn("cancer", cancer_model, version="1")
    registry.add_sklearn("cancer", cancer_model, version="2")
    server = ModelServer(workspace)
    assert server.resolve("cancer", None) == "2"
    assert server.resolve("cancer", "1") == "1"
    registry.rollback("cancer", to_version="1")
    assert server.resolve("cancer", None) == "1"


@pytest.mark.parametrize(
    ("model", "version"),
    [
        ("nope", None),
        ("nope", "1"),
        ("cancer", "9.9"),
        ("cancer\n", None),
        ("cancer", "1.0.0\n"),
        ("Bad\x1b[2J", None),
        ("cancer", "../1"),
    ],
)
def test_unknown_model_or_version_is_not_found(
    server: ModelServer, model: str, version: str | None
) -> None:
    with pytest.raises(NotFound) as caught:
        server.resolve(model, version)
    assert "\x1b" not in caught.value.summary
    if version is not None:
        with pytest.raises(NotFound):
            server.predictor(model, version)
        with pytest.raises(NotFound):
            server.predict(model, version, [[1.0] * 30], policy=LABEL, max_rows=5)


# -- checking the batch ------------------------------------------------------------------

_WIDE = [1.0] * 30


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no rows to predict"),
        ([_WIDE] * 4, "batch of 4 rows exceeds the charter's max_batch_rows 3"),
        ([[MARKER] * 30, [MARKER] * 29], "row 1 has 29 values but row 0 has 30"),
        ([[MARKER] * 29] * 2, "rows have 29 values but cancer 1.0.0 takes 30 features"),
        ([[]], "rows hold no values"),
        ([_WIDE, [*_WIDE[:-1], float("nan")]], "row 1 holds NaN, an infinite value"),
        ([_WIDE, [*_WIDE[:-1], float("inf")]], "row 1 holds NaN, an infinite value"),
        ([[-float("inf"), *_WIDE[1:]]], "row 0 holds NaN, an infinite value"),
        ([[10**400, *_WIDE[1:]]], "or a number too large"),
        ([[MARKER] * 29 + [1e39]], "row 0 holds a value beyond the float32 range of cancer"),
        ([[*_WIDE[:-1], "1.5"]], "row 0 holds a value that is not a number"),
        ([[*_WIDE[:-1], True]], "not a number"),
        ([[*_WIDE[:-1], None]], "not a number"),
        ([[*_WIDE[:-1], [1.0]]], "not a number"),
        ([[*_WIDE[:-1], 1j]], "not a number"),
        (["1" * 30], "row 0 is not a list of numbers"),
        ([{"a": 1.0}], "row 0 is not a list of numbers"),
        ("rows", "rows must be a list of rows"),
    ],
)
def test_bad_batches_are_one_line_invalid_input(
    server: ModelServer, rows: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")) as caught:
        server.predict("cancer", "1.0.0", rows, policy=LABEL, max_rows=3)
    text = caught.value.diagnostics()
    assert "\n" not in text
    assert "123456" not in text


def test_json_nan_and_infinity_tokens_are_refused(server: ModelServer) -> None:
    values = ", ".join(["1.0"] * 29)
    for token in ("NaN", "Infinity", "-Infinity", "1e400"):
        request = PredictRequest.model_validate_json(f'{{"rows": [[{values}, {token}]]}}')
        with pytest.raises(InvalidInput, match="NaN, an infinite value"):
            server.predict("cancer", "1.0.0", request.rows, policy=LABEL, max_rows=3)


def test_float32_range_applies_only_to_float32_models(server: ModelServer) -> None:
    with pytest.raises(InvalidInput, match="float32 range of log 1"):
        server.predict("log", "1", [[1e39]], policy=SCORES, max_rows=1)
    (row,) = server.predict("log64", "1", [[1e39]], policy=SCORES, max_rows=1).outputs
    assert row["value"] == pytest.approx(np.log(1e39))


def test_bad_limits_and_policies_are_invalid_input(
    shared: Workspace, server: ModelServer, cancer: Dataset
) -> None:
    rows = _rows(cancer[0], 1)
    with pytest.raises(InvalidInput, match="max_rows must be a positive integer"):
        server.predict("cancer", "1.0.0", rows, policy=LABEL, max_rows=0)
    with pytest.raises(PredictionFailed, match="single output"):  # a classifier has two
        server.predict("cancer", "1.0.0", rows, policy=OutputPolicy(kind="embedding"), max_rows=1)
    with pytest.raises(InvalidInput, match="max_loaded"):
        ModelServer(shared, max_loaded=0)


# -- what comes back ------------------------------------------------------------------


def test_logistic_regression_agrees_with_scikit_learn(
    server: ModelServer, cancer_model: Any, cancer: Dataset
) -> None:
    features = cancer[0][:60]
    rows = _rows(features, 60)
    expected_labels = cancer_model.predict(features).tolist()
    expected = cancer_model.predict_proba(features)

    labels = server.predict("cancer", "1.0.0", rows, policy=LABEL, max_rows=60).outputs
    assert labels == [{"label": label} for label in expected_labels]

    tops = server.predict("cancer", "1.0.0", rows, policy=TOP_2, max_rows=60).outputs
    scores = server.predict("cancer", "1.0.0", rows, policy=SCORES, max_rows=60).outputs
    for i, (top, full) in enumerate(zip(tops, scores, strict=True)):
        assert set(top) == {"top_k"}
        assert set(full) == {"scores"}
        best, second = top["top_k"]  # type: ignore[misc]
        assert best["label"] == expected_labels[i]
        assert best["score"] == pytest.approx(expected[i].max(), abs=1e-3 / 2 + 1e-5)
        assert second["score"] == pytest.approx(expected[i].min(), abs=1e-3 / 2 + 1e-5)
        served = [entry["score"] for entry in full["scores"]]  # type: ignore[attr-defined]
        assert [entry["label"] for entry in full["scores"]] == [0, 1]  # type: ignore[attr-defined]
        assert served == pytest.approx(expected[i].tolist(), abs=1e-5)


def test_string_classes_come_from_the_model(
    server: ModelServer, iris_model: Any, iris: Dataset
) -> None:
    features = iris[0][::10]
    rows = _rows(features, len(features))
    labels = server.predict("iris", "1", rows, policy=LABEL, max_rows=20).outputs
    assert [row["label"] for row in labels] == iris_model.predict(features).tolist()
    scores = server.predict("iris", "1", rows, policy=SCORES, max_rows=20).outputs
    expected = iris_model.predict_proba(features)
    for row, probabilities in zip(scores, expected, strict=True):
        entries: list[dict[str, Any]] = row["scores"]  # type: ignore[assignment]
        assert [e["label"] for e in entries] == iris_model.classes_.tolist()
        assert [e["score"] for e in entries] == pytest.approx(probabilities.tolist(), abs=1e-5)


def test_a_regressors_value_and_its_nan_output(server: ModelServer) -> None:
    policy = OutputPolicy(kind="scores", decimals=3)
    assert server.predict("log", "1", [[1.0], [np.e]], policy=policy, max_rows=2).outputs == [
        {"value": 0.0},
        {"value": 1.0},
    ]
    for bad in (-1.0, 0.0):  # log gives NaN and -inf
        with pytest.raises(PredictionFailed, match="NaN or infinite"):
            server.predict("log", "1", [[1.0], [bad]], policy=policy, max_rows=2)
    with pytest.raises(PredictionFailed, match="needs a classifier"):
        server.predict("log", "1", [[1.0]], policy=LABEL, max_rows=2)


def test_a_failure_at_run_time_is_an_error_that_does_not_echo_inputs(
    server: ModelServer,
) -> None:
    # The predictor turns onnxruntime's own error (which may quote shapes or values) into one
    # line naming only the exception type.
    with pytest.raises(ModelpactError, match="could not run on these features") as caught:
        server.predict("reshape", "1", [[MARKER, 2.0, 3.0]] * 2, policy=SCORES, max_rows=2)
    assert "123456" not in caught.value.diagnostics()


def test_digests_are_stable_and_follow_the_inputs(server: ModelServer, cancer: Dataset) -> None:
    rows = _rows(cancer[0], 4)
    first = server.predict("cancer", "1.0.0", rows, policy=TOP_2, max_rows=4)
    again = server.predict("cancer", "1.0.0", rows, policy=TOP_2, max_rows=4)
    assert isinstance(first, Prediction)
    assert first == again
    assert first.input_digest == canonical_digest(rows)
    assert first.output_digest == canonical_digest(first.outputs)
    assert first.input_digest.startswith("sha256:") and len(first.input_digest) == 7 + 64

    changed = [list(row) for row in rows]
    changed[3][0] += 1.0
    other = server.predict("cancer", "1.0.0", changed, policy=TOP_2, max_rows=4)
    assert other.input_digest != first.input_digest

    flipped = [list(row) for row in rows]
    flipped[0] = _rows(cancer[0][cancer[1] != cancer[1][0]], 1)[0]  # a row of the other class
    assert server.predict("cancer", "1.0.0", flipped, policy=TOP_2, max_rows=4).output_digest != (
        first.output_digest
    )


def test_integers_and_floats_are_the_same_input(server: ModelServer) -> None:
    as_ints = [[1] * 30, [2] * 30]
    as_floats = [[1.0] * 30, [2.0] * 30]
    one = server.predict("cancer", "1.0.0", as_ints, policy=SCORES, max_rows=2)
    two = server.predict("cancer", "1.0.0", as_floats, policy=SCORES, max_rows=2)
    assert one == two


# -- loading once ----------------------------------------------------------------------


def test_a_version_is_verified_and_decrypted_once(shared: Workspace, cancer: Dataset) -> None:
    server = ModelServer(shared)
    verified = _count(server, "verify")
    decrypted = _count(server, "decrypt")
    rows = _rows(cancer[0], 2)
    for _ in range(3):
        server.predict("cancer", "1.0.0", rows, policy=LABEL, max_rows=2)
    assert server.predictor("cancer", "1.0.0") is server.predictor("cancer", "1.0.0")
    assert decrypted == [("cancer", "1.0.0")]
    assert verified == [("cancer", "1.0.0")]


def test_sessions_use_one_thread(server: ModelServer) -> None:
    predictor = server.predictor("cancer", "1.0.0")
    options = predictor._session.get_session_options()  # the Predictor exposes no accessor
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_least_recently_used_versions_are_unloaded(shared: Workspace) -> None:
    server = ModelServer(shared, max_loaded=2)
    decrypted = _count(server, "decrypt")
    for model in ("cancer", "iris", "cancer", "log", "cancer", "iris"):
        server.predictor(model, "1.0.0" if model == "cancer" else "1")
    # cancer stays in (used most recently each time); iris was pushed out by log.
    assert [model for model, _ in decrypted] == ["cancer", "iris", "log", "iris"]


def test_concurrent_first_use_loads_once(shared: Workspace) -> None:
    server = ModelServer(shared)
    decrypted = _count(server, "decrypt", delay=0.2)  # keep the first load in flight
    start = threading.Barrier(8)
    got: list[Predictor] = []
    errors: list[BaseException] = []

    def ask() -> None:
        start.wait()
        try:
            got.append(server.predictor("iris", "1"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(got) == 8
    assert all(p is got[0] for p in got)
    assert decrypted == [("iris", "1")]


def test_a_failed_load_is_shared_then_retried(shared: Workspace) -> None:
    server = ModelServer(shared)
    original = server.registry.decrypt
    calls = []

    def flaky(model: str, version: str) -> bytes:
        calls.append(model)
        if len(calls) == 1:
            time.sleep(0.5)  # the other threads are waiting for this load by now
            raise Tampered("the artifact file was modified")
        return original(model, version)

    server.registry.decrypt = flaky  # type: ignore[method-assign]
    start = threading.Barrier(4)
    outcomes: list[object] = []

    def ask() -> None:
        start.wait()
        try:
            outcomes.append(server.predictor("log", "1"))
        except Tampered as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 4
    assert all(isinstance(o, Tampered) for o in outcomes)
    assert len(calls) == 1
    assert isinstance(server.predictor("log", "1"), Predictor)  # not cached: tried again
    assert len(calls) == 2


def test_a_load_sees_the_registry_check_tampering(workspace: Workspace, cancer_model: Any) -> None:
    registry = ModelRegistry(workspace)
    registry.add_sklearn("cancer", cancer_model, version="1")
    artifact = next((workspace.root / "artifacts").rglob("artifact.enc"))
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 1
    artifact.write_bytes(bytes(data))
    with pytest.raises(Tampered):
        ModelServer(workspace).predictor("cancer", "1")
