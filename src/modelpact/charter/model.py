"""The charter: the collaboration agreement as a typed, immutable value.

Unknown fields are errors everywhere (``extra="forbid"``).  Times must carry a
time zone and are normalised to UTC, so two charters that mean the same instant
have the same canonical form.  The model is pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from modelpact.crypto import VerifyKey
from modelpact.errors import InvalidInput

__all__ = [
    "SLUG_PATTERN",
    "Action",
    "AttestationPins",
    "Charter",
    "ExitTerms",
    "ExtractionMonitor",
    "Grant",
    "IncidentResponse",
    "JointComputeParty",
    "JointMetric",
    "JointTerms",
    "Limits",
    "OutputKind",
    "OutputPolicy",
    "Owner",
    "PartnerParty",
    "Protections",
    "Response",
    "Validity",
    "parse_duration",
]

#: Identifiers of charters, partners, models and purposes: lower-case slugs.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
#: A model version pattern: an exact version (``1.2.0``), a prefix (``1.*``) or ``*``.
VersionPattern = Annotated[
    str, StringConstraints(pattern=r"^(\*|[0-9A-Za-z][0-9A-Za-z.+-]{0,62}(\.\*)?)$")
]
#: A duration such as ``90s``, ``15m``, ``1h`` or ``1d``.
Duration = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,6}[smhd]$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
#: ``model@version``, as attestation pins name a model version.
ModelVersionRef = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}@[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The largest integer every JSON reader keeps exactly (RFC 8785 refuses larger ones).
_JSON_SAFE_INT = 2**53 - 1


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``15m``."""
    match = re.fullmatch(r"([1-9][0-9]{0,6})([smhd])", text)
    if match is None:
        raise InvalidInput(f"{text!r} is not a duration such as 90s, 15m, 1h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _document(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """Drop the nulls of ``dumped`` (``model`` in JSON mode) that mean "left at default"."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        value = getattr(model, name)
        item = dumped[key]
        if value is None:
            if field.default is None:
                continue
            out[key] = None
        elif isinstance(value, BaseModel):
            out[key] = _document(value, item)
        elif isinstance(value, tuple):
            out[key] = [
                _document(v, d) if isinstance(v, BaseModel) else d
                for v, d in zip(value, item, strict=True)
            ]
        else:
            out[key] = item
    return out


class Owner(_Strict):
    name: Text
    key: str = Field(description="the owner's Ed25519 public key, ed25519:<base64>")

    @field_validator("key")
    @classmethod
    def _key_is_ed25519(cls, value: str) -> str:
        try:
            return VerifyKey.decode(value).encode()
        except InvalidInput as exc:
            raise ValueError(exc.summary) from None

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey.decode(self.key)


class PartnerParty(Owner):
    id: Slug


class Validity(_Strict):
    from_: AwareDatetime = Field(alias="from")
    until: AwareDatetime | None = None

    @field_validator("from_")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("until")
    @classmethod
    def _after_from(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        # A field validator (not a model validator) so the error points at valid.until.
        if value is None:
            return None
        value = value.astimezone(UTC)
        start = info.data.get("from_")
        if start is not None and value <= start:
            raise ValueError("valid.until must be after valid.from")
        return value

    def contains(self, instant: datetime) -> bool:
        """True when ``instant`` lies in ``[from, until)``."""
        return self.from_ <= instant and (self.until is None or instant < self.until)


class Action(StrEnum):
    PREDICT = "predict"
    PREDICT_ENCRYPTED = "predict_encrypted"
    PREDICT_JOINT = "predict_joint"
    EVALUATE_JOINT = "evaluate_joint"


class OutputKind(StrEnum):
    LABEL = "label"
    TOP_K = "top_k"
    SCORES = "scores"
    NOISED_SCORES = "noised_scores"
    EMBEDDING = "embedding"


class OutputPolicy(_Strict):
    """What the partner sees of a prediction."""

    kind: OutputKind
    decimals: Annotated[int, Field(ge=0, le=6)] | None = None
    k: Annotated[int, Field(ge=1, le=1000)] | None = None
    epsilon: Annotated[float, Field(gt=0, le=100)] | None = None
    budget: Annotated[float, Field(gt=0, le=1_000_000)] | None = None

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Self:
        if self.budget is not None and self.kind is not OutputKind.NOISED_SCORES:
            raise ValueError(f"budget applies only to noised_scores, not {self.kind.value}")
        if self.budget is not None and self.epsilon is not None and self.budget < self.epsilon:
            raise ValueError("the budget is smaller than one answer's epsilon")
        if self.kind is OutputKind.TOP_K and self.k is None:
            raise ValueError("output kind top_k needs k")
        if self.kind is not OutputKind.TOP_K and self.k is not None:
            raise ValueError(f"k applies only to top_k, not {self.kind.value}")
        if self.kind is OutputKind.NOISED_SCORES and self.epsilon is None:
            raise ValueError("output kind noised_scores needs epsilon (each answer's privacy loss)")
        if self.kind is not OutputKind.NOISED_SCORES and self.epsilon is not None:
            raise ValueError(f"epsilon applies only to noised_scores, not {self.kind.value}")
        if self.kind in (OutputKind.LABEL, OutputKind.EMBEDDING) and self.decimals is not None:
            raise ValueError(f"decimals does not apply to output kind {self.kind.value}")
        return self


class Grant(_Strict):
    """Which model versions the partner may use, how, and what it sees."""

    model: Slug
    versions: VersionPattern
    actions: Annotated[tuple[Action, ...], Field(min_length=1)]
    output: OutputPolicy

    @field_validator("actions")
    @classmethod
    def _unique_actions(cls, value: tuple[Action, ...]) -> tuple[Action, ...]:
        if len(set(value)) != len(value):
            raise ValueError("actions are listed more than once")
        return value

    def covers_version(self, version: str) -> bool:
        """The same matching the compiled policy does (Cedar ``like``)."""
        if self.versions == "*":
            return True
        if self.versions.endswith(".*"):
            return version.startswith(self.versions[:-1])
        return version == self.versions


class Limits(_Strict):
    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    daily_quota: Annotated[int, Field(ge=1, le=_JSON_SAFE_INT)] | None = None
    max_batch_rows: Annotated[int, Field(ge=1, le=100_000)] = 256
    session_ttl: Duration = "15m"

    @property
    def session_ttl_seconds(self) -> int:
        return parse_duration(self.session_ttl)


class Response(StrEnum):
    """What the gateway does on its own when a monitor fires."""

    ALERT = "alert"
    THROTTLE = "throttle"
    HARDEN = "harden"
    SUSPEND = "suspend"
    REVOKE = "revoke"


class ExtractionMonitor(_Strict):
    on_alert: Response = Response.THROTTLE
    on_confirmed: Response = Response.SUSPEND


class Protections(_Strict):
    watermark: bool = True
    extraction_monitor: ExtractionMonitor | None = Field(default_factory=ExtractionMonitor)


class IncidentResponse(_Strict):
    contacts: tuple[Email, ...] = ()
    webhook: Annotated[str, StringConstraints(pattern=r"^https://[^\s]+$")] | None = None


class ExitTerms(_Strict):
    retention_days: Annotated[int, Field(ge=0, le=3650)] = 30


class AttestationPins(_Strict):
    """What the partner's SDK must find in the gateway's attestation before it sends data.

    ``code`` and ``dependencies``: the serving measurement's digests.  ``models``:
    ``model@version`` to the artifact's digest; once a model is named here, an
    attested version of it that is not pinned (a swapped or new version) is refused.
    """

    code: Digest | None = None
    dependencies: Digest | None = None
    models: dict[ModelVersionRef, Digest] = Field(default_factory=dict, max_length=256)


class JointMetric(StrEnum):
    """A measure of a model on the partner's labelled rows that a joint evaluation may reveal."""

    ACCURACY = "accuracy"
    AUC = "auc"  # binary classifiers only


class JointComputeParty(_Strict):
    """The third party of a joint (MPC) run: with owner and partner, an honest majority."""

    id: Slug
    name: Text


class JointTerms(_Strict):
    """How joint (secret-shared) runs go: who computes with owner and partner, and which
    measures an evaluation may reveal (to both; nothing else about rows or weights)."""

    compute_party: JointComputeParty
    metrics: Annotated[tuple[JointMetric, ...], Field(max_length=len(JointMetric))] = ()

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, value: tuple[JointMetric, ...]) -> tuple[JointMetric, ...]:
        if len(set(value)) != len(value):
            raise ValueError("metrics are listed more than once")
        return value


class Charter(_Strict):
    """One version of a collaboration agreement between an owner and one partner."""

    charter: Slug
    version: Annotated[int, Field(ge=1, le=_JSON_SAFE_INT)]
    owner: Owner
    partner: PartnerParty
    objective: Text
    valid: Validity
    purposes: Annotated[tuple[Slug, ...], Field(min_length=1)]
    grants: Annotated[tuple[Grant, ...], Field(min_length=1)]
    limits: Limits = Field(default_factory=Limits)
    protections: Protections = Field(default_factory=Protections)
    incident_response: IncidentResponse | None = None
    exit: ExitTerms = Field(default_factory=ExitTerms)
    attestation: AttestationPins | None = None
    joint: JointTerms | None = None

    @field_validator("purposes")
    @classmethod
    def _unique_purposes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("purposes are listed more than once")
        return value

    @field_validator("partner")
    @classmethod
    def _distinct_parties(cls, value: PartnerParty, info: ValidationInfo) -> PartnerParty:
        # A field validator (not a model validator) so the error points at the partner.
        owner = info.data.get("owner")
        if owner is not None and owner.key == value.key:
            raise ValueError("owner and partner must have different keys")
        return value

    @field_validator("joint")
    @classmethod
    def _third_party(cls, value: JointTerms | None, info: ValidationInfo) -> JointTerms | None:
        # Two of the three parties together learn everything: the third must be another one.
        partner = info.data.get("partner")
        if value is not None and partner is not None and value.compute_party.id == partner.id:
            raise ValueError("the joint compute party must not be the partner itself")
        return value

    def to_document(self) -> dict[str, Any]:
        """The JSON document whose RFC 8785 form is signed.

        Fields go by their alias (``from``).  A field that is ``None`` is left out
        when its default is ``None`` too (absence means the same thing), and kept
        as an explicit ``null`` otherwise: ``protections.extraction_monitor: null``
        turns the monitor off, whereas leaving it out would turn it on.
        """
        return _document(self, self.model_dump(mode="json", by_alias=True))

    @property
    def ref(self) -> str:
        """``charter@version``, the name a human uses."""
        return f"{self.charter}@v{self.version}"

    def follows(self, model: str, action: Action, version: str) -> bool:
        """Does a grant let ``action`` run on ``model`` ``version``?  What a request that
        names no version is pinned to (an exact version) or follows (``1.*``, ``*``)."""
        return any(
            grant.model == model and action in grant.actions and grant.covers_version(version)
            for grant in self.grants
        )
