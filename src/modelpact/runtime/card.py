"""The model card: what a model is for, written by its owner, read by partners.

A card travels with every model version and is signed with it, so it is parsed
strictly: unknown fields are errors (a misspelt ``limitations`` must not vanish
silently), values are not coerced (``"0.93"`` is not a metric), YAML aliases and
duplicate keys are refused, and the text is capped at :data:`MAX_CARD_BYTES`.
:func:`card_to_json` gives the canonical JSON (RFC 8785) that gets signed.
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic_core import ErrorDetails

from modelpact.crypto import canonical_json
from modelpact.errors import InvalidInput, quote_untrusted

__all__ = ["MAX_CARD_BYTES", "ModelCard", "card_to_json", "load_card"]

MAX_CARD_BYTES = 64 * 1024
"""The largest model card accepted, in UTF-8 bytes."""

_Text = Annotated[str, Strict(), Field(min_length=1)]
_Metric = Annotated[float, Strict(), AllowInfNan(False)]


class ModelCard(BaseModel):
    """Owner-written facts about a model version, shown to partners before they sign."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: _Text
    intended_use: _Text | None = None
    limitations: _Text | None = None
    training_data: _Text | None = None
    metrics: dict[_Text, _Metric] = Field(default_factory=dict)
    contacts: tuple[_Text, ...] = ()
    license: _Text | None = None


def load_card(text: str, *, source: str) -> ModelCard:
    """Parse a YAML model card; raise :class:`InvalidInput` with one line naming the fault."""
    shown = quote_untrusted(source)
    if not isinstance(text, str):
        raise InvalidInput(f"model card {shown} must be text, not {type(text).__name__}")
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_CARD_BYTES:
        raise InvalidInput(
            f"model card {shown} has {size} bytes, over the limit of {MAX_CARD_BYTES}"
        )
    loader = _CardLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise InvalidInput(f"model card {shown} is not valid YAML: {_yaml_problem(exc)}") from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        kind = "empty" if document is None else f"a {type(document).__name__}"
        raise InvalidInput(
            f"model card {shown} must be a mapping of fields, not {kind}",
            hint="start with 'description: ...'",
        )
    try:
        return ModelCard.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"model card {shown}: {_describe(errors[0])}{more}") from None


def card_to_json(card: ModelCard) -> str:
    """The card as canonical JSON (RFC 8785): the same card always gives the same text."""
    return canonical_json(card.model_dump(mode="json")).decode("utf-8")


class _CardLoader(yaml.SafeLoader):
    """``SafeLoader`` that also refuses aliases (no "billion laughs") and duplicate keys."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a model card", None
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {quote_untrusted(str(key_node.value))}",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "malformed"
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return f"{problem}{where}"[:200]
    return type(exc).__name__


def _describe(error: ErrorDetails) -> str:
    loc = error["loc"]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    field = quote_untrusted(path or "(card)")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown field {field}"
    if kind == "missing":
        return f"field {field} is required"
    if kind == "invalid_key":
        return f"field names must be text, not {quote_untrusted(path)}"
    return f"field {field}: {error['msg'].lower()}"
