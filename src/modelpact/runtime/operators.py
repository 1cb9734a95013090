"""The operators a registered model may use, and nothing else.

An ONNX model is only as safe as the kernels it asks the runtime to run.  This
allow-list names the standard ``ai.onnx`` operators that serve inference and the
whole ``ai.onnx.ml`` domain (the classic scikit-learn family).  It is written out
by hand rather than taken from the ONNX schema registry, so a new ONNX or
onnxruntime release never widens it silently.

Left out on purpose:

- custom domains (``com.microsoft`` and the like): kernels outside the standard;
- random generators (``RandomNormal``, ``RandomUniform``, ``Bernoulli``,
  ``Multinomial`` and their ``*Like`` forms): an answer must be a function of
  the input, or receipts and watermarks cannot be replayed;
- ``ImageDecoder`` and ``RegexFullMatch``: parsers of partner-supplied bytes and
  patterns, an attack surface a scoring model does not need;
- training operators (losses, the ``ai.onnx.preview.training`` domain) and
  operators too new for a stable onnxruntime.
"""

from __future__ import annotations

import types
from collections.abc import Mapping

__all__ = ["ALLOWED_OPERATORS", "ONNX_DOMAIN", "ONNX_ML_DOMAIN", "is_allowed", "standard_domain"]

ONNX_DOMAIN = "ai.onnx"
ONNX_ML_DOMAIN = "ai.onnx.ml"

_ONNX_OPS = frozenset(
    {
        # element-wise arithmetic and maths
        "Abs", "Acos", "Acosh", "Add", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Clip",
        "Cos", "Cosh", "CumProd", "CumSum", "Det", "Div", "Einsum", "Erf", "Exp", "Floor",
        "Log", "MatMul", "MatMulInteger", "Max", "Mean", "Min", "Mod", "Mul", "Neg", "Pow",
        "Reciprocal", "Round", "Sign", "Sin", "Sinh", "Sqrt", "Sub", "Sum", "Tan", "Tanh",
        "Gemm",
        # activations
        "Celu", "Elu", "Gelu", "HardSigmoid", "HardSwish", "Hardmax", "LeakyRelu",
        "LogSoftmax", "Mish", "PRelu", "Relu", "Selu", "Shrink", "Sigmoid", "Softmax",
        "Softplus", "Softsign", "Swish", "ThresholdedRelu",
        # convolution, pooling, recurrent, attention
        "AveragePool", "Col2Im", "Conv", "ConvInteger", "ConvTranspose", "DeformConv",
        "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "LpPool", "MaxPool",
        "MaxRoiPool", "MaxUnpool", "RoiAlign", "GRU", "LSTM", "RNN", "Attention",
        "RotaryEmbedding",
        # normalisation
        "BatchNormalization", "GroupNormalization", "InstanceNormalization", "LRN",
        "LayerNormalization", "LpNormalization", "MeanVarianceNormalization",
        "RMSNormalization", "Dropout",
        # quantisation
        "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
        "QuantizeLinear",
        # shape and data movement
        "AffineGrid", "CenterCropPad", "Compress", "Concat", "ConstantOfShape",
        "DepthToSpace", "Expand", "EyeLike", "Flatten", "Gather", "GatherElements",
        "GatherND", "GridSample", "NonZero", "OneHot", "Pad", "Range", "Reshape", "Resize",
        "ReverseSequence", "Scatter", "ScatterElements", "ScatterND", "Shape", "Size",
        "Slice", "SpaceToDepth", "Split", "Squeeze", "Tile", "Transpose", "Trilu", "Unique",
        "Unsqueeze", "Upsample",
        # reductions and selection
        "ArgMax", "ArgMin", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
        "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
        "ReduceSumSquare", "TopK", "NonMaxSuppression",
        # comparison, logic, bits
        "And", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Equal",
        "Greater", "GreaterOrEqual", "IsInf", "IsNaN", "Less", "LessOrEqual", "Not", "Or",
        "Where", "Xor",
        # types, constants, plumbing
        "Cast", "CastLike", "Constant", "Identity",
        # signal processing
        "BlackmanWindow", "DFT", "HammingWindow", "HannWindow", "MelWeightMatrix", "STFT",
        # text features (scikit-learn text pipelines)
        "StringConcat", "StringNormalizer", "StringSplit", "TfIdfVectorizer",
        # control flow: their subgraphs are checked like the main graph
        "If", "Loop", "Scan", "SequenceMap",
        # sequences and optionals
        "ConcatFromSequence", "Optional", "OptionalGetElement", "OptionalHasElement",
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
        "SequenceInsert", "SequenceLength", "SplitToSequence",
    }
)  # fmt: skip

_ONNX_ML_OPS = frozenset(
    {
        "ArrayFeatureExtractor", "Binarizer", "CastMap", "CategoryMapper", "DictVectorizer",
        "FeatureVectorizer", "Imputer", "LabelEncoder", "LinearClassifier", "LinearRegressor",
        "Normalizer", "OneHotEncoder", "SVMClassifier", "SVMRegressor", "Scaler",
        "TreeEnsemble", "TreeEnsembleClassifier", "TreeEnsembleRegressor", "ZipMap",
    }
)  # fmt: skip

ALLOWED_OPERATORS: Mapping[str, frozenset[str]] = types.MappingProxyType(
    {ONNX_DOMAIN: _ONNX_OPS, ONNX_ML_DOMAIN: _ONNX_ML_OPS}
)
"""Standard domain -> operator types a registered model may use."""


def standard_domain(domain: str) -> str | None:
    """The canonical name of a standard domain (``""`` is ``ai.onnx``), else ``None``."""
    if domain in ("", ONNX_DOMAIN):
        return ONNX_DOMAIN
    if domain == ONNX_ML_DOMAIN:
        return ONNX_ML_DOMAIN
    return None


def is_allowed(domain: str, op_type: str) -> bool:
    """Whether ``op_type`` of ``domain`` is on the allow-list."""
    canonical = standard_domain(domain)
    return canonical is not None and op_type in ALLOWED_OPERATORS[canonical]
