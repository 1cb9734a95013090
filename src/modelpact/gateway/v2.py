"""The Open Inference Protocol (KServe V2 REST) in front of the same pipeline as ``/v1``.

Partners with a standard V2 client (tritonclient's HTTP client, KServe's) call::

    GET  /v2                                          server metadata
    GET  /v2/health/live, /v2/health/ready            200, or not
    GET  /v2/models/{name}[/versions/{version}]       model metadata     (Bearer)
    GET  /v2/models/{name}[/versions/{version}]/ready                    (Bearer)
    POST /v2/models/{name}[/versions/{version}]/infer                    (Bearer)

An inference request carries one FP32, FP64 or INT* input shaped ``[rows,
features]`` (data flat or nested).  It runs through
:meth:`~modelpact.gateway.app.Gateway.predict_blocking` exactly as ``POST
/v1/models/{model}/predict`` does (decide, meter, run, shape); its audit entry
is made durable before the answer leaves, and the receipt rides in the
response's ``parameters.modelpact_receipt``.  The outputs are the shaped
outputs, as tensors:

- ``label``  → ``label`` [rows], INT64 (BYTES for text classes);
- ``scores`` → ``scores`` FP64 [rows, classes], the column labels in its
  ``parameters.labels``; a regressor's → ``value`` FP64 [rows];
- ``top_k``  → ``top_k_labels`` [rows, k] and ``top_k_scores`` FP64 [rows, k].

A model the session's charter grants nothing on answers 404 exactly as an
unknown one does.  Refused with 400: the binary tensor data extension, shared
memory, classification outputs and compressed request bodies.  Every failure
is RFC 9457 problem+json with V2's ``error`` member added (V2 clients read it),
and every refused inference is an ``access/v1`` deny entry, as on ``/v1``.

The wire format itself (models, datatypes, body parsing, tensors) is
:mod:`modelpact.gateway.v2_wire`; this module joins it to the gateway.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from modelpact import __version__
from modelpact.audit.entries import AccessEntry, SessionEntry
from modelpact.charter import SLUG_PATTERN, Action, Charter, Grant, OutputKind, OutputPolicy
from modelpact.errors import (
    AuditUnavailable,
    Denied,
    InvalidInput,
    ModelpactError,
    NotFound,
    quote_untrusted,
)
from modelpact.gateway.app import Gateway, Session
from modelpact.gateway.problems import MEDIA_TYPE, problem_response
from modelpact.gateway.v2_wire import (
    ELEMENT_TYPES,
    INFER_BODY,
    V2InferenceRequest,
    V2InferenceResponse,
    V2MetadataTensor,
    V2ModelMetadata,
    V2ResponseParameters,
    V2ServerMetadata,
    feature_rows,
    output_tensors,
    parse_request,
    refuse_extensions,
)
from modelpact.policy import AccessRequest
from modelpact.runtime import ModelSummary
from modelpact.runtime.shaping import LABEL_OUTPUT, SCORES_OUTPUT
from modelpact.services.sessions import ActiveSession
from modelpact.wire import PredictRequest, PredictResponse

__all__ = [
    "PLATFORM",
    "V2InferenceRequest",
    "V2InferenceResponse",
    "V2MetadataTensor",
    "V2ModelMetadata",
    "V2ServerMetadata",
    "install_v2",
]

PLATFORM = "onnxruntime_onnx"
_NAME = re.compile(SLUG_PATTERN)
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,62}$")  # as the registry accepts

# -- errors ---------------------------------------------------------------------------------


class _NoSuchModel(NotFound):
    """An unknown or ungranted model: the same answer for both; the audit log keeps ``why``."""

    def __init__(self, model: str, version: str | None, *, why: str) -> None:
        shown = quote_untrusted(model)
        if version is None:
            super().__init__(f"model {shown} does not exist")
        else:
            super().__init__(f"model {shown} has no version {quote_untrusted(version)}")
        self.reasons = (why[:500],)


def _problem(error: ModelpactError) -> JSONResponse:
    """``problem_response`` plus V2's ``error`` member, which V2 clients show."""
    plain = problem_response(error)
    body = json.loads(bytes(plain.body))
    body["error"] = body["detail"]
    headers = {
        name: value
        for name, value in plain.headers.items()
        if name not in ("content-length", "content-type")
    }
    return JSONResponse(body, status_code=plain.status_code, headers=headers, media_type=MEDIA_TYPE)


class _V2Route(APIRoute):
    """A route whose failures, its session dependency's included, carry the ``error`` member."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ModelpactError as error:
                return _problem(error)

        return handle


# -- grants and models ------------------------------------------------------------------------


def _grant(charter: Charter, model: str, version: str | None) -> Grant | None:
    """The first grant of predict on ``model`` (at ``version``, when one is named)."""
    for grant in charter.grants:
        if grant.model != model or Action.PREDICT not in grant.actions:
            continue
        if version is None or grant.covers_version(version):
            return grant
    return None


def _granted_model(
    gw: Gateway, session: ActiveSession, model: str, version: str | None
) -> tuple[Charter, str, Grant | None]:
    """The charter, the version to run and the grant covering it (``None``: the policy denies).

    Raises :class:`_NoSuchModel` alike for a model or version that does not
    exist and for one the charter grants nothing on.
    """
    charter = gw.sessions.charter(session)
    if not _NAME.fullmatch(model) or (version is not None and not _VERSION.fullmatch(version)):
        raise _NoSuchModel(model, version, why="no such model or version name")
    if _grant(charter, model, version) is None:
        why = f"no grant of {charter.ref} covers predict on {model} {version or '(any version)'}"
        raise _NoSuchModel(model, version, why=why)
    resolved = gw.models.resolve(
        model, version, follows=partial(charter.follows, model, Action.PREDICT)
    )
    return charter, resolved, _grant(charter, model, resolved)


def _label_type(summary: ModelSummary) -> str:
    labels = next((o for o in summary.outputs if o.name == LABEL_OUTPUT), None)
    return "BYTES" if labels is not None and labels.elem_type == "string" else "INT64"


def _output_specs(policy: OutputPolicy, summary: ModelSummary) -> list[V2MetadataTensor]:
    """The tensors a partner under ``policy`` gets from this model (see the module docstring)."""
    outputs = {o.name: o for o in summary.outputs}
    scores = outputs.get(SCORES_OUTPUT)
    if scores is None and LABEL_OUTPUT not in outputs:  # a regressor
        regressor = policy.kind is OutputKind.SCORES
        return [V2MetadataTensor(name="value", datatype="FP64", shape=[-1])] if regressor else []
    classes = -1
    if scores is not None and scores.shape is not None and len(scores.shape) == 2:
        classes = scores.shape[1] or -1
    labels = _label_type(summary)
    if policy.kind is OutputKind.LABEL:
        return [V2MetadataTensor(name="label", datatype=labels, shape=[-1])]
    if policy.kind is OutputKind.SCORES:
        return [V2MetadataTensor(name="scores", datatype="FP64", shape=[-1, classes])]
    if policy.kind is OutputKind.TOP_K:
        k = min(policy.k or classes, classes) if classes > 0 else -1
        return [
            V2MetadataTensor(name="top_k_labels", datatype=labels, shape=[-1, k]),
            V2MetadataTensor(name="top_k_scores", datatype="FP64", shape=[-1, k]),
        ]
    return []  # output kinds this gateway does not serve yet


def _metadata(
    gw: Gateway, session: ActiveSession, model: str, version: str | None
) -> V2ModelMetadata:
    """Model metadata for a session allowed to predict on it (the Cedar decision included)."""
    charter, resolved, grant = _granted_model(gw, session, model, version)
    decision = gw.decider.decide(
        AccessRequest(
            partner=session.partner,
            charter=session.charter,
            purpose=session.purpose,
            action=Action.PREDICT,
            model=model,
            version=resolved,
            at=gw.workspace.clock(),
        )
    )
    if not decision.allowed or grant is None:
        raise Denied(
            f"the charter does not allow predict on {model} {resolved}",
            reasons=decision.reasons,
        )
    summary, _ = gw.model_facts(model, resolved)
    first = summary.inputs[0]
    width = first.shape[1] if first.shape is not None and len(first.shape) == 2 else None
    _, records = gw.models.registry.show(model)
    return V2ModelMetadata(
        name=model,
        versions=[r.version for r in records if _grant(charter, model, r.version) is not None],
        platform=PLATFORM,
        inputs=[
            V2MetadataTensor(
                name=first.name,
                datatype=ELEMENT_TYPES.get(first.elem_type, "FP32"),
                shape=[-1, width or -1],
            )
        ],
        outputs=_output_specs(grant.output, summary),
    )


# -- inference requests -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the worker thread made of one inference request: an entry to audit, and more."""

    entry: AccessEntry | SessionEntry
    error: ModelpactError | None = None
    response: PredictResponse | None = None
    request: V2InferenceRequest | None = None


def _loggable(name: str) -> str:
    """A name for the audit log: as sent when well-formed, quoted and cut otherwise."""
    if _VERSION.fullmatch(name):
        return name
    return quote_untrusted(name, limit=60)[:200]


def _refusal(
    gw: Gateway,
    session: ActiveSession,
    model: str,
    version: str | None,
    rows: int,
    error: ModelpactError,
) -> AccessEntry:
    """The deny entry of a request refused before the pipeline, worded as the pipeline does."""
    reasons = getattr(error, "reasons", ()) or (error.summary,)
    return AccessEntry(
        time=gw.workspace.clock(),
        actor=session.partner,
        subject=session.token_id,
        charter=session.charter,
        purpose=session.purpose,
        action=Action.PREDICT.value,
        model=_loggable(model),
        version=_loggable(version) if version is not None else "served",
        rows=rows,
        decision="deny",
        reasons=tuple(reason[:500] for reason in reasons),
    )


def _infer(
    gw: Gateway,
    session: ActiveSession,
    model: str,
    version: str | None,
    body: bytes,
    headers: Mapping[str, str],
) -> _Answer:
    """Check the V2 request, then run the v1 pipeline on its rows (in a worker thread)."""
    request: V2InferenceRequest | None = None
    rows = 0
    try:
        refuse_extensions(headers)
        request = parse_request(body)
        features = feature_rows(request)
        rows = len(features)
        _, resolved, grant = _granted_model(gw, session, model, version)
        if grant is not None:  # without one the pipeline's decision denies, with its reasons
            summary, expected = gw.model_facts(model, resolved)
            if request.inputs[0].name != expected:
                raise InvalidInput(
                    f"{model} {resolved} has no input {quote_untrusted(request.inputs[0].name)}",
                    hint=f"its input is {quote_untrusted(expected)}",
                )
            offered = {spec.name for spec in _output_specs(grant.output, summary)}
            for wanted in request.outputs or ():
                if wanted.name not in offered:
                    raise InvalidInput(
                        f"{model} {resolved} has no output {quote_untrusted(wanted.name)} "
                        "under this charter",
                        hint=f"its outputs are: {', '.join(sorted(offered)) or 'none'}",
                    )
        try:
            predict = PredictRequest(rows=features, version=resolved)
        except ValidationError:
            raise InvalidInput("the rows cannot be read as numbers") from None
    except ModelpactError as error:
        entry = _refusal(gw, session, model, version, rows, error)
        return _Answer(entry, error=error, request=request)
    outcome = gw.predict_blocking(session, model, predict)
    return _Answer(outcome.entry, outcome.error, outcome.response, request)


# -- the routes ---------------------------------------------------------------------------------


def install_v2(app: FastAPI, gw: Gateway) -> None:
    """Add the V2 routes to ``app``, over the same gateway as its ``/v1`` routes."""
    router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"], route_class=_V2Route)

    async def thread(fn: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(fn)

    @router.get("", operation_id="v2ServerMetadata")
    async def server_metadata() -> V2ServerMetadata:
        return V2ServerMetadata(name="modelpact", version=__version__, extensions=[])

    @router.get("/health/live", operation_id="v2Live", response_class=Response)
    async def live() -> Response:
        return Response(status_code=200)

    @router.get("/health/ready", operation_id="v2Ready", response_class=Response)
    async def ready() -> Response:
        def check() -> None:
            with gw.workspace.store.unit_of_work(read_only=True) as uow:
                uow.audit.size()
            if not gw.log.healthy:
                raise AuditUnavailable("the audit log has stopped")

        await thread(check)
        return Response(status_code=200)

    async def metadata(session: ActiveSession, model: str, version: str | None) -> Any:
        return await thread(functools.partial(_metadata, gw, session, model, version))

    async def model_ready(session: ActiveSession, model: str, version: str | None) -> Response:
        await metadata(session, model, version)  # granted, allowed and loaded: ready
        return Response(status_code=200)

    async def infer(
        request: Request, session: ActiveSession, model: str, version: str | None
    ) -> Any:
        try:
            body = await request.body()
        except ModelpactError as error:  # a chunked body over the limit
            await gw.audit(_refusal(gw, session, model, version, 0, error))
            raise
        answer: _Answer = await thread(
            functools.partial(_infer, gw, session, model, version, body, request.headers)
        )
        receipt = await gw.audit(answer.entry)
        if answer.error is not None:
            return _problem(answer.error)
        assert answer.response is not None and answer.request is not None
        tensors = output_tensors(answer.response.outputs)
        if answer.request.outputs is not None:
            order = [wanted.name for wanted in answer.request.outputs]
            tensors = sorted(
                (t for t in tensors if t.name in order), key=lambda t: order.index(t.name)
            )
        return V2InferenceResponse(
            model_name=model,
            model_version=answer.response.version,
            id=answer.request.id,
            parameters=V2ResponseParameters(modelpact_receipt=receipt),
            outputs=tensors,
        )

    @router.get(
        "/models/{name}",
        operation_id="v2ModelMetadata",
        response_model=V2ModelMetadata,
    )
    async def model_metadata(name: str, session: Session) -> Any:
        return await metadata(session, name, None)

    @router.get(
        "/models/{name}/versions/{version}",
        operation_id="v2ModelMetadataVersioned",
        response_model=V2ModelMetadata,
    )
    async def model_metadata_versioned(name: str, version: str, session: Session) -> Any:
        return await metadata(session, name, version)

    @router.get("/models/{name}/ready", operation_id="v2ModelReady", response_class=Response)
    async def model_is_ready(name: str, session: Session) -> Response:
        return await model_ready(session, name, None)

    @router.get(
        "/models/{name}/versions/{version}/ready",
        operation_id="v2ModelReadyVersioned",
        response_class=Response,
    )
    async def model_is_ready_versioned(name: str, version: str, session: Session) -> Response:
        return await model_ready(session, name, version)

    infer_options: dict[str, Any] = {
        "response_model": V2InferenceResponse,
        "response_model_exclude_none": True,
        "openapi_extra": INFER_BODY,
    }

    @router.post("/models/{name}/infer", operation_id="v2Infer", **infer_options)
    async def model_infer(name: str, request: Request, session: Session) -> Any:
        return await infer(request, session, name, None)

    @router.post(
        "/models/{name}/versions/{version}/infer",
        operation_id="v2InferVersioned",
        **infer_options,
    )
    async def model_infer_versioned(
        name: str, version: str, request: Request, session: Session
    ) -> Any:
        return await infer(request, session, name, version)

    app.include_router(router)
