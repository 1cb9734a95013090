"""Deciding whether an uploaded artifact may be registered as a model.

A model artifact is untrusted bytes until this check passes.  The order matters:

1. pickle-family files are refused by name and content before any parser sees
   them (:mod:`modelpact.runtime.pickle_family`);
2. the size limit holds before the bytes are parsed;
3. the bytes must parse as an ONNX ``ModelProto`` (never via a path, never with
   external data: a tensor stored outside the file is refused, not followed);
4. every graph, subgraph (``If``/``Loop``/``Scan`` bodies) and model-local
   function is walked: each node's operator must be on the allow-list
   (:mod:`modelpact.runtime.operators`), and nesting and node counts must stay
   within :class:`GraphLimits`;
5. only then does ``onnx.checker`` run, with full shape inference.

What comes back is a :class:`ModelSummary`: the facts about the model a manifest
records and a partner reviews.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import onnx

from modelpact.errors import InvalidInput, ModelRejected, quote_untrusted
from modelpact.runtime.operators import is_allowed, standard_domain
from modelpact.runtime.pickle_family import EXPORT_HINT, refuse_pickle_family

__all__ = ["DEFAULT_LIMITS", "GraphLimits", "ModelSummary", "TensorInfo", "inspect_model"]

_MIB = 1 << 20
_CHECKER_HINT = (
    "re-export the model with a current exporter and run "
    "onnx.checker.check_model(model, full_check=True) on it"
)


@dataclass(frozen=True, slots=True)
class GraphLimits:
    """Upper bounds on what a registered model may contain.

    ``max_nodes`` counts the nodes of every graph and subgraph, with each call of a
    model-local function counted as the nodes it expands to.
    ``max_graph_depth`` bounds how deep ``If``/``Loop``/``Scan`` subgraphs nest (0:
    none allowed); ``max_function_depth`` bounds chains of local functions calling
    each other.
    """

    max_bytes: int = 256 * _MIB
    max_nodes: int = 100_000
    max_graph_depth: int = 8
    max_function_depth: int = 16
    max_inputs: int = 1_000
    max_outputs: int = 1_000

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            floor = 0 if spec.name.endswith("_depth") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < floor:
                raise InvalidInput(
                    f"GraphLimits.{spec.name} must be an integer of at least {floor}, not {value!r}"
                )


DEFAULT_LIMITS = GraphLimits()
"""The limits :func:`inspect_model` applies unless told otherwise."""


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One input or output of a model.

    ``elem_type`` is the ONNX element type in lower case (``"float"``, ``"int64"``,
    ``"string"``); values that are not tensors are written ``seq(...)``,
    ``map(key,value)``, ``optional(...)`` or ``sparse(...)``.  ``shape`` has
    ``None`` for each dynamic dimension, and is ``None`` itself when the rank is
    unknown or the value is not a tensor.
    """

    name: str
    elem_type: str
    shape: tuple[int | None, ...] | None

    def as_dict(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {"name": self.name, "elem_type": self.elem_type, "shape": shape}


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """What an accepted model is: the facts a manifest records.

    ``opsets`` maps each imported domain to its version, the default domain written
    ``"ai.onnx"``.  ``node_count`` counts the nodes stored in every graph, subgraph
    and local function; ``op_types`` lists the standard operators they use.
    ``producer`` is ``"name/version"`` as the exporter wrote it (may be empty).
    """

    ir_version: int
    opsets: Mapping[str, int] = field(hash=False)
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    node_count: int
    size_bytes: int
    op_types: tuple[str, ...]
    producer: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSummary:
        """The summary :meth:`as_dict` wrote (from a trusted peer: a model worker)."""

        def tensor(info: Mapping[str, Any]) -> TensorInfo:
            shape = info["shape"]
            return TensorInfo(
                str(info["name"]), str(info["elem_type"]), None if shape is None else tuple(shape)
            )

        return cls(
            ir_version=int(data["ir_version"]),
            opsets={str(k): int(v) for k, v in data["opsets"].items()},
            inputs=tuple(tensor(i) for i in data["inputs"]),
            outputs=tuple(tensor(o) for o in data["outputs"]),
            node_count=int(data["node_count"]),
            size_bytes=int(data["size_bytes"]),
            op_types=tuple(str(t) for t in data["op_types"]),
            producer=str(data["producer"]),
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for manifests and API responses."""
        return {
            "ir_version": self.ir_version,
            "opsets": dict(self.opsets),
            "inputs": [info.as_dict() for info in self.inputs],
            "outputs": [info.as_dict() for info in self.outputs],
            "node_count": self.node_count,
            "size_bytes": self.size_bytes,
            "op_types": list(self.op_types),
            "producer": self.producer,
        }


def inspect_model(
    data: bytes, *, source: str, limits: GraphLimits = DEFAULT_LIMITS
) -> ModelSummary:
    """Check that ``data`` is a self-contained ONNX model within ``limits``; summarise it.

    ``source`` names the artifact in messages (a file name or upload name; its
    suffix is also checked against pickle formats).  Raises :class:`ModelRejected`
    for anything that must not be registered.  Nothing is read from disk.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput(f"model artifact must be bytes, not {type(data).__name__}")
    data = bytes(data)
    shown = quote_untrusted(source)
    refuse_pickle_family(data, source=source)
    if not data:
        raise ModelRejected(f"{shown} is empty", hint="register an exported .onnx file")
    if len(data) > limits.max_bytes:
        raise ModelRejected(
            f"{shown} has {len(data)} bytes, over the limit max_bytes={limits.max_bytes}"
        )
    model = _parse(data, shown)
    audit = _GraphAudit(model, limits, shown)
    audit.run()
    try:
        # Bytes, never a str: check_model reads a str as a path.
        onnx.checker.check_model(data, full_check=True)
    except Exception as exc:  # the checker is C++: ValidationError, InferenceError, others
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelRejected(
            f"{shown} fails the ONNX checker: {reason[:240]}", hint=_CHECKER_HINT
        ) from None
    initializers = {tensor.name for tensor in model.graph.initializer}
    return ModelSummary(
        ir_version=model.ir_version,
        opsets=types.MappingProxyType(dict(sorted(audit.opsets.items()))),
        inputs=tuple(_info(v) for v in model.graph.input if v.name not in initializers),
        outputs=tuple(_info(v) for v in model.graph.output),
        node_count=audit.stored_nodes,
        size_bytes=len(data),
        op_types=tuple(sorted(audit.op_types)),
        producer="/".join(p for p in (model.producer_name, model.producer_version) if p),
    )


def _parse(data: bytes, shown: str) -> onnx.ModelProto:
    try:
        model: onnx.ModelProto = onnx.ModelProto.FromString(data)
    except Exception:  # protobuf's DecodeError, or its nesting-depth guard
        raise ModelRejected(
            f"{shown} is not an ONNX model: it does not parse as one",
            hint=EXPORT_HINT,
        ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise ModelRejected(
            f"{shown} is not an ONNX model: it has no IR version, graph or operator set",
            hint=EXPORT_HINT,
        )
    return model


_FunctionKey = tuple[str, str, str]


class _GraphAudit:
    """One walk over every graph and function of a model, raising at the first fault."""

    def __init__(self, model: onnx.ModelProto, limits: GraphLimits, shown: str) -> None:
        self.model = model
        self.limits = limits
        self.shown = shown
        self.stored_nodes = 0
        self.op_types: set[str] = set()
        self.opsets: dict[str, int] = {}
        self.functions: dict[_FunctionKey, onnx.FunctionProto] = {}
        self._costs: dict[_FunctionKey, int] = {}
        self._chain: list[_FunctionKey] = []

    def run(self) -> None:
        model = self.model
        self._collect_opsets()
        if len(model.training_info):
            self._reject(
                "carries training algorithms (training_info)", "export the model for inference only"
            )
        for function in model.functions:
            self._declare(function)
        graph = model.graph
        initializers = {tensor.name for tensor in graph.initializer}
        n_inputs = sum(1 for v in graph.input if v.name not in initializers)
        if n_inputs > self.limits.max_inputs:
            self._reject(
                f"has {n_inputs} inputs, over the limit max_inputs={self.limits.max_inputs}"
            )
        if len(graph.output) > self.limits.max_outputs:
            self._reject(
                f"has {len(graph.output)} outputs, "
                f"over the limit max_outputs={self.limits.max_outputs}"
            )
        stored = _stored_node_count(model)
        if stored > self.limits.max_nodes:
            self._reject(
                f"has {stored} nodes (counting subgraphs and local functions), "
                f"over the limit max_nodes={self.limits.max_nodes}"
            )
        cost = self._graph_cost(graph, f"graph {quote_untrusted(graph.name)}", depth=0)
        for key in self.functions:  # functions nobody calls are checked all the same
            self._function_cost(key)
        if cost > self.limits.max_nodes:
            self._too_many(cost)

    def _collect_opsets(self) -> None:
        for opset in self.model.opset_import:
            domain = standard_domain(opset.domain) or opset.domain
            known = self.opsets.setdefault(domain, opset.version)
            if known != opset.version:
                self._reject(
                    f"imports operator set {quote_untrusted(domain)} twice, "
                    f"as versions {known} and {opset.version}"
                )

    def _declare(self, function: onnx.FunctionProto) -> None:
        name = quote_untrusted(f"{function.domain}.{function.name}")
        if standard_domain(function.domain) is not None:
            self._reject(f"defines local function {name} inside a standard domain")
        key = (function.domain, function.name, function.overload)
        if key in self.functions:
            self._reject(f"defines local function {name} twice")
        self.functions[key] = function

    def _graph_cost(self, graph: onnx.GraphProto, where: str, depth: int) -> int:
        for tensor in graph.initializer:
            self._check_tensor(tensor, where)
        for sparse in graph.sparse_initializer:
            self._check_tensor(sparse.values, where)
            self._check_tensor(sparse.indices, where)
        cost = 0
        for index, node in enumerate(graph.node):
            cost += self._node_cost(node, index, where, depth)
            if cost > self.limits.max_nodes:
                self._too_many(cost)
        return cost

    def _node_cost(self, node: onnx.NodeProto, index: int, where: str, depth: int) -> int:
        self.stored_nodes += 1
        name = quote_untrusted(node.name) if node.name else f"#{index}"
        label = f"node {name} in {where}"
        cost = 1
        key = (node.domain, node.op_type, node.overload)
        if key in self.functions:
            cost += self._function_cost(key)
        elif is_allowed(node.domain, node.op_type):
            self.op_types.add(node.op_type)
        else:
            self._reject_operator(node, label)
        for attribute in node.attribute:
            cost += self._attribute_cost(attribute, label, f"{where} › {name}", depth)
        return cost

    def _attribute_cost(
        self, attribute: onnx.AttributeProto, label: str, path: str, depth: int
    ) -> int:
        """Check an attribute's tensors; walk its subgraphs, reached by ``path``."""
        where = f"attribute {quote_untrusted(attribute.name)} of {label}"
        if attribute.HasField("t"):
            self._check_tensor(attribute.t, where)
        for tensor in attribute.tensors:
            self._check_tensor(tensor, where)
        sparse_tensors = list(attribute.sparse_tensors)
        if attribute.HasField("sparse_tensor"):
            sparse_tensors.append(attribute.sparse_tensor)
        for sparse in sparse_tensors:
            self._check_tensor(sparse.values, where)
            self._check_tensor(sparse.indices, where)
        subgraphs = list(attribute.graphs)
        if attribute.HasField("g"):
            subgraphs.insert(0, attribute.g)
        cost = 0
        for subgraph in subgraphs:
            if depth + 1 > self.limits.max_graph_depth:
                self._reject(
                    f"nests subgraphs {depth + 1} deep at {where}, "
                    f"over the limit max_graph_depth={self.limits.max_graph_depth}"
                )
            inner = f"{path}.{quote_untrusted(attribute.name, limit=40)[1:-1]}"
            cost += self._graph_cost(subgraph, inner, depth + 1)
        return cost

    def _function_cost(self, key: _FunctionKey) -> int:
        """Nodes a call of local function ``key`` expands to; checks its body once."""
        if key in self._costs:
            return self._costs[key]
        name = quote_untrusted(f"{key[0]}.{key[1]}")
        if key in self._chain:
            self._reject(f"has local function {name} calling itself, directly or not")
        if len(self._chain) >= self.limits.max_function_depth:
            self._reject(
                f"chains local functions more than "
                f"max_function_depth={self.limits.max_function_depth} deep at {name}"
            )
        self._chain.append(key)
        function = self.functions[key]
        where = f"local function {name}"
        cost = 0
        for attribute in function.attribute_proto:
            cost += self._attribute_cost(attribute, where, where, depth=0)
        for index, node in enumerate(function.node):
            cost += self._node_cost(node, index, where, depth=0)
            if cost > self.limits.max_nodes:
                self._too_many(cost)
        self._chain.pop()
        self._costs[key] = cost
        return cost

    def _check_tensor(self, tensor: onnx.TensorProto, where: str) -> None:
        if tensor.data_location != onnx.TensorProto.EXTERNAL and not len(tensor.external_data):
            return
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        self._reject(
            f"keeps the data of tensor {quote_untrusted(tensor.name)} ({where}) outside the "
            f"file, at {quote_untrusted(location)}; an artifact must be self-contained "
            "and paths it names are never read",
            "load it next to its data files with onnx.load(path), then save every tensor "
            "inside one file: onnx.save_model(model, 'model.onnx', save_as_external_data=False)",
        )

    def _reject_operator(self, node: onnx.NodeProto, label: str) -> NoReturn:
        domain = standard_domain(node.domain)
        op = quote_untrusted(node.op_type)
        if domain is None:
            self._reject(
                f"uses operator {op} of custom domain {quote_untrusted(node.domain)} at {label}; "
                "only the standard ai.onnx and ai.onnx.ml domains may run",
                "re-export with standard operators only (torch.onnx.export, skl2onnx without "
                "custom converters); a model optimised by onnxruntime for a device carries "
                "com.microsoft operators, so register the unoptimised export",
            )
        self._reject(
            f"uses operator {op} of {domain} at {label}, which is not on the allow-list "
            "of inference operators",
            "rebuild the model from allowed operators and export it again "
            "(the list: modelpact.runtime.ALLOWED_OPERATORS)",
        )

    def _too_many(self, count: int) -> NoReturn:
        self._reject(
            f"expands to at least {count} nodes once its local functions are inlined, "
            f"over the limit max_nodes={self.limits.max_nodes}"
        )

    def _reject(self, problem: str, hint: str | None = None) -> NoReturn:
        raise ModelRejected(f"{self.shown} {problem}", hint=hint)


def _stored_node_count(model: onnx.ModelProto) -> int:
    """Nodes stored in the file: every graph, subgraph and local function once."""
    pending: list[onnx.GraphProto] = [model.graph]
    nodes: list[onnx.NodeProto] = [node for f in model.functions for node in f.node]
    attributes = [a for f in model.functions for a in f.attribute_proto]
    count = 0
    while pending or nodes or attributes:
        if pending:
            nodes.extend(pending.pop().node)
        elif nodes:
            count += 1
            attributes.extend(nodes.pop().attribute)
        else:
            attribute = attributes.pop()
            pending.extend(attribute.graphs)
            if attribute.HasField("g"):
                pending.append(attribute.g)
    return count


def _info(value: onnx.ValueInfoProto) -> TensorInfo:
    return TensorInfo(name=value.name, elem_type=_type_name(value.type), shape=_shape(value.type))


def _type_name(proto: onnx.TypeProto) -> str:
    kind = proto.WhichOneof("value")
    if kind == "tensor_type":
        return _elem_name(proto.tensor_type.elem_type)
    if kind == "sparse_tensor_type":
        return f"sparse({_elem_name(proto.sparse_tensor_type.elem_type)})"
    if kind == "sequence_type":
        return f"seq({_type_name(proto.sequence_type.elem_type)})"
    if kind == "map_type":
        key = _elem_name(proto.map_type.key_type)
        return f"map({key},{_type_name(proto.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({_type_name(proto.optional_type.elem_type)})"
    return "unknown"


def _elem_name(code: int) -> str:
    try:
        return str(onnx.TensorProto.DataType.Name(code)).lower()
    except ValueError:
        return f"unknown({code})"


def _shape(proto: onnx.TypeProto) -> tuple[int | None, ...] | None:
    kind = proto.WhichOneof("value")
    if kind == "tensor_type" and proto.tensor_type.HasField("shape"):
        dims = proto.tensor_type.shape.dim
    elif kind == "sparse_tensor_type" and proto.sparse_tensor_type.HasField("shape"):
        dims = proto.sparse_tensor_type.shape.dim
    else:
        return None
    return tuple(dim.dim_value if dim.HasField("dim_value") else None for dim in dims)
