"""The red team: model-extraction attacks run against a partner's view of a model."""

from modelpact.redteam.attacks import (
    Answers,
    Oracle,
    Step,
    adaptive_labels,
    equation_solving,
    fidelity,
    knockoff,
)

__all__ = [
    "Answers",
    "Oracle",
    "Step",
    "adaptive_labels",
    "equation_solving",
    "fidelity",
    "knockoff",
]
