"""inspect_model: what may be registered as a model, and what it says about it."""

from __future__ import annotations

import json
from typing import Any

import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from modelpact.errors import InvalidInput, ModelRejected
from modelpact.runtime import GraphLimits, TensorInfo, inspect_model
from modelpact.runtime.operators import ALLOWED_OPERATORS
from tests.runtime.graphs import (
    build_model,
    cond_initializer,
    external_tensor,
    float_value,
    identity_chain,
    if_node,
    model_bytes,
)


def rejected(data: bytes, *, source: str = "model.onnx", **limits: int) -> ModelRejected:
    with pytest.raises(ModelRejected) as caught:
        inspect_model(data, source=source, limits=GraphLimits(**limits))
    error = caught.value
    assert "\n" not in error.summary
    return error


@pytest.fixture
def no_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if onnx.checker runs: the fault must be caught before it."""

    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        pytest.fail("onnx.checker ran on a model that should have been refused before it")

    monkeypatch.setattr(onnx.checker, "check_model", forbidden)


# --- a real model is accepted and summarised -------------------------------------------------


def test_logistic_regression_is_accepted_and_summarised(logistic_onnx: bytes) -> None:
    summary = inspect_model(logistic_onnx, source="breast-cancer.onnx")

    assert summary.inputs == (TensorInfo("input", "float", (None, 30)),)
    assert summary.outputs == (
        TensorInfo("label", "int64", (None,)),
        TensorInfo("probabilities", "float", (None, 2)),
    )
    assert summary.op_types == ("LinearClassifier",)
    assert summary.node_count == 1
    assert summary.size_bytes == len(logistic_onnx)
    assert summary.ir_version >= 7
    assert set(summary.opsets) == {"ai.onnx", "ai.onnx.ml"}
    assert summary.producer.startswith("skl2onnx/")
    assert json.loads(json.dumps(summary.as_dict()))["inputs"][0]["shape"] == [None, 30]


def test_summary_is_immutable(logistic_onnx: bytes) -> None:
    summary = inspect_model(logistic_onnx, source="m.onnx")
    with pytest.raises(TypeError):
        summary.opsets["ai.onnx"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        summary.node_count = 0  # type: ignore[misc]


def test_zipmap_output_is_described_as_a_sequence_of_maps(logistic_regression: Any) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    data = to_onnx(
        logistic_regression, initial_types=[("input", FloatTensorType([None, 30]))]
    ).SerializeToString()
    summary = inspect_model(data, source="zipmap.onnx")
    assert TensorInfo("output_probability", "seq(map(int64,float))", None) in summary.outputs
    assert "ZipMap" in summary.op_types


def test_dotted_onnx_name_is_not_mistaken_for_a_pickle(logistic_onnx: bytes) -> None:
    inspect_model(logistic_onnx, source="models/fraud.v1.2.onnx")


def test_hand_built_graph_with_an_allowed_subgraph_is_accepted() -> None:
    data = model_bytes(
        [if_node([helper.make_node("Relu", ["x"], ["t"], name="relu")])],
        initializers=[cond_initializer()],
    )
    summary = inspect_model(data, source="branch.onnx")
    assert summary.op_types == ("Identity", "If", "Relu")
    assert summary.node_count == 3
    assert summary.inputs == (TensorInfo("x", "float", (None, 3)),)


# --- not ONNX at all --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"garbage bytes that are not a model", b"\x00" * 64, b"\xff\xfe\xfd" * 20, b"{}"],
    ids=["text", "zeros", "binary", "json"],
)
def test_garbage_is_not_an_onnx_model(data: bytes) -> None:
    error = rejected(data)
    assert "not an ONNX model" in error.summary
    assert "torch.onnx.export" in error.hint


def test_empty_file_is_rejected() -> None:
    assert "is empty" in rejected(b"").summary


def test_protobuf_without_graph_is_not_an_onnx_model() -> None:
    data = onnx.ModelProto(ir_version=9, producer_name="x").SerializeToString()
    assert "not an ONNX model" in rejected(data).summary


def test_bytes_are_required() -> None:
    with pytest.raises(InvalidInput, match="must be bytes"):
        inspect_model("model.onnx", source="model.onnx")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_rejected_cleanly(data: bytes) -> None:
    with pytest.raises(ModelRejected):
        inspect_model(data, source="fuzz.onnx")


# --- operators --------------------------------------------------------------------------------


def test_custom_domain_operator_is_rejected(no_checker: None) -> None:
    data = model_bytes(
        [helper.make_node("RunShell", ["x"], ["y"], name="backdoor", domain="com.evil")],
        opsets={"": 17, "com.evil": 1},
    )
    error = rejected(data)
    assert "'RunShell'" in error.summary
    assert "'com.evil'" in error.summary
    assert "'backdoor'" in error.summary
    assert "custom domain" in error.summary


def test_contrib_operator_is_rejected(no_checker: None) -> None:
    data = model_bytes(
        [helper.make_node("FastGelu", ["x"], ["y"], name="gelu", domain="com.microsoft")],
        opsets={"": 17, "com.microsoft": 1},
    )
    assert "'FastGelu'" in rejected(data).summary


def test_standard_operator_off_the_allow_list_is_rejected(no_checker: None) -> None:
    data = model_bytes([helper.make_node("RandomUniformLike", ["x"], ["y"], name="noise")])
    error = rejected(data)
    assert "'RandomUniformLike'" in error.summary
    assert "'noise'" in error.summary
    assert "allow-list" in error.summary


def test_unnamed_node_is_named_by_its_position(no_checker: None) -> None:
    data = model_bytes(
        [
            helper.make_node("Relu", ["x"], ["h"]),
            helper.make_node("Bernoulli", ["h"], ["y"]),
        ]
    )
    assert "node #1" in rejected(data).summary


def test_names_from_the_file_are_shown_escaped(no_checker: None) -> None:
    data = model_bytes(
        [helper.make_node("Evil\x1b[2J\nOp", ["x"], ["y"], name="n" * 500, domain="x.y")],
        opsets={"": 17, "x.y": 1},
    )
    summary = rejected(data).summary
    assert "\x1b" not in summary
    assert "\n" not in summary
    assert "n" * 100 not in summary


def test_disallowed_operator_in_a_nested_if_is_rejected(no_checker: None) -> None:
    inner = if_node([helper.make_node("RandomNormalLike", ["x"], ["t"], name="hidden")], "inner")
    inner.output[0] = "t"
    data = model_bytes([if_node([inner], "outer")], initializers=[cond_initializer()])
    error = rejected(data)
    assert "'RandomNormalLike'" in error.summary
    assert "'hidden'" in error.summary
    assert "'inner'" in error.summary
    assert "'outer'" in error.summary


def test_custom_operator_in_a_loop_body_is_rejected(no_checker: None) -> None:
    body = helper.make_graph(
        [helper.make_node("Exec", ["x"], ["t"], name="in_loop", domain="com.evil")],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), float_value("t")],
    )
    loop = helper.make_node("Loop", ["", "cond"], ["y"], name="loop", body=body)
    data = model_bytes([loop], initializers=[cond_initializer()], opsets={"": 17, "com.evil": 1})
    assert "'Exec'" in rejected(data).summary


def _three_nested_ifs() -> bytes:
    node = if_node([helper.make_node("Relu", ["x"], ["t"])], "level3")
    for level in (2, 1):
        node.output[0] = "t"
        node = if_node([node], f"level{level}")
    return model_bytes([node], initializers=[cond_initializer()])


def test_subgraphs_nested_too_deep_are_rejected(no_checker: None) -> None:
    error = rejected(_three_nested_ifs(), max_graph_depth=2)
    assert "max_graph_depth=2" in error.summary
    assert "3 deep" in error.summary


def test_subgraphs_nested_within_the_limit_are_accepted() -> None:
    summary = inspect_model(
        _three_nested_ifs(), source="deep.onnx", limits=GraphLimits(max_graph_depth=3)
    )
    assert summary.op_types == ("Identity", "If", "Relu")


def test_every_allowed_operator_is_a_standard_onnx_operator() -> None:
    known = {
        (schema.domain or "ai.onnx", schema.name)
        for schema in onnx.defs.get_all_schemas_with_history()
    }
    for domain, ops in ALLOWED_OPERATORS.items():
        assert {(domain, op) for op in ops} <= known


# --- model-local functions --------------------------------------------------------------------


def _function(name: str, nodes: list[onnx.NodeProto]) -> onnx.FunctionProto:
    return helper.make_function(
        "local.blocks",
        name,
        ["a"],
        ["b"],
        nodes,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local.blocks", 1)],
    )


def _call(name: str, inputs: str = "x", outputs: str = "y") -> onnx.NodeProto:
    return helper.make_node(name, [inputs], [outputs], name=f"call_{name}", domain="local.blocks")


_LOCAL_OPSETS = {"": 17, "local.blocks": 1}


def test_local_function_of_allowed_operators_is_accepted() -> None:
    block = _function("Block", [helper.make_node("Relu", ["a"], ["b"])])
    data = model_bytes([_call("Block")], functions=[block], opsets=_LOCAL_OPSETS)
    summary = inspect_model(data, source="functions.onnx")
    assert summary.op_types == ("Relu",)
    assert summary.opsets == {"ai.onnx": 17, "local.blocks": 1}


def test_disallowed_operator_inside_a_local_function_is_rejected(no_checker: None) -> None:
    block = _function("Block", [helper.make_node("Bernoulli", ["a"], ["b"], name="coin")])
    data = model_bytes([_call("Block")], functions=[block], opsets=_LOCAL_OPSETS)
    error = rejected(data)
    assert "'Bernoulli'" in error.summary
    assert "'local.blocks.Block'" in error.summary


def test_uncalled_local_function_is_checked_too(no_checker: None) -> None:
    unused = _function("Unused", [helper.make_node("Exec", ["a"], ["b"], domain="com.evil")])
    data = model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])], functions=[unused], opsets=_LOCAL_OPSETS
    )
    assert "'Exec'" in rejected(data).summary


def test_recursive_local_function_is_rejected(no_checker: None) -> None:
    ping = _function("Ping", [_call("Pong", "a", "b")])
    pong = _function("Pong", [_call("Ping", "a", "b")])
    data = model_bytes([_call("Ping")], functions=[ping, pong], opsets=_LOCAL_OPSETS)
    assert "calling itself" in rejected(data).summary


def test_local_functions_that_expand_exponentially_hit_the_node_limit(no_checker: None) -> None:
    levels = 20  # 40 stored nodes, 2**20 once expanded
    functions = [_function("F0", [helper.make_node("Relu", ["a"], ["b"])])]
    for level in range(1, levels):
        below = f"F{level - 1}"
        functions.append(_function(f"F{level}", [_call(below, "a", "m"), _call(below, "m", "b")]))
    data = model_bytes([_call(f"F{levels - 1}")], functions=functions, opsets=_LOCAL_OPSETS)
    error = rejected(data, max_nodes=10_000, max_function_depth=64)
    assert "once its local functions are inlined" in error.summary
    assert "max_nodes=10000" in error.summary


def test_local_function_in_a_standard_domain_is_rejected(no_checker: None) -> None:
    shadow = helper.make_function(
        "",
        "Relu",
        ["a"],
        ["b"],
        [helper.make_node("Neg", ["a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    data = model_bytes([helper.make_node("Relu", ["x"], ["y"])], functions=[shadow])
    assert "standard domain" in rejected(data).summary


# --- external data ----------------------------------------------------------------------------


def test_external_data_initializer_is_rejected_without_reading_it(no_checker: None) -> None:
    data = model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        initializers=[external_tensor("w", "../../etc/passwd")],
    )
    error = rejected(data)
    assert "'w'" in error.summary
    assert "'../../etc/passwd'" in error.summary
    assert "self-contained" in error.summary
    assert "save_as_external_data=False" in error.hint


def test_external_data_in_a_subgraph_is_rejected(no_checker: None) -> None:
    branch = if_node([helper.make_node("Add", ["x", "w"], ["t"], name="add")])
    branch.attribute[0].g.initializer.append(external_tensor("w", "/etc/shadow"))
    data = model_bytes([branch], initializers=[cond_initializer()])
    assert "'/etc/shadow'" in rejected(data).summary


def test_external_data_in_a_constant_attribute_is_rejected(no_checker: None) -> None:
    constant = helper.make_node(
        "Constant", [], ["w"], name="const", value=external_tensor("value", "weights.bin")
    )
    data = model_bytes([constant, helper.make_node("Add", ["x", "w"], ["y"])])
    error = rejected(data)
    assert "'weights.bin'" in error.summary
    assert "'const'" in error.summary


def test_external_data_entries_without_the_location_flag_are_rejected(no_checker: None) -> None:
    tensor = external_tensor("w", "../secret")
    tensor.data_location = TensorProto.DEFAULT
    data = model_bytes([helper.make_node("Add", ["x", "w"], ["y"])], initializers=[tensor])
    assert "'../secret'" in rejected(data).summary


# --- limits -----------------------------------------------------------------------------------


def test_graph_over_the_node_limit_is_rejected(no_checker: None) -> None:
    data = model_bytes(identity_chain(12))
    error = rejected(data, max_nodes=10)
    assert "max_nodes=10" in error.summary
    assert "has 12 nodes" in error.summary


def test_nodes_in_subgraphs_count_towards_the_limit() -> None:
    chain = identity_chain(5)
    chain[-1].output[0] = "t"
    data = model_bytes([if_node(chain)], initializers=[cond_initializer()])
    rejected(data, max_nodes=6)
    inspect_model(data, source="m.onnx", limits=GraphLimits(max_nodes=7))


def test_file_over_the_size_limit_is_rejected(logistic_onnx: bytes) -> None:
    error = rejected(logistic_onnx, max_bytes=100)
    assert "max_bytes=100" in error.summary
    assert str(len(logistic_onnx)) in error.summary


def test_too_many_inputs_are_rejected(no_checker: None) -> None:
    inputs = [float_value(name) for name in ("x", "a", "b")]
    data = model_bytes([helper.make_node("Sum", ["x", "a", "b"], ["y"])], inputs=inputs)
    assert "max_inputs=2" in rejected(data, max_inputs=2).summary


def test_too_many_outputs_are_rejected(no_checker: None) -> None:
    outputs = [float_value(name) for name in ("y", "z")]
    data = model_bytes(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["z"])],
        outputs=outputs,
    )
    assert "max_outputs=1" in rejected(data, max_outputs=1).summary


@pytest.mark.parametrize(
    "limits",
    [{"max_nodes": 0}, {"max_bytes": -1}, {"max_graph_depth": -1}, {"max_inputs": True}],
)
def test_nonsense_limits_are_invalid_input(limits: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="GraphLimits"):
        GraphLimits(**limits)


# --- the ONNX checker and other model-level faults --------------------------------------------


def test_model_the_checker_refuses_is_rejected() -> None:
    data = model_bytes([helper.make_node("Add", ["x", "undefined"], ["y"], name="add")])
    error = rejected(data)
    assert "fails the ONNX checker" in error.summary
    assert "check_model" in error.hint


def test_conflicting_opset_versions_are_rejected(no_checker: None) -> None:
    model = build_model([helper.make_node("Relu", ["x"], ["y"])])
    model.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    assert "twice" in rejected(model.SerializeToString()).summary


def test_training_information_is_rejected(no_checker: None) -> None:
    model = build_model([helper.make_node("Relu", ["x"], ["y"])])
    model.training_info.add()
    assert "training" in rejected(model.SerializeToString()).summary


def test_local_functions_chained_too_deep_are_rejected(no_checker: None) -> None:
    functions = [_function("F0", [helper.make_node("Relu", ["a"], ["b"])])]
    for level in range(1, 5):
        functions.append(_function(f"F{level}", [_call(f"F{level - 1}", "a", "b")]))
    data = model_bytes([_call("F4")], functions=functions, opsets=_LOCAL_OPSETS)
    assert "max_function_depth=3" in rejected(data, max_function_depth=3).summary
