"""Model artifacts: what may be registered, how it is made, how it runs.

- :func:`inspect_model` decides whether bytes may be registered as a model
  (ONNX only; pickle, joblib and torch checkpoints refused unopened; operators
  from an allow-list; no external data; bounded size) and summarises them;
- :func:`export_sklearn` turns a fitted scikit-learn estimator into ONNX bytes;
- :class:`Predictor` runs an accepted model on a batch of features;
- :class:`ModelCard` and :func:`load_card` carry the owner's description of it;
- :func:`shape_outputs` turns its raw outputs into what a grant's output policy
  lets a partner see (:class:`PredictionFailed` when the answer cannot be served).

Every refusal is a :class:`~modelpact.errors.ModelRejected` whose hint says what
to do instead; other bad input is :class:`~modelpact.errors.InvalidInput`.
"""

from modelpact.runtime.artifact_check import (
    DEFAULT_LIMITS,
    GraphLimits,
    ModelSummary,
    TensorInfo,
    inspect_model,
)
from modelpact.runtime.card import MAX_CARD_BYTES, ModelCard, card_to_json, load_card
from modelpact.runtime.operators import ALLOWED_OPERATORS
from modelpact.runtime.pickle_family import refuse_pickle_family
from modelpact.runtime.predictor import Predictor
from modelpact.runtime.shaping import PredictionFailed, shape_outputs
from modelpact.runtime.sklearn_export import INPUT_NAME, export_sklearn

__all__ = [
    "ALLOWED_OPERATORS",
    "DEFAULT_LIMITS",
    "INPUT_NAME",
    "MAX_CARD_BYTES",
    "GraphLimits",
    "ModelCard",
    "ModelSummary",
    "PredictionFailed",
    "Predictor",
    "TensorInfo",
    "card_to_json",
    "export_sklearn",
    "inspect_model",
    "load_card",
    "refuse_pickle_family",
    "shape_outputs",
]
