"""shape_outputs: what each output policy lets a partner see, from small hand-made outputs."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from modelpact.charter import OutputPolicy
from modelpact.errors import InvalidInput, ModelpactError
from modelpact.runtime import PredictionFailed, shape_outputs

LABEL = OutputPolicy(kind="label")
SCORES = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
RAW = {"label": np.array([1, 0], dtype=np.int64), "probabilities": SCORES}


def _plain(value: object) -> bool:
    """True when ``value`` holds only dicts, lists and plain str/int/float (no numpy)."""
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return type(value) in (str, int, float)


def _decimals(number: float) -> int:
    exponent = Decimal(repr(number)).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# -- each kind -----------------------------------------------------------------------------


def test_label_shows_the_models_label_and_nothing_else() -> None:
    outputs = shape_outputs(RAW, LABEL, labels=None)
    assert outputs == [{"label": 1}, {"label": 0}]
    assert all(set(row) == {"label"} for row in outputs)
    assert "score" not in json.dumps(outputs)


def test_top_k_is_highest_first_and_rounded() -> None:
    policy = OutputPolicy(kind="top_k", k=2, decimals=1)
    assert shape_outputs(RAW, policy, labels=None) == [
        {"top_k": [{"label": 1, "score": 0.7}, {"label": 2, "score": 0.2}]},
        # ties keep column order
        {"top_k": [{"label": 0, "score": 0.5}, {"label": 1, "score": 0.2}]},
    ]


def test_top_k_larger_than_the_classes_gives_every_class() -> None:
    outputs = shape_outputs(RAW, OutputPolicy(kind="top_k", k=10), labels=None)
    assert [len(row["top_k"]) for row in outputs] == [3, 3]  # type: ignore[arg-type]


def test_scores_give_every_class_in_column_order() -> None:
    outputs = shape_outputs(RAW, OutputPolicy(kind="scores", decimals=2), labels=None)
    assert outputs == [
        {
            "scores": [
                {"label": 0, "score": 0.1},
                {"label": 1, "score": 0.7},
                {"label": 2, "score": 0.2},
            ]
        },
        {
            "scores": [
                {"label": 0, "score": 0.5},
                {"label": 1, "score": 0.25},
                {"label": 2, "score": 0.25},
            ]
        },
    ]


def test_scores_without_decimals_keep_the_models_precision() -> None:
    outputs = shape_outputs(RAW, OutputPolicy(kind="scores"), labels=None)
    first = outputs[0]["scores"][1]["score"]  # type: ignore[index]
    assert first == float(np.float32(0.7))


def test_given_labels_name_the_columns() -> None:
    raw = {"label": np.array(["fraud", "ok"], dtype=object), "probabilities": SCORES}
    labels = ["ok", "fraud", "review"]
    assert shape_outputs(raw, OutputPolicy(kind="top_k", k=1), labels=labels) == [
        {"top_k": [{"label": "fraud", "score": pytest.approx(0.7)}]},
        {"top_k": [{"label": "ok", "score": 0.5}]},
    ]
    assert shape_outputs(raw, LABEL, labels=labels) == [{"label": "fraud"}, {"label": "ok"}]


def test_label_without_a_label_output_is_the_top_column() -> None:
    raw = {"probabilities": SCORES}
    assert shape_outputs(raw, LABEL, labels=None) == [{"label": 1}, {"label": 0}]
    assert shape_outputs(raw, LABEL, labels=["a", "b", "c"]) == [{"label": "b"}, {"label": "a"}]


def test_string_labels_without_column_labels_serve_the_label_only() -> None:
    # The label output is the model's own answer: it needs no column names.
    raw = {"label": np.array(["b", "a"], dtype=object), "probabilities": SCORES}
    assert shape_outputs(raw, LABEL, labels=None) == [{"label": "b"}, {"label": "a"}]
    # Scores would be named 0, 1, 2 while the model says "b": refused, not mislabelled.
    with pytest.raises(PredictionFailed, match="disagrees with its scores"):
        shape_outputs(raw, OutputPolicy(kind="scores"), labels=None)


def test_labels_that_disagree_with_the_model_are_refused() -> None:
    raw = {"label": np.array([13, 3], dtype=np.int64), "probabilities": SCORES}
    with pytest.raises(PredictionFailed, match="column-index class labels"):
        shape_outputs(raw, OutputPolicy(kind="top_k", k=1), labels=None)
    with pytest.raises(PredictionFailed, match="the given class labels"):
        shape_outputs(raw, OutputPolicy(kind="top_k", k=1), labels=[13, 3, 23])
    assert shape_outputs(raw, OutputPolicy(kind="top_k", k=1), labels=[3, 13, 23]) == [
        {"top_k": [{"label": 13, "score": pytest.approx(0.7)}]},
        {"top_k": [{"label": 3, "score": 0.5}]},
    ]


def test_a_label_on_a_tied_column_agrees() -> None:
    raw = {"label": np.array([1], dtype=np.int64), "probabilities": np.array([[0.5, 0.5]])}
    assert shape_outputs(raw, OutputPolicy(kind="scores"), labels=None)[0] == {
        "scores": [{"label": 0, "score": 0.5}, {"label": 1, "score": 0.5}]
    }


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a", "b"], "do not fit the 3 score columns"),
        (["a", "b", "a"], "more than once"),
        ("abc", "text"),
    ],
)
def test_malformed_labels_are_refused(labels: Any, message: str) -> None:
    with pytest.raises(PredictionFailed, match=message):
        shape_outputs({"probabilities": SCORES}, OutputPolicy(kind="scores"), labels=labels)


def test_regressor_values_are_served_under_scores_only() -> None:
    raw = {"variable": np.array([[206.116684], [-0.0001]], dtype=np.float32)}
    assert shape_outputs(raw, OutputPolicy(kind="scores", decimals=2), labels=None) == [
        {"value": 206.12},
        {"value": 0.0},
    ]
    flat = {"variable": np.array([1.5, 2.5])}
    assert shape_outputs(flat, OutputPolicy(kind="scores"), labels=None) == [
        {"value": 1.5},
        {"value": 2.5},
    ]
    for policy in (LABEL, OutputPolicy(kind="top_k", k=1)):
        with pytest.raises(PredictionFailed, match="needs a classifier"):
            shape_outputs(raw, policy, labels=None)


@pytest.mark.parametrize(
    "raw",
    [
        {"a": np.zeros((2, 1)), "b": np.zeros((2, 1))},
        {"variable": np.zeros((2, 3))},
        {"variable": np.array(["x", "y"])},
        {},
    ],
    ids=["two-unknown-outputs", "multi-target", "text", "nothing"],
)
def test_outputs_that_are_neither_classifier_nor_regressor_are_refused(
    raw: dict[str, npt.NDArray[Any]],
) -> None:
    with pytest.raises(PredictionFailed):
        shape_outputs(raw, OutputPolicy(kind="scores"), labels=None)


def test_mismatched_output_shapes_are_refused() -> None:
    with pytest.raises(PredictionFailed, match="3 labels for 2 rows"):
        shape_outputs({"label": np.array([0, 1, 2]), "probabilities": SCORES}, LABEL, labels=None)
    with pytest.raises(PredictionFailed, match=r"\[rows, classes\]"):
        shape_outputs({"probabilities": np.zeros(3)}, LABEL, labels=None)


def test_a_classifier_without_scores_answers_only_with_its_label() -> None:
    raw = {"label": np.array([2, 0])}
    assert shape_outputs(raw, LABEL, labels=None) == [{"label": 2}, {"label": 0}]
    with pytest.raises(PredictionFailed, match="needs class scores"):
        shape_outputs(raw, OutputPolicy(kind="top_k", k=1), labels=None)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    "policy",
    [LABEL, OutputPolicy(kind="top_k", k=1), OutputPolicy(kind="scores", decimals=2)],
    ids=["label", "top_k", "scores"],
)
def test_non_finite_model_output_is_an_error_not_a_crash(bad: float, policy: OutputPolicy) -> None:
    scores = SCORES.copy()
    scores[1, 2] = bad
    with pytest.raises(PredictionFailed, match="NaN or infinite") as caught:
        shape_outputs({"label": RAW["label"], "probabilities": scores}, policy, labels=None)
    assert isinstance(caught.value, ModelpactError)
    if policy.kind == "scores":
        with pytest.raises(PredictionFailed, match="NaN or infinite"):
            shape_outputs({"variable": np.array([[1.0], [bad]])}, policy, labels=None)


def test_embeddings_are_a_single_output_turned_by_the_given_rotation() -> None:
    embedding = OutputPolicy(kind="embedding")
    with pytest.raises(PredictionFailed, match="single output"):
        shape_outputs(RAW, embedding, labels=None)
    vectors = {"variable": np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)}
    with pytest.raises(PredictionFailed, match="partner's key"):
        shape_outputs(vectors, embedding, labels=None)
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    shaped = shape_outputs(vectors, embedding, labels=None, rotation=lambda v: v @ swap.T)
    assert shaped == [{"embedding": [4.0, 3.0]}, {"embedding": [0.0, 1.0]}]
    with pytest.raises(PredictionFailed, match="NaN or infinite"):
        shape_outputs({"v": np.array([[np.nan]])}, embedding, labels=None, rotation=lambda v: v)


def test_noised_scores_are_laplace_noised_probability_vectors() -> None:
    from modelpact.runtime.privacy import SENSITIVITY, noised

    truth = np.tile([[0.2, 0.8]], (20000, 1))
    out = noised(truth, 4.0)
    assert np.allclose(out.sum(axis=1), 1.0) and out.min() >= 0 and out.max() <= 1
    # Laplace(scale 2/eps) before clipping: clipped values still average near the truth's
    # side, and the spread shrinks as epsilon grows.
    wide = noised(truth, 0.5)
    assert np.std(out[:, 1]) < np.std(wide[:, 1])
    assert 0.55 < np.mean(out[:, 1]) < 0.85
    assert SENSITIVITY == 2.0
    shaped = shape_outputs(
        {"probabilities": np.array([[0.2, 0.8]])},
        OutputPolicy(kind="noised_scores", epsilon=1.0, decimals=2),
        labels=None,
    )
    scores = shaped[0]["scores"]
    assert [s["label"] for s in scores] == [0, 1]
    assert abs(sum(s["score"] for s in scores) - 1) <= 0.011
    with pytest.raises(InvalidInput):
        noised(truth, 0.0)


def test_numpy_labels_come_out_as_plain_python_values() -> None:
    raw = {
        "label": np.array([np.str_("b"), np.str_("a")], dtype=object),
        "probabilities": SCORES,
    }
    outputs = shape_outputs(raw, OutputPolicy(kind="top_k", k=3), labels=np.array(["a", "b", "c"]))  # type: ignore[arg-type]
    assert _plain(outputs)
    outputs = shape_outputs(RAW, OutputPolicy(kind="scores"), labels=None)
    assert _plain(outputs)
    assert _plain(shape_outputs(RAW, LABEL, labels=None))


# -- laws ----------------------------------------------------------------------------------

_BATCH = st.tuples(st.integers(1, 6), st.integers(1, 7)).flatmap(
    lambda shape: arrays(
        np.float32,
        shape,
        elements=st.floats(0, 1, width=32, allow_nan=False, allow_infinity=False),
    )
)
_DECIMALS = st.none() | st.integers(0, 6)


@given(scores=_BATCH, k=st.integers(1, 10), decimals=_DECIMALS)
def test_top_k_is_a_prefix_of_the_scores_sorted_descending(
    scores: npt.NDArray[np.float32], k: int, decimals: int | None
) -> None:
    raw = {"label": np.argmax(scores, axis=1).astype(np.int64), "probabilities": scores}
    tops = shape_outputs(raw, OutputPolicy(kind="top_k", k=k, decimals=decimals), labels=None)
    every = shape_outputs(raw, OutputPolicy(kind="scores", decimals=decimals), labels=None)
    for top, full in zip(tops, every, strict=True):
        entries: list[dict[str, Any]] = top["top_k"]  # type: ignore[assignment]
        all_entries: list[dict[str, Any]] = full["scores"]  # type: ignore[assignment]
        assert len(entries) == min(k, scores.shape[1])
        assert all(entry in all_entries for entry in entries)
        assert len({entry["label"] for entry in entries}) == len(entries)
        descending = sorted((e["score"] for e in all_entries), reverse=True)
        assert [e["score"] for e in entries] == descending[: len(entries)]


@given(scores=_BATCH, names=st.booleans())
def test_label_is_the_argmax_when_the_models_label_agrees(
    scores: npt.NDArray[np.float32], names: bool
) -> None:
    columns: list[str | int] = (
        [f"class-{j}" for j in range(scores.shape[1])] if names else list(range(scores.shape[1]))
    )
    chosen = [columns[int(j)] for j in np.argmax(scores, axis=1)]
    raw = {"label": np.array(chosen, dtype=object), "probabilities": scores}
    labels = columns if names else None
    assert shape_outputs(raw, LABEL, labels=labels) == [{"label": c} for c in chosen]
    assert shape_outputs({"probabilities": scores}, LABEL, labels=labels) == [
        {"label": c} for c in chosen
    ]
    tops = shape_outputs(raw, OutputPolicy(kind="top_k", k=1), labels=labels)
    for top, label, row in zip(tops, chosen, scores, strict=True):
        (entry,) = top["top_k"]  # type: ignore[misc]
        assert entry["score"] == float(row.max())
        assert entry["label"] == label or entry["score"] == float(row[columns.index(label)])


@given(
    values=arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.integers(1, 4)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    decimals=st.integers(0, 6),
)
def test_rounding_never_shows_more_decimals_than_the_policy(
    values: npt.NDArray[np.float64], decimals: int
) -> None:
    policy = OutputPolicy(kind="scores", decimals=decimals)
    shaped = shape_outputs({"probabilities": values}, policy, labels=None)
    regression = shape_outputs({"variable": values[:, :1]}, policy, labels=None)
    numbers = [e["score"] for row in shaped for e in row["scores"]]  # type: ignore[attr-defined]
    numbers += [row["value"] for row in regression]
    originals = list(values.reshape(-1)) + list(values[:, 0])
    for number, original in zip(numbers, originals, strict=True):
        assert type(number) is float
        assert _decimals(number) <= decimals
        assert abs(number - original) <= 0.5 * 10**-decimals + 1e-9 * max(1.0, abs(original))
        assert json.loads(json.dumps(number)) == number
