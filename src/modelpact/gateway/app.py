"""The partner gateway as an ASGI app: sessions, predictions, receipts and log proofs.

A prediction runs: authenticate → decide (the compiled Cedar policy) → meter →
run the model → shape the output per the grant → audit → respond with the
prediction and a receipt.  Every outcome, allowed or not, becomes exactly one
audit entry before the response leaves; when the entry cannot be made durable
the request fails with 503 and nothing is returned (fail closed).

When everything a prediction reads is in the state cache and the store is
embedded (SQLite), the pipeline runs on the event loop itself: one read of the
store's change counter, then nothing but memory and the model (see
:meth:`Gateway.predict_cached`).  Otherwise its blocking steps (database,
loading a model) run together in one worker thread.  Either way the audit append
is awaited on the event loop, so a batch of concurrent requests shares one
durable commit and one wake-up.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

import anyio
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from modelpact.audit.entries import AccessEntry, AuditEntry, SessionEntry, decode_entry
from modelpact.audit.log import AuditLog
from modelpact.charter import (
    SLUG_PATTERN,
    Action,
    Charter,
    ExtractionMonitor,
    IncidentResponse,
    OutputKind,
    OutputPolicy,
)
from modelpact.charter import Response as Step
from modelpact.dashboard import install_dashboard
from modelpact.errors import (
    Denied,
    Expired,
    InvalidInput,
    ModelpactError,
    NotFound,
    StorageUnavailable,
    Unauthenticated,
    quote_untrusted,
)
from modelpact.gateway.metrics import GatewayMetrics, MetricsMiddleware
from modelpact.gateway.problems import (
    MEDIA_TYPE,
    BodyLimit,
    install,
    invalid_request,
    problem_response,
    validation_detail,
)
from modelpact.policy import AccessRequest, Decision
from modelpact.runtime import ModelSummary
from modelpact.services.attestation import IN_PROCESS, Attestor
from modelpact.services.decisions import Decider
from modelpact.services.encrypted import ContextShelf, EncryptedScorer
from modelpact.services.expiry import Sweeper
from modelpact.services.metering import Meter
from modelpact.services.model_workers import WorkerPool
from modelpact.services.monitoring import (
    Monitor,
    Observation,
    hardened,
    in_force,
    throttled_rate,
    watched_label,
)
from modelpact.services.serving import ModelServer, Prediction
from modelpact.services.sessions import ActiveSession, SessionDesk, token_id
from modelpact.services.state_cache import CacheMiss, StateCache
from modelpact.services.watermarking import WatermarkDesk
from modelpact.services.webhooks import Notifier
from modelpact.services.workspace import Workspace
from modelpact.store import UnitOfWork
from modelpact.wire import (
    NONCE_PATTERN,
    Challenge,
    ChallengeRequest,
    CheckpointDocument,
    ConsistencyProof,
    InclusionProof,
    PredictRequest,
    PredictResponse,
    PrivacyBudget,
    Receipt,
    SessionGrant,
    SessionRequest,
    SignedAttestation,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_ENCRYPTED_BODY",
    "Gateway",
    "create_app",
    "valid_names",
]

DEFAULT_MAX_BODY = 8 * 1024 * 1024
"""Largest request body accepted (bytes); the charter's ``max_batch_rows`` bounds rows."""
DEFAULT_MAX_ENCRYPTED_BODY = 48 * 1024 * 1024
"""Largest body of ciphertexts (30 features of 4,096 rows in batch packing are 3.5 MB)."""

T = TypeVar("T")
_SLUG = re.compile(SLUG_PATTERN.removeprefix("^").removesuffix("$"))
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"content": {MEDIA_TYPE: {}}, "description": "problem details (RFC 9457)"}
    for status in (400, 401, 403, 404, 413, 422, 429, 503)
}


def valid_names(model: str, version: str | None) -> bool:
    """Whether ``model`` and ``version`` (None: the one served) are names the registry could
    hold; a request naming anything else is refused without its name going in the log."""
    return _SLUG.fullmatch(model) is not None and (
        version is None or _VERSION.fullmatch(version) is not None
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the worker thread decided for one prediction request."""

    entry: AccessEntry | SessionEntry
    response: PredictResponse | None = None  # without its receipt yet
    error: ModelpactError | None = None
    marks: tuple[list[list[float]], list[Any]] | None = None  # to keep before answering


@dataclass(frozen=True, slots=True)
class _Plan:
    """An admitted prediction, everything decided but the model's answer."""

    base: dict[str, Any]  # the audit entry's fields so far
    reasons: tuple[str, ...]
    model: str
    version: str
    rows: list[list[float]]
    policy: OutputPolicy
    max_rows: int
    at: datetime
    watch: ExtractionMonitor | None  # the charter's monitor settings; None: not monitored
    hook: IncidentResponse | None
    mark: tuple[bytes, str] | None  # the partner's watermark secret and scope; None: none
    turn: tuple[bytes, str] | None  # the same, to rotate an embedding; None: not one

    @property
    def model_call(self) -> tuple[str, str, list[list[float]]]:
        """The positional arguments of ``predict`` (in a worker, or in process)."""
        return self.model, self.version, self.rows

    @property
    def model_options(self) -> dict[str, Any]:
        """Its keyword arguments: the output policy, the batch limit, the partner's marks."""
        return {
            "policy": self.policy,
            "max_rows": self.max_rows,
            "watermark": self.mark,
            "rotation": self.turn,
        }


class Gateway:
    """The gateway's parts over one workspace, and the pipeline that joins them."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        audience: str | None = None,
        workers: WorkerPool | None = None,
        notifier: Notifier | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        """``workers``: run models in these worker processes (the gateway process then never
        decrypts a model); without them, in this process.  ``notifier``: where incident
        webhooks go (none: not sent).  ``monitor``: the extraction monitor (default: one
        over the workspace, started here)."""
        self.workspace = workspace
        self.workers = workers
        self.notifier = notifier
        self.monitor = monitor or Monitor(workspace, notifier=notifier)
        self.monitor.start()
        self.watermarks = WatermarkDesk(workspace)
        self.audience = audience or workspace.log_origin.removesuffix("/log") + "/gateway"
        # Partners, charters, models and revocations, kept until the store's change
        # counter moves: a cached request reads that counter and nothing else of them.
        self.state = StateCache(workspace)
        self.sessions = SessionDesk(workspace, audience=self.audience, cache=self.state)
        self.meter = Meter(workspace)
        self.models = ModelServer(workspace, cache=self.state)
        # Encrypted scoring: each session's public context, and (without workers) the scorer.
        self.contexts = ContextShelf()
        self.scorer = EncryptedScorer(self.models) if workers is None else None
        self.decider = Decider(workspace, cache=self.state)
        self.attestor = Attestor(
            workspace,
            sessions=self.sessions,
            models=self.models,
            isolation=IN_PROCESS if workers is None else workers.settings,
            # Called from a worker thread: the pool lives on the event loop.
            digests=None if workers is None else self._from_loop(workers.digests),
        )
        self.log = AuditLog(
            workspace.store,
            key=workspace.signing_key,  # follows an owner-key handover done meanwhile
            origin=workspace.log_origin,
            clock=workspace.clock,
        )
        self.metrics = GatewayMetrics(self._audit_size)

    def _audit_size(self) -> int:
        with self.workspace.store.unit_of_work(read_only=True) as uow:
            return uow.audit.size()

    def close(self) -> None:
        self.monitor.close()
        if self.notifier is not None:
            self.notifier.close()
        self.log.close()
        if self.workers is not None:
            self.workers.close()

    async def aclose(self) -> None:
        """:meth:`close`, stopping the model workers on their event loop."""
        if self.workers is not None:
            await self.workers.aclose()
        await _thread(self.close)

    # -- the pipeline, in a worker thread --------------------------------------------------

    def _grant_output(self, charter: Charter, model: str, version: str) -> OutputPolicy:
        for grant in charter.grants:
            if (
                grant.model == model
                and grant.covers_version(version)
                and Action.PREDICT in grant.actions
            ):
                return grant.output
        raise Denied(f"no grant of {charter.ref} covers predict on {model} {version}")

    def admit(
        self,
        session: ActiveSession,
        model: str,
        version: str | None,
        now: datetime,
        uow: UnitOfWork,
        *,
        authenticated_here: bool,
        action: Action = Action.PREDICT,
    ) -> tuple[Charter, str, Decision]:
        """The reads before a model runs, in one snapshot: grant, version, decision.
        ``version``: the one asked for (None: the one served)."""
        charter = self.sessions.charter(session)
        if not any(grant.model == model for grant in charter.grants):
            # The same answer for a model that does not exist and one this partner has
            # no grant for: a partner learns nothing of models outside its charter.
            raise NotFound(
                f"no model named {model} is served under {charter.ref}",
                hint="the charter's grants name the models you may use",
            )
        resolved = self.models.resolve(
            model, version, uow, follows=partial(charter.follows, model, action)
        )
        access = AccessRequest(
            partner=session.partner,
            charter=session.charter,
            purpose=session.purpose,
            action=action,
            model=model,
            version=resolved,
            at=now,
        )
        if authenticated_here:  # authenticate() found the partner active in this snapshot
            decision = self.decider.engine(uow).decide(access, partner_status="active")
        else:
            decision = self.decider.decide(access, uow)
        if not decision.allowed:
            raise Denied(
                f"the charter does not allow {action.value} on {model} {resolved}",
                reasons=decision.reasons,
            )
        return charter, resolved, decision

    async def predict(
        self, authorization: str | None, model: str, request: PredictRequest
    ) -> _Outcome:
        """The whole pipeline but the audit: inline when it can be, else in a worker thread."""
        store = self.workspace.store
        charged = False
        try:
            # On SQLite one local read, made inline; elsewhere a network round trip, so
            # in a thread.  Either way the rest may then run on the event loop.
            counter = (
                store.state_counter() if store.embedded else await _thread(store.state_counter)
            )
        except StorageUnavailable:  # busy or broken: the thread path waits, or says why
            counter = None
        step: _Outcome | _Plan | None = None
        if counter is not None:
            step, charged = self.predict_cached(counter, authorization, model, request)
        if step is None:
            step = await _thread(
                self.predict_with_token, authorization, model, request, not charged
            )
        if isinstance(step, _Outcome):
            return step
        outcome = await self.run(step)
        if outcome.marks is not None:
            outcome = await _thread(self.keep_marks, step, outcome)
        return outcome

    def keep_marks(self, plan: _Plan, outcome: _Outcome) -> _Outcome:
        """Keep the answer's marked queries, sealed, before it leaves; if they cannot be
        kept the answer does not leave either (a mark nobody can replay protects nothing)."""
        assert outcome.marks is not None
        rows, labels = outcome.marks
        try:
            self.watermarks.record(
                plan.base["actor"], plan.base["charter"], plan.model, plan.version, rows, labels
            )
        except ModelpactError as error:
            return self._refused(plan.base, StorageUnavailable(error.summary))
        return outcome

    async def run(self, plan: _Plan) -> _Outcome:
        """The model's part of ``plan``: in a worker process, or in this one."""
        if self.workers is None:
            if self.models.is_loaded(plan.model, plan.version):
                return self.run_here(plan)
            return await _thread(self.run_here, plan)  # decrypts and loads it first
        try:
            prediction = await self.workers.predict(*plan.model_call, **plan.model_options)
        except ModelpactError as error:
            return self._refused(plan.base, error)
        return self._answered(plan, prediction)

    def run_here(self, plan: _Plan) -> _Outcome:
        """The model's part of ``plan`` in this process."""
        try:
            prediction = self.models.predict(*plan.model_call, **plan.model_options)
        except ModelpactError as error:
            return self._refused(plan.base, error)
        return self._answered(plan, prediction)

    def predict_cached(
        self, counter: int, authorization: str | None, model: str, request: PredictRequest
    ) -> tuple[_Outcome | _Plan | None, bool]:
        """The pipeline reading nothing from the store but ``counter``; for the event loop.

        ``counter``: :meth:`~modelpact.store.Store.state_counter`, read just now.
        Returns ``(None, charged)`` when something it needs is not in memory (a new
        session, a change since the counter moved, a model not loaded yet, a charter
        with a daily quota, whose count is a durable write, or any refusal, which the
        thread path answers and explains); ``charged`` tells whether the request has
        taken its rate slot already.  Everything is looked up before the slot is taken,
        so in practice it never has.
        """
        unit = self.state.cached_only(counter)
        try:
            session = self.sessions.authenticate(_bearer(authorization), unit)
            charter = self.sessions.kept_charter(session)
            if charter is None or charter.limits.daily_quota is not None:
                return None, False
            if any(
                g.model == model and g.output.budget is not None for g in charter.grants
            ):  # a privacy budget is spent durably: the thread path
                return None, False
            self.models.resolve(
                model,
                request.version,
                unit,
                follows=partial(charter.follows, model, Action.PREDICT),
            )
            self.decider.engine(unit)
            self.state.view(unit).protection(session.partner, session.charter, model)
            needs_key = charter.protections.watermark or any(
                g.model == model and g.output.kind is OutputKind.EMBEDDING for g in charter.grants
            )
            if needs_key and self.watermarks.kept(session.partner) is None:
                return None, False  # its keys are read (or made) once, in a thread
        except (CacheMiss, ModelpactError):
            return None, False
        try:
            return self.plan(session, model, request, uow=unit), False
        except CacheMiss:  # something was dropped from the cache since the lookups above
            return None, True

    def predict_with_token(
        self,
        authorization: str | None,
        model: str,
        request: PredictRequest,
        charge_rate: bool = True,
    ) -> _Outcome | _Plan:
        """Authenticate and admit in one worker thread and one read snapshot.

        ``charge_rate``: False when the request has taken its rate slot already.
        """
        with self.workspace.store.unit_of_work(read_only=True) as uow:
            try:
                session = self.sessions.authenticate(_bearer(authorization), uow)
            except (Denied, Expired) as error:  # Unauthenticated included
                return _Outcome(_token_refused(self.workspace, error), error=error)
            return self.plan(session, model, request, uow=uow, charge_rate=charge_rate)

    def predict_blocking(
        self, session: ActiveSession, model: str, request: PredictRequest
    ) -> _Outcome:
        """The pipeline after authentication, from a worker thread (models in the workers,
        if any, else here)."""
        step = self.plan(session, model, request)
        if isinstance(step, _Outcome):
            return step
        if self.workers is None:
            outcome = self.run_here(step)
        else:
            outcome = anyio.from_thread.run(self.run, step)
        return outcome if outcome.marks is None else self.keep_marks(step, outcome)

    def model_facts(self, model: str, version: str) -> tuple[ModelSummary, str]:
        """``(summary, input name)`` of a model version, from a worker thread, without
        decrypting it here when there are workers."""
        if self.workers is None:
            predictor = self.models.predictor(model, version)
            return predictor.summary, predictor.input_names[0]
        facts: tuple[ModelSummary, str] = anyio.from_thread.run(
            self.workers.summary, model, version
        )
        return facts

    @staticmethod
    def _from_loop(
        fn: Callable[[str, str], Coroutine[Any, Any, tuple[str, str]]],
    ) -> Callable[[str, str], tuple[str, str]]:
        def call(model: str, version: str) -> tuple[str, str]:
            result: tuple[str, str] = anyio.from_thread.run(fn, model, version)
            return result

        return call

    def plan(
        self,
        session: ActiveSession,
        model: str,
        request: PredictRequest,
        *,
        uow: UnitOfWork | None = None,
        charge_rate: bool = True,
    ) -> _Outcome | _Plan:
        """The pipeline after authentication up to the model: a refusal, or a plan to run.

        ``uow``: the snapshot :meth:`SessionDesk.authenticate` read the session in, whose
        reads the pipeline shares (the partner is then known active); without it the
        pipeline reads in a snapshot of its own.  ``charge_rate``: False when the
        request has taken its rate slot already.
        """
        now = self.workspace.clock()
        named = valid_names(model, request.version)
        # Every authenticated request takes a slot of the rate window first, refused ones
        # included: a partner cannot fill the audit log with refusals faster than its rate.
        # A name the registry could not hold is refused without putting it in the log.
        try:
            if charge_rate:
                self.meter.check_rate(session, self.sessions.charter(session).limits)
            if not named:
                raise NotFound(f"no model named {quote_untrusted(model[:80])}")
        except ModelpactError as error:
            reason = error.summary if named else "the model or version name is not a valid name"
            entry = AccessEntry(
                time=now,
                actor=session.partner,
                subject=session.token_id,
                charter=session.charter,
                purpose=session.purpose,
                action=Action.PREDICT.value,
                model=model if named else "invalid-name",
                version=(request.version or "served") if named else "invalid-name",
                decision="deny",
                reasons=(reason[:500],),
                rows=len(request.rows),
            )
            return _Outcome(entry, error=error)
        base: dict[str, Any] = {
            "time": now,
            "actor": session.partner,
            "subject": session.token_id,
            "charter": session.charter,
            "purpose": session.purpose,
            "action": Action.PREDICT.value,
            "model": model,
            "version": request.version or "served",
            "rows": len(request.rows),
        }
        try:
            if uow is None:
                with self.workspace.store.unit_of_work(read_only=True) as own:
                    charter, version, decision = self.admit(
                        session, model, request.version, now, own, authenticated_here=False
                    )
            else:
                charter, version, decision = self.admit(
                    session, model, request.version, now, uow, authenticated_here=True
                )
            base["version"] = version
            policy = self._grant_output(charter, model, version)
            reasons = decision.reasons or ("allowed",)
            response = self.response_in_force(session, model, uow)
            if in_force(response, Step.THROTTLE):
                rate = throttled_rate(charter.limits.requests_per_minute)
                self.meter.check_throttle(session, model, rate)
            if in_force(response, Step.HARDEN) and hardened(policy) != policy:
                policy = hardened(policy)
                reasons = (*reasons, "output hardened to label only by the extraction monitor")
            self.meter.spend_privacy(session, model, policy, len(request.rows))
            self.meter.count(session, charter.limits, len(request.rows))
        except ModelpactError as error:
            return self._refused(base, error)
        return _Plan(
            base=base,
            reasons=reasons,
            model=model,
            version=version,
            rows=request.rows,
            policy=policy,
            max_rows=charter.limits.max_batch_rows,
            at=now,
            watch=charter.protections.extraction_monitor,
            hook=charter.incident_response,
            mark=(
                (self.watermarks.keys(session.partner).prf.secret(), f"{model}@{version}")
                if charter.protections.watermark
                else None
            ),
            turn=(
                (self.watermarks.keys(session.partner).prf.secret(), f"{model}@{version}")
                if policy.kind is OutputKind.EMBEDDING
                else None
            ),
        )

    def response_in_force(
        self, session: ActiveSession, model: str, uow: UnitOfWork | None
    ) -> str | None:
        """The extraction monitor's response in force for this partner, charter and model."""
        if uow is None:
            with self.workspace.store.unit_of_work(read_only=True) as own:
                return self.response_in_force(session, model, own)
        found = self.state.view(uow).protection(session.partner, session.charter, model)
        return None if found is None else found.response

    @staticmethod
    def _refused(base: dict[str, Any], error: ModelpactError) -> _Outcome:
        reasons = getattr(error, "reasons", ()) or (error.summary[:500],)
        entry = AccessEntry(**base, decision="deny", reasons=tuple(reasons))
        return _Outcome(entry, error=error)

    def _answered(self, plan: _Plan, prediction: Prediction) -> _Outcome:
        if plan.watch is not None:
            observation = Observation(
                partner=plan.base["actor"],
                charter=plan.base["charter"],
                model=plan.model,
                version=plan.version,
                rows=plan.rows,
                labels=[watched_label(output) for output in prediction.outputs],
                at=plan.at,
                settings=plan.watch,
                incident_response=plan.hook,
                margins=prediction.margins,
            )
            if not self.monitor.submit(observation):  # fail closed: never answer unwatched
                return self._refused(
                    plan.base,
                    StorageUnavailable(
                        "the extraction monitor is behind", hint="retry in a few seconds"
                    ),
                )
        entry = AccessEntry(
            **plan.base,
            decision="allow",
            reasons=plan.reasons,
            input_digest=prediction.input_digest,
            output_digest=prediction.output_digest,
        )
        placeholder = Receipt(index=0, leaf_hash=_b64(b"\0"), log_origin=self.log.origin)
        response = PredictResponse(
            model=plan.model, version=plan.version, outputs=prediction.outputs, receipt=placeholder
        )
        marks = None
        if prediction.marked:
            marks = (
                [plan.rows[i] for i in prediction.marked],
                [watched_label(prediction.outputs[i]) for i in prediction.marked],
            )
        return _Outcome(entry, response=response, marks=marks)

    async def audit(self, entry: AuditEntry) -> Receipt:
        """Make ``entry`` durable (raises AuditUnavailable → 503 when it cannot be)."""
        receipt = await self.log.append_async(entry)
        self.metrics.audited.labels(entry.type, getattr(entry, "decision", "none")).inc()
        return Receipt(
            index=receipt.index, leaf_hash=_b64(receipt.leaf_hash), log_origin=self.log.origin
        )


async def _thread(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args)


def _token_refused(workspace: Workspace, error: ModelpactError) -> SessionEntry:
    """The audit entry of a bearer token refused (who sent it is not known)."""
    return SessionEntry(
        time=workspace.clock(),
        action="authenticate",
        actor="unknown",
        subject="bearer-token",
        decision="deny",
        reasons=(error.summary[:500],),
    )


def _session_entry(
    workspace: Workspace, session: ActiveSession, action: Literal["close", "attest"], *reasons: str
) -> SessionEntry:
    """An allowed ``action`` on an authenticated ``session``, for the audit log."""
    return SessionEntry(
        time=workspace.clock(),
        action=action,
        actor=session.partner,
        subject=session.token_id,
        charter=session.charter,
        purpose=session.purpose,
        decision="allow",
        reasons=reasons,
    )


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated(
            "no session token", hint="open a session and send it as a Bearer token"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <session token>'")
    return token.strip()


async def current_session(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> ActiveSession:
    """The request's session; every refusal is audited before the 401 or 403 goes out."""
    gw: Gateway = request.app.state.gateway
    try:
        token = _bearer(authorization)
        session = await _thread(gw.sessions.authenticate, token)
        request.state.session = session  # so a malformed body can be audited (on_invalid)
        return session
    except (Denied, Expired) as error:  # Unauthenticated included
        await gw.audit(_token_refused(gw.workspace, error))
        raise


Session = Annotated[ActiveSession, Depends(current_session)]


def create_app(
    workspace: Workspace,
    *,
    audience: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_encrypted_body: int = DEFAULT_MAX_ENCRYPTED_BODY,
    gateway: Gateway | None = None,
    workers: WorkerPool | None = None,
    notifier: Notifier | None = None,
    sweeper: Sweeper | None = None,
) -> FastAPI:
    """The gateway over ``workspace``.  The app owns its :class:`Gateway` unless one is given;
    ``workers``: run models in these processes, ``notifier``: send incident webhooks
    (see :class:`Gateway`); ``sweeper``: the expiry sweep, run in the background from
    startup to shutdown (its warning window is the dashboard's)."""
    gw = gateway or Gateway(workspace, audience=audience, workers=workers, notifier=notifier)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if sweeper is not None:
            sweeper.start()
        try:
            yield
        finally:
            if sweeper is not None:
                await _thread(sweeper.close)
            if gateway is None:
                await gw.aclose()

    app = FastAPI(
        title="modelpact gateway",
        version="1",
        lifespan=lifespan,
        responses=_PROBLEMS,
    )
    install(app)
    app.state.gateway = gw

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        """A body that does not parse or match the schema: 422, and on the record when it
        came with a valid session (prediction routes read the session before the body)."""
        assert isinstance(exc, RequestValidationError)
        session: ActiveSession | None = getattr(request.state, "session", None)
        model = request.path_params.get("model") or request.path_params.get("name")
        if session is None and isinstance(model, str):
            # Unparseable JSON fails before dependencies run: authenticate here, so the
            # answer is 401 without a session and the refusal is recorded either way.
            try:
                session = await current_session(request, request.headers.get("authorization"))
            except (Denied, Expired) as error:
                return problem_response(error)
        if session is not None and isinstance(model, str):
            entry = AccessEntry(
                time=workspace.clock(),
                actor=session.partner,
                subject=session.token_id,
                charter=session.charter,
                purpose=session.purpose,
                action=(
                    Action.PREDICT_ENCRYPTED
                    if request.url.path.endswith("/predict-encrypted")
                    else Action.PREDICT
                ).value,
                model=model if _SLUG.fullmatch(model) else "invalid-name",
                version="unparsed",
                decision="deny",
                reasons=(f"malformed request: {validation_detail(exc)}",),
            )
            await gw.audit(entry)
        return invalid_request(exc)

    app.add_exception_handler(RequestValidationError, on_invalid)

    # -- sessions ---------------------------------------------------------------------------

    @app.post("/v1/sessions/challenge", operation_id="createChallenge", tags=["sessions"])
    async def create_challenge(body: ChallengeRequest) -> Challenge:
        return await _thread(gw.sessions.challenge, body.partner)

    @app.post("/v1/sessions", operation_id="openSession", status_code=201, tags=["sessions"])
    async def open_session(body: SessionRequest) -> SessionGrant:
        try:
            grant = await _thread(gw.sessions.open, body)
        except ModelpactError as error:
            await gw.audit(
                SessionEntry(
                    time=workspace.clock(),
                    action="open",
                    actor=body.partner,
                    subject=f"charter {body.charter}",
                    charter=body.charter,
                    purpose=body.purpose,
                    decision="deny",
                    reasons=tuple(getattr(error, "reasons", ()) or (error.summary[:500],)),
                )
            )
            raise
        await gw.audit(
            SessionEntry(
                time=workspace.clock(),
                action="open",
                actor=grant.partner,
                subject=token_id(grant.token),
                charter=grant.charter,
                purpose=grant.purpose,
                decision="allow",
                reasons=(f"charter {grant.charter}@v{grant.charter_version}",),
            )
        )
        return grant

    @app.delete(
        "/v1/sessions/current", operation_id="closeSession", status_code=204, tags=["sessions"]
    )
    async def close_session(
        session: Session, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        await _thread(gw.sessions.revoke, _bearer(authorization))
        gw.contexts.drop(session.token_id)
        await gw.audit(_session_entry(workspace, session, "close"))
        return Response(status_code=204)

    # -- attestation ------------------------------------------------------------------------

    @app.get(
        "/v1/attestation",
        operation_id="getAttestation",
        tags=["sessions"],
        response_model=SignedAttestation,
    )
    async def get_attestation(
        session: Session,
        nonce: Annotated[str, Query(pattern=NONCE_PATTERN)],
    ) -> SignedAttestation:
        """What serves this session, signed by the workspace key, for the partner's nonce.

        The built-in provider is a *software* measurement: see docs/attestation.md.
        """
        signed = await _thread(gw.attestor.attest, session, nonce)
        reason = f"attestation {gw.attestor.digest(signed)}"
        await gw.audit(_session_entry(workspace, session, "attest", reason))
        return signed

    # -- predictions ------------------------------------------------------------------------

    @app.post(
        "/v1/models/{model}/predict",
        operation_id="predict",
        tags=["predictions"],
        response_model=PredictResponse,
    )
    async def predict(
        model: str,
        body: PredictRequest,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Any:
        outcome = await gw.predict(authorization, model, body)
        receipt = await gw.audit(outcome.entry)
        if outcome.error is not None:
            return problem_response(outcome.error)
        assert outcome.response is not None
        return outcome.response.model_copy(update={"receipt": receipt})

    @app.get(
        "/v1/privacy-budget",
        operation_id="getPrivacyBudget",
        tags=["predictions"],
        response_model=PrivacyBudget,
    )
    async def get_privacy_budget(
        session: Session, model: Annotated[str, Query(pattern=_SLUG.pattern)]
    ) -> PrivacyBudget:
        """What is left of this session's privacy budget on a noised grant of ``model``."""

        def read() -> PrivacyBudget:
            charter = gw.sessions.charter(session)
            grant = next(
                (
                    g
                    for g in charter.grants
                    if g.model == model and g.output.kind is OutputKind.NOISED_SCORES
                ),
                None,
            )
            if grant is None or grant.output.epsilon is None:
                raise NotFound(f"no noised_scores grant of {model} under {charter.ref}")
            left = gw.meter.privacy_left(session.partner, session.charter, model, grant.output)
            budget = grant.output.budget
            return PrivacyBudget(
                charter=session.charter,
                model=model,
                epsilon=grant.output.epsilon,
                budget=budget,
                spent=0.0 if budget is None else round(budget - left, 6),
                left=None if budget is None else left,
            )

        return await _thread(read)

    # -- the log ----------------------------------------------------------------------------

    @app.get("/v1/log/checkpoint", operation_id="getCheckpoint", tags=["log"])
    async def get_checkpoint(
        min_size: Annotated[int, Query(ge=0)] = 0,
    ) -> CheckpointDocument:
        def latest() -> str:
            with workspace.store.unit_of_work(read_only=True) as uow:
                record = uow.audit.latest_checkpoint()
            if record is None or record.size < min_size:
                record = gw.log.checkpoint()
            if record.size < min_size:
                raise NotFound(f"the log has fewer than {min_size} entries")
            return record.note

        return CheckpointDocument(note=await _thread(latest))

    @app.get("/v1/log/inclusion", operation_id="proveInclusion", tags=["log"])
    async def prove_inclusion(
        session: Session,
        index: Annotated[int, Query(ge=0)],
        size: Annotated[int, Query(ge=1)],
    ) -> InclusionProof:
        def prove() -> InclusionProof:
            if index >= size:
                raise InvalidInput(f"entry {index} is not in a tree of {size} entries")
            with workspace.store.unit_of_work(read_only=True) as uow:
                try:
                    record = uow.audit.entry(index)
                except NotFound:
                    record = None
                if record is None or not _belongs_to(record.entry, session.partner):
                    raise NotFound(f"no entry of yours at index {index}")
                if uow.audit.size() < size:
                    raise InvalidInput(f"the log has fewer than {size} entries")
            _, proof = gw.log.prove_inclusion(index, size)
            return InclusionProof(
                index=index,
                size=size,
                leaf_hash=_b64(record.leaf_hash),
                proof=[_b64(h) for h in proof],
            )

        return await _thread(prove)

    @app.get("/v1/log/consistency", operation_id="proveConsistency", tags=["log"])
    async def prove_consistency(
        session: Session,
        old: Annotated[int, Query(ge=1)],
        new: Annotated[int, Query(ge=1)],
    ) -> ConsistencyProof:
        def prove() -> ConsistencyProof:
            if old > new:
                raise InvalidInput(f"old size {old} is larger than new size {new}")
            with workspace.store.unit_of_work(read_only=True) as uow:
                if uow.audit.size() < new:
                    raise InvalidInput(f"the log has fewer than {new} entries")
            proof = gw.log.prove_consistency(old, new)
            return ConsistencyProof(old_size=old, new_size=new, proof=[_b64(h) for h in proof])

        return await _thread(prove)

    # -- health -----------------------------------------------------------------------------

    @app.get("/healthz", operation_id="health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", operation_id="ready", tags=["health"])
    async def ready() -> JSONResponse:
        def check() -> None:
            with workspace.store.unit_of_work(read_only=True) as uow:
                uow.audit.size()

        try:
            await _thread(check)
            if not gw.log.healthy:
                raise InvalidInput("the audit log has stopped")
        except ModelpactError as error:
            body = {"status": "unavailable", "detail": error.diagnostics()}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready"})

    from modelpact.gateway.encrypted import install_encrypted  # these import this module
    from modelpact.gateway.keys import router as keys_router
    from modelpact.gateway.v2 import install_v2

    app.include_router(keys_router)
    install_v2(app, gw)
    install_encrypted(app, gw)
    install_dashboard(app, workspace, sessions=gw.sessions, audit=gw.audit,
                      expiring_days=None if sweeper is None else sweeper.warn_days)  # fmt: skip
    app.add_route("/metrics", gw.metrics.endpoint, include_in_schema=False)
    app.add_middleware(
        BodyLimit,
        max_bytes=max_body,
        wider=(("/predict-encrypted", max_encrypted_body),),
    )
    app.add_middleware(MetricsMiddleware, metrics=gw.metrics)
    return app


def _belongs_to(entry: bytes, partner: str) -> bool:
    """Whether a stored entry was made by ``partner`` (its ``actor``)."""
    try:
        return decode_entry(entry).actor == partner
    except ModelpactError:
        return False
