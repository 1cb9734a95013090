"""Hand-built ONNX models for the runtime tests, each one fault at a time."""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import TensorProto, helper

IR_VERSION = 9
OPSET = 17


def model_bytes(
    nodes: Sequence[onnx.NodeProto],
    *,
    inputs: Sequence[onnx.ValueInfoProto] | None = None,
    outputs: Sequence[onnx.ValueInfoProto] | None = None,
    initializers: Sequence[onnx.TensorProto] = (),
    opsets: dict[str, int] | None = None,
    functions: Sequence[onnx.FunctionProto] = (),
) -> bytes:
    """A model over ``x: float[N, 3] -> y: float[N, 3]`` unless told otherwise."""
    model = build_model(
        nodes,
        inputs=inputs,
        outputs=outputs,
        initializers=initializers,
        opsets=opsets,
        functions=functions,
    )
    data: bytes = model.SerializeToString()
    return data


def build_model(
    nodes: Sequence[onnx.NodeProto],
    *,
    inputs: Sequence[onnx.ValueInfoProto] | None = None,
    outputs: Sequence[onnx.ValueInfoProto] | None = None,
    initializers: Sequence[onnx.TensorProto] = (),
    opsets: dict[str, int] | None = None,
    functions: Sequence[onnx.FunctionProto] = (),
) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes),
        "main",
        list(inputs if inputs is not None else [float_value("x")]),
        list(outputs if outputs is not None else [float_value("y")]),
        initializer=list(initializers),
    )
    imports = [
        helper.make_opsetid(domain, version) for domain, version in (opsets or {"": OPSET}).items()
    ]
    return helper.make_model(
        graph,
        opset_imports=imports,
        ir_version=IR_VERSION,
        producer_name="modelpact-tests",
        functions=list(functions),
    )


def float_value(name: str, width: int | None = 3) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])


def identity_chain(length: int) -> list[onnx.NodeProto]:
    """``x -> Identity -> ... -> y`` with ``length`` nodes."""
    names = ["x", *(f"t{i}" for i in range(length - 1)), "y"]
    return [
        helper.make_node("Identity", [names[i]], [names[i + 1]], name=f"id{i}")
        for i in range(length)
    ]


def if_node(then_nodes: Sequence[onnx.NodeProto], name: str = "branch") -> onnx.NodeProto:
    """``y = If(cond, then: <then_nodes computing t from x>, else: Identity(x))``."""
    then_graph = helper.make_graph(list(then_nodes), f"{name}_then", [], [float_value("t")])
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"], name=f"{name}_else_id")],
        f"{name}_else",
        [],
        [float_value("e")],
    )
    return helper.make_node(
        "If", ["cond"], ["y"], name=name, then_branch=then_graph, else_branch=else_graph
    )


def cond_initializer() -> onnx.TensorProto:
    return helper.make_tensor("cond", TensorProto.BOOL, [], [True])


def external_tensor(name: str, location: str) -> onnx.TensorProto:
    """A float[3] tensor whose data is said to live in the file ``location``."""
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "12")):
        entry = tensor.external_data.add()
        entry.key = key
        entry.value = value
    return tensor
