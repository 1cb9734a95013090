"""Encrypted predictions: a partner's CKKS ciphertexts scored without the owner reading them.

::

    PUT  /v1/encryption/context                  the session's public context (binary)
    POST /v1/models/{model}/predict-encrypted    ciphertexts in, ciphertexts out

The partner's SDK keeps the secret key.  It uploads the public context once per
session (the parameters: under 100 bytes, as neither packing needs evaluation keys),
then sends ciphertexts — a :data:`~modelpact.wire.CIPHERTEXTS_MEDIA_TYPE`
body — naming the context by digest, the packing and the row count.  The request goes
through the same pipeline as a plain one: the session, the rate, the compiled policy
(which must grant ``predict_encrypted``: no output policy can apply to what the
gateway cannot read), the extraction monitor's response in force, the daily quota in
rows; then the model worker scores the ciphertexts and the access entry records their
digests, the context's and the row count before the answer leaves.  Refused here, as
no promise of theirs can be kept on ciphertexts: a grant whose outputs are noised
under a privacy budget, and a partner whose outputs the monitor has hardened.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Query, Request

from modelpact.audit.entries import AccessEntry, SessionEntry
from modelpact.charter import Action, Charter, OutputKind
from modelpact.charter import Response as Step
from modelpact.errors import ContextNeeded, Denied, InvalidInput, ModelpactError, NotFound
from modelpact.gateway.app import Gateway, Session, valid_names
from modelpact.gateway.problems import problem_response
from modelpact.services.encrypted import EncryptedPrediction, Packing
from modelpact.services.monitoring import in_force, throttled_rate
from modelpact.services.sessions import ActiveSession
from modelpact.wire import (
    CIPHERTEXTS_MEDIA_TYPE,
    EncryptedPredictResponse,
    EncryptionContext,
    unpack_ciphertexts,
)

__all__ = ["install_encrypted"]

_DIGEST = r"^sha256:[0-9a-f]{64}$"
#: The most ciphertexts one request may carry (batch: one per feature).
MAX_CIPHERTEXTS = 100_000


def _binary_body(description: str) -> dict[str, Any]:
    """OpenAPI for a route that reads its body as bytes."""
    schema = {"type": "string", "format": "binary"}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                CIPHERTEXTS_MEDIA_TYPE: {"schema": schema},
                "application/octet-stream": {"schema": schema},
            },
        }
    }


@dataclass(frozen=True, slots=True)
class _Admitted:
    base: dict[str, Any]  # the audit entry's fields so far
    reasons: tuple[str, ...]
    version: str
    max_rows: int
    context: bytes
    ciphertexts: list[bytes]


class EncryptedDesk:
    """The encrypted pipeline over a :class:`Gateway`'s parts."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    # -- contexts ---------------------------------------------------------------------------

    async def check_context(self, session: ActiveSession, data: bytes) -> EncryptionContext:
        """Check ``data`` (in a model worker when there are any) and hold it for the session."""
        gw = self.gw
        charter = await anyio.to_thread.run_sync(gw.sessions.charter, session)
        if not any(Action.PREDICT_ENCRYPTED in g.actions for g in charter.grants):
            raise Denied(f"{charter.ref} grants no encrypted predictions")
        if gw.workers is not None:
            digest, parameters = await gw.workers.check_context(data)
        else:
            assert gw.scorer is not None
            digest, public = await anyio.to_thread.run_sync(gw.scorer.context, data)
            parameters = public.describe()
        gw.contexts.put(session.token_id, digest, data)
        return EncryptionContext(digest=digest, **parameters)

    # -- predictions ------------------------------------------------------------------------

    def admit(
        self,
        session: ActiveSession,
        model: str,
        version: str | None,
        rows: int,
        context: str,
        body: bytes,
    ) -> _Admitted:
        """Everything before the model, in a worker thread; raises :class:`_Refused`."""
        gw = self.gw
        now = gw.workspace.clock()
        named = valid_names(model, version)
        base: dict[str, Any] = {
            "time": now,
            "actor": session.partner,
            "subject": session.token_id,
            "charter": session.charter,
            "purpose": session.purpose,
            "action": Action.PREDICT_ENCRYPTED.value,
            "model": model if named else "invalid-name",
            "version": (version or "served") if named else "invalid-name",
            "rows": rows,
        }
        try:
            charter = gw.sessions.charter(session)
            gw.meter.check_rate(session, charter.limits)  # refusals take a slot too
            if not named:
                raise NotFound("the model or version name is not a valid name")
            ciphertexts = unpack_ciphertexts(body, most=MAX_CIPHERTEXTS)
            with gw.workspace.store.unit_of_work(read_only=True) as uow:
                charter, resolved, decision = gw.admit(
                    session,
                    model,
                    version,
                    now,
                    uow,
                    authenticated_here=False,
                    action=Action.PREDICT_ENCRYPTED,
                )
            base["version"] = resolved
            _check_grant(charter, model, resolved)
            if rows > charter.limits.max_batch_rows:
                raise InvalidInput(
                    f"at most {charter.limits.max_batch_rows} rows per request, not {rows}"
                )
            response = gw.response_in_force(session, model, None)
            if in_force(response, Step.HARDEN):
                raise Denied(
                    "the extraction monitor has hardened this partner's outputs, "
                    "which cannot be done to encrypted answers",
                    hint="use plain predictions until the owner lifts the response",
                )
            if in_force(response, Step.THROTTLE):
                rate = throttled_rate(charter.limits.requests_per_minute)
                gw.meter.check_throttle(session, model, rate)
            data = gw.contexts.get(session.token_id, context)
            gw.meter.count(session, charter.limits, rows)
        except ModelpactError as error:
            raise _Refused(base, error) from None
        return _Admitted(
            base=base,
            reasons=(*(decision.reasons or ("allowed",)), f"encryption context {context}"),
            version=resolved,
            max_rows=charter.limits.max_batch_rows,
            context=data,
            ciphertexts=ciphertexts,
        )

    async def score(
        self,
        admitted: _Admitted,
        model: str,
        packing: Packing,
        context: str,
        rows: int,
    ) -> EncryptedPrediction:
        """The model's part, in a worker process (or a thread without workers)."""
        gw = self.gw
        options: dict[str, Any] = {
            "packing": packing,
            "ciphertexts": admitted.ciphertexts,
            "rows": rows,
            "max_rows": admitted.max_rows,
        }
        if gw.workers is not None:
            return await gw.workers.score_encrypted(
                model, admitted.version, context=(context, admitted.context), **options
            )
        scorer = gw.scorer
        assert scorer is not None

        def here() -> EncryptedPrediction:
            try:
                return scorer.score(model, admitted.version, context=context, **options)
            except ContextNeeded:  # dropped from the scorer's few: check it again
                scorer.context(admitted.context)
                return scorer.score(model, admitted.version, context=context, **options)

        return await anyio.to_thread.run_sync(here)


class _Refused(Exception):
    """A request refused before the model ran: its deny entry's fields and the error."""

    def __init__(self, base: dict[str, Any], error: ModelpactError) -> None:
        super().__init__(error.summary)
        self.base = base
        self.error = error

    def entry(self) -> AccessEntry:
        reasons = getattr(self.error, "reasons", ()) or (self.error.summary[:500],)
        return AccessEntry(**self.base, decision="deny", reasons=tuple(reasons))


def _check_grant(charter: Charter, model: str, version: str) -> None:
    """The policy allowed it; refuse what it allowed but cannot be kept on ciphertexts."""
    for grant in charter.grants:
        if (
            grant.model == model
            and grant.covers_version(version)
            and Action.PREDICT_ENCRYPTED in grant.actions
            and grant.output.kind is OutputKind.NOISED_SCORES
        ):
            raise Denied(
                f"{charter.ref} noises {model}'s outputs under a privacy budget, which the "
                "gateway cannot do to encrypted answers"
            )


def install_encrypted(app: FastAPI, gw: Gateway) -> None:
    """Add the encrypted routes to the gateway's app."""
    desk = EncryptedDesk(gw)
    workspace = gw.workspace

    @app.put(
        "/v1/encryption/context",
        operation_id="putEncryptionContext",
        tags=["encrypted"],
        response_model=EncryptionContext,
        openapi_extra=_binary_body("a TenSEAL CKKS context without its secret key"),
    )
    async def put_context(request: Request, session: Session) -> EncryptionContext:
        """Hold the session's public CKKS context; encrypted predictions name it by digest."""
        data = await request.body()
        entry = {
            "time": workspace.clock(),
            "action": "context",
            "actor": session.partner,
            "subject": session.token_id,
            "charter": session.charter,
            "purpose": session.purpose,
        }
        try:
            held = await desk.check_context(session, data)
        except ModelpactError as error:
            await gw.audit(SessionEntry(**entry, decision="deny", reasons=(error.summary[:500],)))
            raise
        reason = f"encryption context {held.digest}, CKKS N={held.degree}"
        await gw.audit(SessionEntry(**entry, decision="allow", reasons=(reason,)))
        return held

    @app.post(
        "/v1/models/{model}/predict-encrypted",
        operation_id="predictEncrypted",
        tags=["encrypted"],
        response_model=EncryptedPredictResponse,
        openapi_extra=_binary_body(
            "ciphertexts: each a 4-byte big-endian length and a serialised CKKS vector"
        ),
    )
    async def predict_encrypted(
        model: str,
        request: Request,
        session: Session,
        packing: Annotated[Packing, Query(description="batch: one ciphertext per feature")],
        rows: Annotated[int, Query(ge=1, le=1_000_000, description="rows the ciphertexts hold")],
        context: Annotated[str, Query(pattern=_DIGEST, description="the context's digest")],
        version: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Any:
        """Score ciphertexts under the session's context; answer ciphertexts of scores."""
        body = await request.body()
        try:
            admitted = await anyio.to_thread.run_sync(
                desk.admit, session, model, version, rows, context, body
            )
        except _Refused as refused:
            await gw.audit(refused.entry())
            return problem_response(refused.error)
        try:
            found = await desk.score(admitted, model, packing, context, rows)
        except ModelpactError as error:
            await gw.audit(_Refused(admitted.base, error).entry())
            return problem_response(error)
        entry = AccessEntry(
            **admitted.base,
            decision="allow",
            reasons=(*admitted.reasons, f"{packing.value} packing"),
            input_digest=found.input_digest,
            output_digest=found.output_digest,
        )
        receipt = await gw.audit(entry)
        return EncryptedPredictResponse(
            model=model,
            version=admitted.version,
            packing=packing.value,
            rows=found.rows,
            columns=found.columns,
            link=found.link.value,
            labels=None if found.labels is None else list(found.labels),
            context=found.context_digest,
            scores=[base64.b64encode(c).decode("ascii") for c in found.scores],
            receipt=receipt,
        )
