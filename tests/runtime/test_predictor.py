"""Predictor: an accepted model, run from bytes on checked features."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime
import pytest
from onnx import TensorProto, helper

from modelpact.errors import InvalidInput, ModelRejected
from modelpact.runtime import Predictor
from tests.runtime.graphs import external_tensor, float_value, model_bytes

Dataset = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


@pytest.fixture(scope="module")
def predictor(logistic_onnx: bytes) -> Predictor:
    return Predictor.from_bytes(logistic_onnx, source="breast-cancer.onnx")


def test_predictions_match_scikit_learn(
    predictor: Predictor, logistic_regression: Any, breast_cancer: Dataset
) -> None:
    features, _labels = breast_cancer
    batch = features[:200].astype(np.float32)

    outputs = predictor.predict(batch)

    np.testing.assert_allclose(
        outputs["probabilities"], logistic_regression.predict_proba(batch), atol=1e-5
    )
    np.testing.assert_array_equal(outputs["label"], logistic_regression.predict(batch))


def test_names_and_width_are_reported(predictor: Predictor) -> None:
    assert predictor.input_names == ("input",)
    assert predictor.output_names == ("label", "probabilities")
    assert predictor.n_features == 30
    assert predictor.summary.op_types == ("LinearClassifier",)


def test_float64_and_integer_features_are_converted(
    predictor: Predictor, breast_cancer: Dataset
) -> None:
    features, _labels = breast_cancer
    as_float64 = predictor.predict(features[:5])
    as_float32 = predictor.predict(features[:5].astype(np.float32))
    np.testing.assert_array_equal(as_float64["probabilities"], as_float32["probabilities"])
    assert predictor.predict(np.ones((2, 30), dtype=np.int64))["label"].shape == (2,)


def test_wrong_number_of_features_is_invalid(predictor: Predictor) -> None:
    with pytest.raises(InvalidInput, match="expected 30 features per row, got 29"):
        predictor.predict(np.zeros((3, 29), dtype=np.float32))


@pytest.mark.parametrize("shape", [(30,), (1, 2, 30)])
def test_wrong_number_of_dimensions_is_invalid(
    predictor: Predictor, shape: tuple[int, ...]
) -> None:
    with pytest.raises(InvalidInput, match="2-D array"):
        predictor.predict(np.zeros(shape, dtype=np.float32))


def test_empty_batch_is_invalid(predictor: Predictor) -> None:
    with pytest.raises(InvalidInput, match="no rows"):
        predictor.predict(np.zeros((0, 30), dtype=np.float32))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e300])
def test_non_finite_values_are_invalid_and_not_echoed(predictor: Predictor, value: float) -> None:
    features = np.full((2, 30), 123456.5)
    features[1, 7] = value
    with pytest.raises(InvalidInput, match="NaN or infinite") as caught:
        predictor.predict(features)
    assert "123456" not in caught.value.diagnostics()


@pytest.mark.parametrize(
    "features",
    [
        [[0.0] * 30],
        np.array([["a"] * 30]),
        np.zeros((1, 30), dtype=bool),
        np.zeros((1, 30), dtype=complex),
    ],
    ids=["list", "strings", "bools", "complex"],
)
def test_non_numeric_features_are_invalid(predictor: Predictor, features: Any) -> None:
    with pytest.raises(InvalidInput, match="features must be"):
        predictor.predict(features)


def test_session_is_built_from_bytes_on_the_cpu_with_one_thread(
    logistic_onnx: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    real = onnxruntime.InferenceSession

    def spy(model: Any, sess_options: Any, providers: Any) -> Any:
        seen.update(model=model, options=sess_options, providers=providers)
        return real(model, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    Predictor.from_bytes(logistic_onnx)

    assert isinstance(seen["model"], bytes)
    assert seen["providers"] == ["CPUExecutionProvider"]
    assert seen["options"].intra_op_num_threads == 1
    assert seen["options"].inter_op_num_threads == 1
    assert seen["options"].optimized_model_filepath == ""
    level = seen["options"].graph_optimization_level
    assert level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_pickle_never_reaches_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        pytest.fail("onnxruntime was handed a refused artifact")

    monkeypatch.setattr(onnxruntime, "InferenceSession", forbidden)
    import pickle

    with pytest.raises(ModelRejected, match="pickle"):
        Predictor.from_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelRejected, match="self-contained"):
        Predictor.from_bytes(
            model_bytes(
                [helper.make_node("Add", ["x", "w"], ["y"])],
                initializers=[external_tensor("w", "../../etc/passwd")],
            )
        )


def test_zipmap_output_is_left_out(logistic_regression: Any) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    data = to_onnx(
        logistic_regression, initial_types=[("input", FloatTensorType([None, 30]))]
    ).SerializeToString()
    predictor = Predictor.from_bytes(data)
    assert predictor.output_names == ("output_label",)
    assert set(predictor.predict(np.zeros((1, 30)))) == {"output_label"}


def test_model_with_two_inputs_is_rejected() -> None:
    data = model_bytes(
        [helper.make_node("Add", ["x", "z"], ["y"])], inputs=[float_value("x"), float_value("z")]
    )
    with pytest.raises(ModelRejected, match="can only serve a model with a single float"):
        Predictor.from_bytes(data)


def test_model_with_integer_input_is_rejected() -> None:
    data = model_bytes(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        inputs=[helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3])],
    )
    with pytest.raises(ModelRejected, match="tensor\\(int64\\)"):
        Predictor.from_bytes(data)


def test_hand_built_model_runs_with_its_own_width() -> None:
    predictor = Predictor.from_bytes(model_bytes([helper.make_node("Relu", ["x"], ["y"])]))
    assert predictor.n_features == 3
    result = predictor.predict(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(result["y"], [[0.0, 0.0, 2.0]])


@pytest.mark.parametrize("threads", [0, -1, True])
def test_nonsense_thread_counts_are_invalid(logistic_onnx: bytes, threads: Any) -> None:
    with pytest.raises(InvalidInput, match="threads"):
        Predictor.from_bytes(logistic_onnx, intra_op_threads=threads)
