"""The Open Inference Protocol's (KServe V2 REST) wire format, and nothing else.

Its own module so that what a V2 request and response look like (the pydantic
models, the OpenAPI schema of the infer body, the datatypes accepted) and how
a body becomes rows of features and shaped outputs become tensors can be read
and tested apart from the gateway: everything here is pure, with no session,
charter, audit log or model behind it.  :mod:`modelpact.gateway.v2` joins it to
the ``/v1`` pipeline and serves the routes.

Every refusal here is one :class:`~modelpact.errors.InvalidInput`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from modelpact.errors import InvalidInput, quote_untrusted
from modelpact.wire import Receipt

__all__ = [
    "ELEMENT_TYPES",
    "INFER_BODY",
    "Parameters",
    "V2InferenceRequest",
    "V2InferenceResponse",
    "V2MetadataTensor",
    "V2ModelMetadata",
    "V2RequestInput",
    "V2RequestOutput",
    "V2ResponseOutput",
    "V2ResponseParameters",
    "V2ServerMetadata",
    "feature_rows",
    "output_tensors",
    "parse_request",
    "refuse_extensions",
]

_FLOATS = frozenset({"FP32", "FP64"})
_INTEGERS = {
    f"{sign}INT{bits}": ((0, 2**bits - 1) if sign else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    for sign in ("", "U")
    for bits in (8, 16, 32, 64)
}
#: ONNX element types to the V2 datatypes a model's metadata names.
ELEMENT_TYPES = {"float": "FP32", "double": "FP64"}
_BINARY_HINT = "send tensors as JSON: set_data_from_numpy(..., binary_data=False) and "
_BINARY_HINT += "InferRequestedOutput(name, binary_data=False) in tritonclient"

# -- requests and responses ----------------------------------------------------------------

#: V2 parameters: names to JSON scalars.
Parameters = dict[str, StrictStr | StrictInt | StrictFloat | StrictBool]


class _V2(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class V2ServerMetadata(_V2):
    name: str
    version: str
    extensions: list[str]


class V2MetadataTensor(_V2):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size")


class V2ModelMetadata(_V2):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2MetadataTensor]
    outputs: list[V2MetadataTensor]


class V2RequestInput(_V2):
    name: StrictStr
    shape: list[Annotated[StrictInt, Field(ge=0)]]
    datatype: StrictStr
    parameters: Parameters | None = None
    data: list[Any] | None = None


class V2RequestOutput(_V2):
    name: StrictStr
    parameters: Parameters | None = None


class V2InferenceRequest(_V2):
    id: StrictStr | None = None
    parameters: Parameters | None = None
    inputs: Annotated[list[V2RequestInput], Field(min_length=1)]
    outputs: list[V2RequestOutput] | None = None


class V2ResponseOutput(_V2):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, list[str | int]] | None = None
    data: list[float | int | str]


class V2ResponseParameters(_V2):
    modelpact_receipt: Receipt


class V2InferenceResponse(_V2):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: V2ResponseParameters
    outputs: list[V2ResponseOutput]


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` written in place (OpenAPI has no ``$defs`` here)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return dict(resolve(schema))


_INFER_SCHEMA = _inline(V2InferenceRequest.model_json_schema())
INFER_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _INFER_SCHEMA}}}
}

# -- inference requests -----------------------------------------------------------------------


def refuse_extensions(headers: Mapping[str, str]) -> None:
    """Refuse the V2 extensions a request asks for in its headers (binary data, compression)."""
    if "inference-header-content-length" in headers:
        raise InvalidInput(
            "the binary tensor data extension is not supported by this gateway", hint=_BINARY_HINT
        )
    if headers.get("content-encoding", "identity").strip().lower() != "identity":
        raise InvalidInput(
            "compressed request bodies are not supported", hint="send the JSON uncompressed"
        )


def _refuse_parameters(where: str, parameters: Parameters | None) -> None:
    """Refuse the V2 extensions a request may ask for in ``parameters``."""
    if not parameters:
        return
    if parameters.get("binary_data") is True or parameters.get("binary_data_output") is True:
        raise InvalidInput(
            f"{where} asks for binary tensor data, which this gateway does not support",
            hint=_BINARY_HINT,
        )
    if "binary_data_size" in parameters:
        raise InvalidInput(
            f"{where} carries binary tensor data, which this gateway does not support",
            hint=_BINARY_HINT,
        )
    if any(name.startswith("shared_memory_") for name in parameters):
        raise InvalidInput(f"{where} asks for shared memory, which this gateway does not support")
    if "classification" in parameters:
        raise InvalidInput(
            f"{where} asks for the classification extension, which this gateway does not support",
            hint="the grant's output policy decides what comes back",
        )


def parse_request(body: bytes) -> V2InferenceRequest:
    """``body`` as a V2 inference request, refusing the extensions its parameters ask for."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # a JSONDecodeError is a ValueError
        raise InvalidInput("the request body is not JSON") from None
    try:
        request = V2InferenceRequest.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(
            f"not a V2 inference request: {quote_untrusted(where)}: {first['msg']}"
        ) from None
    _refuse_parameters("the request", request.parameters)
    for tensor in request.inputs:
        _refuse_parameters(f"input {quote_untrusted(tensor.name)}", tensor.parameters)
    for output in request.outputs or ():
        _refuse_parameters(f"output {quote_untrusted(output.name)}", output.parameters)
    return request


def _flat(tensor: V2RequestInput, rows: int, width: int) -> list[Any]:
    """The tensor's elements in row-major order, from flat or natural (nested) data."""
    shown = quote_untrusted(tensor.name)
    data = tensor.data
    if data is None:
        raise InvalidInput(f"input {shown} has no data", hint=_BINARY_HINT)
    nested = [isinstance(item, list) for item in data]
    if not any(nested):
        values = data
    elif all(nested) and len(data) == rows and all(len(row) == width for row in data):
        values = [value for row in data for value in row]
        if any(isinstance(value, list) for value in values):
            raise InvalidInput(f"input {shown} nests its data deeper than its shape")
    else:
        raise InvalidInput(
            f"input {shown} data is neither flat nor nested as its shape [{rows}, {width}]"
        )
    if len(values) != rows * width:
        raise InvalidInput(
            f"input {shown} holds {len(values)} values but its shape [{rows}, {width}] "
            f"needs {rows * width}"
        )
    return values


def _element(value: Any, datatype: str, index: int, shown: str) -> float:
    """One element as a float, checked against the tensor's datatype (never quoting it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"input {shown} element {index} is not a number")
    if datatype in _FLOATS:
        try:
            return float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise InvalidInput(f"input {shown} element {index} is too large") from None
    low, high = _INTEGERS[datatype]
    if not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"input {shown} element {index} is not a {datatype} integer")
    return float(value)


def feature_rows(request: V2InferenceRequest) -> list[list[float]]:
    """The one input tensor as rows of features, or one :class:`InvalidInput` line."""
    if len(request.inputs) != 1:
        raise InvalidInput(
            f"the request has {len(request.inputs)} inputs; the model takes one, "
            "shaped [rows, features]"
        )
    (tensor,) = request.inputs
    shown = quote_untrusted(tensor.name)
    if tensor.datatype not in _FLOATS and tensor.datatype not in _INTEGERS:
        raise InvalidInput(
            f"input {shown} has datatype {quote_untrusted(tensor.datatype)}",
            hint="send FP32 or FP64 (or INT8..INT64, UINT8..UINT64)",
        )
    if len(tensor.shape) != 2 or tensor.shape[0] < 1 or tensor.shape[1] < 1:
        raise InvalidInput(
            f"input {shown} has shape {tensor.shape}; send [rows, features], both at least 1"
        )
    rows, width = tensor.shape
    values = _flat(tensor, rows, width)
    numbers = [_element(v, tensor.datatype, i, shown) for i, v in enumerate(values)]
    return [numbers[start : start + width] for start in range(0, len(numbers), width)]


# -- shaped outputs as tensors ----------------------------------------------------------------


def _label_tensor(name: str, shape: list[int], labels: list[Any]) -> V2ResponseOutput:
    if all(isinstance(label, int) for label in labels):
        return V2ResponseOutput(name=name, shape=shape, datatype="INT64", data=labels)
    return V2ResponseOutput(
        name=name, shape=shape, datatype="BYTES", data=[str(label) for label in labels]
    )


def output_tensors(outputs: list[dict[str, Any]]) -> list[V2ResponseOutput]:
    """The pipeline's shaped outputs (one dict per row) as V2 output tensors, row-major."""
    rows = len(outputs)
    first = outputs[0]
    if "label" in first:
        return [_label_tensor("label", [rows], [row["label"] for row in outputs])]
    if "value" in first:
        values = [row["value"] for row in outputs]
        return [V2ResponseOutput(name="value", shape=[rows], datatype="FP64", data=values)]
    if "scores" in first:
        columns = [item["label"] for item in first["scores"]]
        scores = [item["score"] for row in outputs for item in row["scores"]]
        return [
            V2ResponseOutput(
                name="scores",
                shape=[rows, len(columns)],
                datatype="FP64",
                parameters={"labels": columns},
                data=scores,
            )
        ]
    k = len(first["top_k"])
    picks = [item for row in outputs for item in row["top_k"]]
    return [
        _label_tensor("top_k_labels", [rows, k], [item["label"] for item in picks]),
        V2ResponseOutput(
            name="top_k_scores",
            shape=[rows, k],
            datatype="FP64",
            data=[item["score"] for item in picks],
        ),
    ]
