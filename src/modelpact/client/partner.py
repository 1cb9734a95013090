"""The partner SDK: open sessions, predict, and check every receipt against the signed log.

``PartnerClient`` (blocking) and ``AsyncPartnerClient`` (asyncio) speak the
same protocol over httpx; pass ``transport=`` to run against an in-process app
in tests.  Sessions are opened on first use and renewed shortly before they
expire, or once when the gateway says a session ended.  Only requests that
change nothing are retried on a dropped connection or a 503 (challenges,
checkpoints, proofs); a prediction is never retried, because it may have
counted against the quota.

With the owner's public key, every session's attestation is checked as it opens,
before any data goes out (:mod:`modelpact.client.attestation`; ``countersigned=``
adds the charter's digest and pins), and ``verify_receipts`` fetches a signed checkpoint
covering the receipts, has the witness check it is consistent with the last
one this partner saw (kept in ``witness_path``), and verifies each receipt's
inclusion proof against it.  ``AsyncPartnerClient.verify_in_background`` does that for
every prediction's receipt, in batches, while the partner works; what it finds
wrong is raised by the next call.

After an owner-key handover the client follows the handovers from the charter's key,
only ever forward, and keeps them beside the witness state, so that a retired key stays
retired across restarts (:mod:`modelpact.client.handover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from modelpact.audit.checkpoint import Checkpoint
from modelpact.audit.handover import KeyChain
from modelpact.charter import AttestationPins, Charter
from modelpact.client.attestation import DEFAULT_MAX_AGE, check_attestation, new_nonce
from modelpact.client.handover import (
    follow_owner,
    load_owner_chain,
    observe_across,
    origin_of,
    owner_chain_path,
    require_extension,
    save_owner_chain,
    trivial_chain,
    witness_needs_proof,
)
from modelpact.client.protocol import (
    Identity,
    Prediction,
    as_rows,
    check_inclusion,
    error_from,
    renew_due,
    unb64_list,
)
from modelpact.crypto import SigningKey, VerifyKey
from modelpact.errors import (
    AttestationFailed,
    ContextNeeded,
    InvalidInput,
    ModelpactError,
    ServerError,
    SignatureInvalid,
    Unauthenticated,
)
from modelpact.wire import (
    CIPHERTEXTS_MEDIA_TYPE,
    AttestationDocument,
    Challenge,
    ChallengeRequest,
    CheckpointDocument,
    ConsistencyProof,
    EncryptedPredictResponse,
    EncryptionContext,
    HandoverChain,
    InclusionProof,
    PartnerKeyRotated,
    PredictRequest,
    PredictResponse,
    PrivacyBudget,
    Receipt,
    SessionGrant,
    SignedAttestation,
)

if TYPE_CHECKING:  # numpy and TenSEAL come with the `encrypted` extra: imported on use
    from modelpact.client.encrypted import EncryptedPrediction, Encryption, Keys, Packing

__all__ = ["AsyncPartnerClient", "PartnerClient", "Prediction"]

_RETRIED = (httpx.TransportError,)
_BACKOFF = 0.2  # seconds, doubled per attempt, with jitter


def _verify_option(verify: ssl.SSLContext | str | Path | bool) -> ssl.SSLContext | bool:
    if isinstance(verify, str | Path):
        return ssl.create_default_context(cafile=str(verify))
    return verify


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        partner: str,
        key: SigningKey,
        charter: str,
        purpose: str,
        owner_key: VerifyKey | None = None,
        countersigned: Charter | None = None,
        attest: bool | None = None,
        log_origin: str | None = None,
        witness_path: Path | None = None,
        verify: ssl.SSLContext | str | Path | bool = True,
        cert: tuple[str, str] | None = None,
        transport: Any = None,
        timeout: float = 30.0,
        retries: int = 3,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``verify``: a CA file (the owner's ``tls/ca.pem``), an SSL context, or ``True`` for
        the system's CAs; ``cert``: a client certificate and key for mutual TLS;
        ``transport``: an httpx transport (tests pass the app in process);
        ``countersigned``: the charter this partner countersigned — each session's attestation
        is then checked against it and its pins, and ``owner_key`` defaults to its owner's;
        ``attest``: check every session's attestation (:meth:`attest`) as soon as it opens,
        before any data is sent — the default whenever the owner's key is known;
        ``witness_path``: the witness state; the owner keys followed since ``owner_key`` are
        kept beside it (``<witness_path>.owner-chain.json``) and verified again here."""
        if countersigned is not None:
            if countersigned.charter != charter:
                raise InvalidInput(
                    f"the countersigned charter is {countersigned.charter}, not {charter}"
                )
            owner_key = owner_key or countersigned.owner.verify_key
        self._clock = clock or (lambda: datetime.now(UTC))
        self._identity = Identity(partner=partner, key=key, charter=charter, purpose=purpose)
        self._owner = owner_key
        self._chain: KeyChain | None = None  # the owner keys followed from owner_key
        self._countersigned = countersigned
        self._attest = owner_key is not None if attest is None else attest
        if self._attest and owner_key is None:
            raise InvalidInput(
                "checking attestations needs the owner's public key",
                hint="pass owner_key= or countersigned=",
            )
        self._origin = log_origin
        self._witness_path = witness_path
        if owner_key is not None and witness_path is not None:
            self._chain = load_owner_chain(owner_chain_path(witness_path), owner_key)
            if self._chain is not None and log_origin not in (None, self._chain.origin):
                raise InvalidInput(
                    f"the owner keys kept beside the witness state {witness_path} are for "
                    f"the log {self._chain.origin}, not {log_origin}",
                    hint="one witness state (and its owner-key chain) per log",
                )
        self._retries = max(0, retries)
        self._grant: SessionGrant | None = None
        self._keys: Encryption | None = None  # CKKS key sets, made on first encrypted use
        self._http = self._make_http(
            base_url=base_url,
            verify=_verify_option(verify),
            cert=cert,
            transport=transport,
            timeout=timeout,
        )

    def _make_http(self, **options: Any) -> Any:
        raise NotImplementedError

    def _attested(
        self,
        response: httpx.Response,
        nonce: str,
        countersigned: Charter | None,
        pins: AttestationPins | None,
        max_age: timedelta,
    ) -> AttestationDocument:
        owner = self.owner_key_in_force
        assert owner is not None
        return check_attestation(
            self._parse(response, SignedAttestation),
            nonce=nonce,
            owner_key=owner,
            charter_id=self._identity.charter,
            now=self._clock(),
            countersigned=countersigned,
            pins=pins,
            max_age=max_age,
        )

    def _need_owner(self) -> None:
        if self._owner is None:
            raise InvalidInput(
                "checking an attestation needs the owner's public key",
                hint="pass owner_key= (the charter's owner.key)",
            )

    @property
    def session(self) -> SessionGrant | None:
        return self._grant

    def _headers(self) -> dict[str, str]:
        assert self._grant is not None
        return {"Authorization": f"Bearer {self._grant.token}"}

    @property
    def owner_key_in_force(self) -> VerifyKey | None:
        """The owner key that signs now: ``owner_key``, or the key its handovers lead to."""
        return self._owner if self._chain is None else self._chain.current

    def _chain_for(self, origin: str) -> KeyChain:
        """The owner keys this client knows for the log ``origin``.

        Once it has followed a handover, the retired keys stay retired: a checkpoint of
        another log (which those handovers do not cover) is refused rather than checked
        with the charter's key alone."""
        assert self._owner is not None
        chain = self._chain
        if chain is None or (chain.origin != origin and len(chain.keys) == 1):
            return trivial_chain(self._owner, origin)
        if chain.origin != origin:
            raise InvalidInput(
                f"this client follows the owner keys of the log {chain.origin}, not {origin}",
                hint="the owner key has changed since the charter; a partner client checks "
                "one log (pass log_origin=)",
            )
        return chain

    def _adopt(self, response: httpx.Response, origin: str | None) -> bool:
        """Follow the handovers the gateway sent from the trusted key; True when that
        moved the key in force on.  A chain that does not extend the one known raises
        :class:`~modelpact.errors.LogInconsistent`: never back to a retired key."""
        assert self._owner is not None
        document: HandoverChain = self._parse(response, HandoverChain)
        known_origin = self._chain.origin if self._chain is not None else None
        origin = origin or self._origin or known_origin or origin_of(document.checkpoint)
        known = self._chain_for(origin)
        fetched = follow_owner(self._owner, document, origin)
        require_extension(known, fetched, document.checkpoint)
        if fetched.current == known.current:
            return False
        if self._witness_path is not None:  # kept first: a restart must not forget it
            save_owner_chain(owner_chain_path(self._witness_path), origin, document)
        self._chain = fetched
        return True

    def _log_for(self, receipts: list[Receipt]) -> tuple[VerifyKey, str]:
        if self._owner is None:
            raise InvalidInput(
                "verifying receipts needs the owner's public key",
                hint="pass owner_key= (the key in the charter's owner section)",
            )
        origins = {r.log_origin for r in receipts}
        origin = self._origin or (origins.pop() if len(origins) == 1 else None)
        if origin is None and not receipts:
            raise InvalidInput("which log? pass log_origin= (shown in every receipt)")
        if origin is None or any(r.log_origin != origin for r in receipts):
            raise InvalidInput("receipts from more than one log; verify each log's separately")
        return self._owner, origin

    @staticmethod
    def _parse(response: httpx.Response, model: type[Any]) -> Any:
        if response.status_code >= 400:
            raise error_from(response)
        try:
            return model.model_validate_json(response.content)
        except ValueError:
            raise ServerError(f"the gateway's reply is not a valid {model.__name__}") from None

    def _encryption(self) -> Encryption:
        from modelpact.client.encrypted import Encryption  # numpy and TenSEAL: the extra

        if self._keys is None:
            self._keys = Encryption()
        return self._keys

    def _encrypted_plan(
        self, rows: Any, packing: str, chunk: int | None
    ) -> tuple[Keys, list[Any], Packing]:
        """The key set for these rows and the rows cut into requests."""
        import numpy as np

        from modelpact.client.encrypted import Encryption

        if packing not in ("batch", "rows"):
            raise InvalidInput(f"packing must be 'batch' or 'rows', not {packing[:20]!r}")
        checked: Packing = "rows" if packing == "rows" else "batch"
        table = as_rows(rows)
        if any(len(row) != len(table[0]) for row in table):
            raise InvalidInput("rows must all have the same number of features")
        data = np.asarray(table, dtype=np.float64)
        keys = self._encryption().keys(checked, data.shape[1])
        limit = chunk or (self._grant.max_batch_rows if self._grant else None)
        size = Encryption.chunk_size(keys, checked, limit)
        return keys, [data[i : i + size] for i in range(0, len(data), size)], checked

    @staticmethod
    def _encrypted_request(
        keys: Keys, packing: Packing, part: Any, version: str | None
    ) -> tuple[bytes, dict[str, str | int]]:
        from modelpact.client.encrypted import Encryption

        params: dict[str, str | int] = {
            "packing": packing,
            "rows": len(part),
            "context": keys.digest,
        }
        if version is not None:
            params["version"] = version
        return Encryption.body(keys, packing, part), params

    def _encrypted_post(
        self, model: str, body: bytes, params: dict[str, str | int]
    ) -> tuple[str, dict[str, Any]]:
        """URL and options of one encrypted request."""
        headers = self._headers() | {"Content-Type": CIPHERTEXTS_MEDIA_TYPE}
        options = {"params": params, "content": body, "headers": headers}
        return f"/v1/models/{model}/predict-encrypted", options

    def _context_put(self, keys: Keys) -> dict[str, Any]:
        """Options of the context upload."""
        headers = self._headers() | {"Content-Type": "application/octet-stream"}
        return {"content": keys.public, "headers": headers}

    def _held(self, response: httpx.Response, keys: Keys, token: str) -> None:
        """Check the gateway holds the context just uploaded in the session of ``token``."""
        held = self._parse(response, EncryptionContext)
        if held.digest != keys.digest:
            raise ServerError("the gateway holds another encryption context than the one sent")
        keys.uploaded.add(token)

    @staticmethod
    def _again(response: httpx.Response) -> str | None:
        """Why an encrypted request may be sent once more: ``session`` (it ended) or
        ``context`` (the gateway dropped it); None: it may not."""
        if response.status_code == 401:
            return "session"
        if response.status_code == 409:
            error = error_from(response)
            if not isinstance(error, ContextNeeded):
                raise error
            return "context"
        return None

    @staticmethod
    def _encrypted_result(
        model: str, packing: Packing, answers: list[EncryptedPredictResponse], scores: list[Any]
    ) -> EncryptedPrediction:
        import numpy as np

        from modelpact.client.encrypted import EncryptedPrediction, link_outputs

        last = answers[-1]
        matrix = np.vstack(scores)
        return EncryptedPrediction(
            model=model,
            version=last.version,
            packing=packing,
            outputs=link_outputs(last.link, last.labels, matrix),
            scores=matrix,
            receipts=[a.receipt for a in answers],
        )

    @staticmethod
    def _delay(attempt: int) -> float:
        return float(_BACKOFF * (2**attempt) * (0.5 + random.random()))  # noqa: S311 - jitter


class PartnerClient(_Base):
    """A blocking client for one partner, charter and purpose."""

    _http: httpx.Client

    def _make_http(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _safe(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request that changes nothing: retried on a dropped connection or a 503."""
        for attempt in range(self._retries + 1):
            try:
                response = self._http.request(method, url, **kwargs)
            except _RETRIED as exc:
                if attempt == self._retries:
                    raise ServerError(f"cannot reach the gateway: {exc}") from None
            else:
                if response.status_code != 503 or attempt == self._retries:
                    return response
            time.sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    def open_session(self) -> SessionGrant:
        """Prove possession of the partner key and get a session token."""
        body = ChallengeRequest(partner=self._identity.partner).model_dump(mode="json")
        challenge = self._parse(self._safe("POST", "/v1/sessions/challenge", json=body), Challenge)
        request = self._identity.session_request(challenge, self._clock())
        try:
            response = self._http.post("/v1/sessions", json=request.model_dump(mode="json"))
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach the gateway: {exc}") from None
        self._grant = self._parse(response, SessionGrant)
        if self._attest:
            try:
                self._attest_now(self._countersigned, None, DEFAULT_MAX_AGE)
            except BaseException:
                self._grant = None  # no data goes out on a session that did not attest
                raise
        return self._grant

    def close_session(self) -> None:
        if self._grant is None:
            return
        response = self._http.delete("/v1/sessions/current", headers=self._headers())
        self._grant = None
        if response.status_code >= 400 and response.status_code != 401:
            raise error_from(response)

    def rotate_key(self, new_key: SigningKey) -> PartnerKeyRotated:
        """Enrol ``new_key`` at the gateway, proving the current key with it.

        The gateway revokes this partner's open sessions; this client signs with
        ``new_key`` from here on.  Keep the old key until this returns: if the answer is
        lost, the gateway may hold either key (try a session with each).
        """
        body = ChallengeRequest(partner=self._identity.partner).model_dump(mode="json")
        challenge = self._parse(self._safe("POST", "/v1/sessions/challenge", json=body), Challenge)
        request = self._identity.rotation_request(challenge, new_key, self._clock())
        try:
            response = self._http.post("/v1/partner/key", json=request.model_dump(mode="json"))
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach the gateway: {exc}") from None
        result: PartnerKeyRotated = self._parse(response, PartnerKeyRotated)
        self._identity = self._identity.with_key(new_key)
        self._grant = None
        return result

    def predict(self, model: str, rows: Any, *, version: str | None = None) -> Prediction:
        """Score ``rows`` (numpy array, pandas frame or lists) with ``model``."""
        body = PredictRequest(rows=as_rows(rows), version=version).model_dump(mode="json")
        for attempt in range(2):
            if renew_due(self._grant, self._clock()):
                self.open_session()
            try:
                response = self._http.post(
                    f"/v1/models/{model}/predict", json=body, headers=self._headers()
                )
            except httpx.TransportError as exc:
                raise ServerError(f"cannot reach the gateway: {exc}") from None
            if response.status_code == 401 and attempt == 0:
                self._grant = None  # the session ended (expired, revoked): open one, once
                continue
            return Prediction.from_wire(self._parse(response, PredictResponse))
        raise Unauthenticated("the gateway refused a fresh session")

    def predict_encrypted(
        self,
        model: str,
        rows: Any,
        *,
        packing: str = "batch",
        version: str | None = None,
        chunk: int | None = None,
    ) -> EncryptedPrediction:
        """Score ``rows`` with ``model`` without the gateway seeing them or the scores.

        ``packing``: ``batch`` (one ciphertext per feature holding thousands of rows: the
        throughput mode) or ``rows`` (one ciphertext per row: the latency mode).  The rows
        go in requests of at most ``chunk`` rows (default: the countersigned charter's
        ``max_batch_rows``, within what one request carries); all of them use the first
        request's model version.
        """
        if renew_due(self._grant, self._clock()):
            self.open_session()  # its grant says how many rows a request may carry
        keys, parts, checked = self._encrypted_plan(rows, packing, chunk)
        answers: list[EncryptedPredictResponse] = []
        scores: list[Any] = []
        for part in parts:
            body, params = self._encrypted_request(keys, checked, part, version)
            answer = self._post_encrypted(model, keys, body, params)
            scores.append(self._encryption().read(keys, checked, part, answer))
            answers.append(answer)
            version = answer.version
        return self._encrypted_result(model, checked, answers, scores)

    def _post_encrypted(
        self, model: str, keys: Keys, body: bytes, params: dict[str, str | int]
    ) -> EncryptedPredictResponse:
        """One encrypted request: the session (re)opened and the context uploaded as needed."""
        for attempt in range(3):
            if renew_due(self._grant, self._clock()):
                self.open_session()
            assert self._grant is not None
            token = self._grant.token
            if token not in keys.uploaded:
                response = self._safe("PUT", "/v1/encryption/context", **self._context_put(keys))
                self._held(response, keys, token)
            url, options = self._encrypted_post(model, body, params)
            try:
                response = self._http.post(url, **options)
            except httpx.TransportError as exc:
                raise ServerError(f"cannot reach the gateway: {exc}") from None
            why = self._again(response) if attempt < 2 else None
            if why == "session":
                self._grant = None  # the session ended: open one
                continue
            if why == "context":
                keys.uploaded.discard(token)  # the gateway dropped it: upload again
                continue
            answer: EncryptedPredictResponse = self._parse(response, EncryptedPredictResponse)
            return answer
        raise ServerError("the gateway kept refusing the session or its encryption context")

    def dashboard_link(self) -> str:
        """A one-time link that signs this partner in to the gateway's dashboard (its own
        page only), for a fresh session: the key proves who it is."""
        if renew_due(self._grant, self._clock()):
            self.open_session()
        response = self._http.post("/dashboard/link", headers=self._headers())
        if response.status_code != 200:
            raise ServerError(f"the gateway gave no dashboard link (HTTP {response.status_code})")
        path = response.json().get("path", "")
        if not isinstance(path, str) or not path.startswith("/dashboard/signin?link="):
            raise ServerError("the gateway's dashboard link is malformed")
        return str(self._http.base_url).rstrip("/") + path

    def privacy_budget(self, model: str) -> PrivacyBudget:
        """What is left of this partner's privacy budget on a noised grant of ``model``."""
        if renew_due(self._grant, self._clock()):
            self.open_session()
        response = self._safe(
            "GET", "/v1/privacy-budget", params={"model": model}, headers=self._headers()
        )
        return self._parse(response, PrivacyBudget)  # type: ignore[no-any-return]

    def attest(
        self,
        *,
        countersigned: Charter | None = None,
        pins: AttestationPins | None = None,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> AttestationDocument:
        """Fetch the gateway's attestation for a fresh nonce and check it (see
        :func:`~modelpact.client.attestation.check_attestation`); call it before sending data.

        Raises :class:`~modelpact.errors.AttestationFailed` on any mismatch.
        """
        self._need_owner()
        if renew_due(self._grant, self._clock()):
            self.open_session()
        return self._attest_now(countersigned, pins, max_age)

    def _attest_now(
        self, countersigned: Charter | None, pins: AttestationPins | None, max_age: timedelta
    ) -> AttestationDocument:
        self._need_owner()
        nonce = new_nonce()
        response = self._safe(
            "GET", "/v1/attestation", params={"nonce": nonce}, headers=self._headers()
        )
        try:
            return self._attested(response, nonce, countersigned, pins, max_age)
        except AttestationFailed:  # signed by a key the owner handed over to?
            if not self._adopt(self._safe("GET", "/v1/log/handovers"), None):
                raise
        return self._attested(response, nonce, countersigned, pins, max_age)

    def checkpoint(self, *, min_size: int = 0, origin: str | None = None) -> Checkpoint:
        """The log's latest signed checkpoint, verified, and checked by the witness."""
        owner, log_origin = self._log_for([]) if origin is None else (self._owner, origin)
        assert owner is not None
        params = {"min_size": min_size}
        document = self._parse(
            self._safe("GET", "/v1/log/checkpoint", params=params), CheckpointDocument
        )
        try:
            checkpoint = self._chain_for(log_origin).open_checkpoint(document.note)
        except SignatureInvalid:  # signed by a key handed over to since? follow the handovers
            if not self._adopt(self._safe("GET", "/v1/log/handovers"), log_origin):
                raise
            checkpoint = self._chain_for(log_origin).open_checkpoint(document.note)
        if self._witness_path is not None:
            chain = self._chain_for(log_origin)
            start = witness_needs_proof(self._witness_path, chain, checkpoint)
            proof = None
            if start is not None:
                proof = unb64_list(self._consistency(start, checkpoint.size).proof)
            observe_across(self._witness_path, chain, document.note, checkpoint, proof)
        return checkpoint

    def _consistency(self, old: int, new: int) -> ConsistencyProof:
        if renew_due(self._grant, self._clock()):
            self.open_session()
        response = self._safe(
            "GET",
            "/v1/log/consistency",
            params={"old": old, "new": new},
            headers=self._headers(),
        )
        return self._parse(response, ConsistencyProof)  # type: ignore[no-any-return]

    def verify_receipts(self, receipts: Iterable[Receipt]) -> Checkpoint:
        """Check every receipt is in the log the owner signed; return the checkpoint used."""
        batch = list(receipts)
        if not batch:
            raise InvalidInput("no receipts to verify")
        _, origin = self._log_for(batch)
        checkpoint = self.checkpoint(min_size=max(r.index for r in batch) + 1, origin=origin)
        for receipt in batch:
            if renew_due(self._grant, self._clock()):
                self.open_session()
            response = self._safe(
                "GET",
                "/v1/log/inclusion",
                params={"index": receipt.index, "size": checkpoint.size},
                headers=self._headers(),
            )
            check_inclusion(receipt, self._parse(response, InclusionProof), checkpoint)
        return checkpoint


class AsyncPartnerClient(_Base):
    """The asyncio twin of :class:`PartnerClient`."""

    _http: httpx.AsyncClient

    def _make_http(self, **options: Any) -> httpx.AsyncClient:
        self._opening = asyncio.Lock()
        self._pending: list[Receipt] = []  # receipts the background check has yet to verify
        self._background: asyncio.Task[None] | None = None
        self._broken: ModelpactError | None = None  # what the background check found
        return httpx.AsyncClient(**options)

    # -- receipts checked in the background ------------------------------------------------

    def verify_in_background(self, *, every: float = 30.0) -> None:
        """Verify every prediction's receipt in batches, every ``every`` seconds, on this
        event loop.  A receipt that fails (a proof that does not hold, a forked or rolled
        back log) is raised by the next call of :meth:`predict` or
        :meth:`verify_pending`, so it cannot go unnoticed."""
        if every <= 0:
            raise InvalidInput("the background check's interval must be positive")
        if self._background is None:
            self._background = asyncio.get_running_loop().create_task(self._verify_loop(every))

    async def _verify_loop(self, every: float) -> None:
        while self._broken is None:
            await asyncio.sleep(every)
            try:
                await self.verify_pending()
            except ModelpactError as failure:
                self._broken = failure

    async def verify_pending(self) -> Checkpoint | None:
        """Verify the receipts collected since the last check (by up to 256 per checkpoint);
        ``None`` when there were none."""
        if self._broken is not None:
            raise self._broken
        checkpoint = None
        while self._pending:
            batch, self._pending = self._pending[:256], self._pending[256:]
            try:
                checkpoint = await self.verify_receipts(batch)
            except ModelpactError:
                self._pending = batch + self._pending  # kept, for a retry or a closer look
                raise
        return checkpoint

    async def __aenter__(self) -> AsyncPartnerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        await self._http.aclose()

    async def _safe(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self._retries + 1):
            try:
                response = await self._http.request(method, url, **kwargs)
            except _RETRIED as exc:
                if attempt == self._retries:
                    raise ServerError(f"cannot reach the gateway: {exc}") from None
            else:
                if response.status_code != 503 or attempt == self._retries:
                    return response
            await asyncio.sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    async def open_session(self) -> SessionGrant:
        body = ChallengeRequest(partner=self._identity.partner).model_dump(mode="json")
        response = await self._safe("POST", "/v1/sessions/challenge", json=body)
        challenge = self._parse(response, Challenge)
        request = self._identity.session_request(challenge, self._clock())
        try:
            response = await self._http.post("/v1/sessions", json=request.model_dump(mode="json"))
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach the gateway: {exc}") from None
        self._grant = self._parse(response, SessionGrant)
        if self._attest:
            try:
                await self._attest_now(self._countersigned, None, DEFAULT_MAX_AGE)
            except BaseException:
                self._grant = None  # no data goes out on a session that did not attest
                raise
        return self._grant

    async def _ensure_session(self, stale: SessionGrant | None = None) -> None:
        async with self._opening:  # many concurrent predictions open one session, not many
            if self._grant is stale or renew_due(self._grant, self._clock()):
                await self.open_session()

    async def close_session(self) -> None:
        if self._grant is None:
            return
        response = await self._http.delete("/v1/sessions/current", headers=self._headers())
        self._grant = None
        if response.status_code >= 400 and response.status_code != 401:
            raise error_from(response)

    async def rotate_key(self, new_key: SigningKey) -> PartnerKeyRotated:
        """The asyncio twin of :meth:`PartnerClient.rotate_key`."""
        body = ChallengeRequest(partner=self._identity.partner).model_dump(mode="json")
        reply = await self._safe("POST", "/v1/sessions/challenge", json=body)
        challenge = self._parse(reply, Challenge)
        request = self._identity.rotation_request(challenge, new_key, self._clock())
        try:
            response = await self._http.post(
                "/v1/partner/key", json=request.model_dump(mode="json")
            )
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach the gateway: {exc}") from None
        result: PartnerKeyRotated = self._parse(response, PartnerKeyRotated)
        self._identity = self._identity.with_key(new_key)
        self._grant = None
        return result

    async def predict(self, model: str, rows: Any, *, version: str | None = None) -> Prediction:
        if self._broken is not None:
            raise self._broken
        body = PredictRequest(rows=as_rows(rows), version=version).model_dump(mode="json")
        for attempt in range(2):
            if renew_due(self._grant, self._clock()):
                await self._ensure_session()
            grant = self._grant
            try:
                response = await self._http.post(
                    f"/v1/models/{model}/predict", json=body, headers=self._headers()
                )
            except httpx.TransportError as exc:
                raise ServerError(f"cannot reach the gateway: {exc}") from None
            if response.status_code == 401 and attempt == 0:
                await self._ensure_session(stale=grant)
                continue
            prediction = Prediction.from_wire(self._parse(response, PredictResponse))
            if self._background is not None:
                self._pending.append(prediction.receipt)
            return prediction
        raise Unauthenticated("the gateway refused a fresh session")

    async def predict_encrypted(
        self,
        model: str,
        rows: Any,
        *,
        packing: str = "batch",
        version: str | None = None,
        chunk: int | None = None,
    ) -> EncryptedPrediction:
        """:meth:`PartnerClient.predict_encrypted`, awaited (encryption in a thread)."""
        if self._broken is not None:
            raise self._broken
        if renew_due(self._grant, self._clock()):
            await self._ensure_session()  # its grant says how many rows a request may carry
        keys, parts, checked = await asyncio.to_thread(self._encrypted_plan, rows, packing, chunk)
        answers: list[EncryptedPredictResponse] = []
        scores: list[Any] = []
        for part in parts:
            body, params = await asyncio.to_thread(
                self._encrypted_request, keys, checked, part, version
            )
            answer = await self._post_encrypted(model, keys, body, params)
            read = self._encryption().read
            scores.append(await asyncio.to_thread(read, keys, checked, part, answer))
            answers.append(answer)
            version = answer.version
        if self._background is not None:
            self._pending.extend(a.receipt for a in answers)
        return self._encrypted_result(model, checked, answers, scores)

    async def _post_encrypted(
        self, model: str, keys: Keys, body: bytes, params: dict[str, str | int]
    ) -> EncryptedPredictResponse:
        for attempt in range(3):
            if renew_due(self._grant, self._clock()):
                await self._ensure_session()
            grant = self._grant
            assert grant is not None
            if grant.token not in keys.uploaded:
                put = self._context_put(keys)
                self._held(await self._safe("PUT", "/v1/encryption/context", **put), keys,
                           grant.token)  # fmt: skip
            url, options = self._encrypted_post(model, body, params)
            try:
                response = await self._http.post(url, **options)
            except httpx.TransportError as exc:
                raise ServerError(f"cannot reach the gateway: {exc}") from None
            why = self._again(response) if attempt < 2 else None
            if why == "session":
                await self._ensure_session(stale=grant)
                continue
            if why == "context":
                keys.uploaded.discard(grant.token)
                continue
            answer: EncryptedPredictResponse = self._parse(response, EncryptedPredictResponse)
            return answer
        raise ServerError("the gateway kept refusing the session or its encryption context")

    async def privacy_budget(self, model: str) -> PrivacyBudget:
        """:meth:`PartnerClient.privacy_budget`, awaited."""
        if renew_due(self._grant, self._clock()):
            await self._ensure_session()
        response = await self._safe(
            "GET", "/v1/privacy-budget", params={"model": model}, headers=self._headers()
        )
        return self._parse(response, PrivacyBudget)  # type: ignore[no-any-return]

    async def attest(
        self,
        *,
        countersigned: Charter | None = None,
        pins: AttestationPins | None = None,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> AttestationDocument:
        """:meth:`PartnerClient.attest`, awaited."""
        self._need_owner()
        if renew_due(self._grant, self._clock()):
            await self._ensure_session()
        return await self._attest_now(countersigned, pins, max_age)

    async def _attest_now(
        self, countersigned: Charter | None, pins: AttestationPins | None, max_age: timedelta
    ) -> AttestationDocument:
        self._need_owner()
        nonce = new_nonce()
        response = await self._safe(
            "GET", "/v1/attestation", params={"nonce": nonce}, headers=self._headers()
        )
        try:
            return self._attested(response, nonce, countersigned, pins, max_age)
        except AttestationFailed:  # signed by a key the owner handed over to?
            if not self._adopt(await self._safe("GET", "/v1/log/handovers"), None):
                raise
        return self._attested(response, nonce, countersigned, pins, max_age)

    async def checkpoint(self, *, min_size: int = 0, origin: str | None = None) -> Checkpoint:
        owner, log_origin = self._log_for([]) if origin is None else (self._owner, origin)
        assert owner is not None
        response = await self._safe("GET", "/v1/log/checkpoint", params={"min_size": min_size})
        document = self._parse(response, CheckpointDocument)
        try:
            checkpoint = self._chain_for(log_origin).open_checkpoint(document.note)
        except SignatureInvalid:  # signed by a key handed over to since? follow the handovers
            if not self._adopt(await self._safe("GET", "/v1/log/handovers"), log_origin):
                raise
            checkpoint = self._chain_for(log_origin).open_checkpoint(document.note)
        if self._witness_path is not None:
            chain = self._chain_for(log_origin)
            start = witness_needs_proof(self._witness_path, chain, checkpoint)
            proof = None
            if start is not None:
                await self._ensure_session()
                reply = await self._safe(
                    "GET",
                    "/v1/log/consistency",
                    params={"old": start, "new": checkpoint.size},
                    headers=self._headers(),
                )
                proof = unb64_list(self._parse(reply, ConsistencyProof).proof)
            observe_across(self._witness_path, chain, document.note, checkpoint, proof)
        return checkpoint

    async def verify_receipts(self, receipts: Iterable[Receipt]) -> Checkpoint:
        batch = list(receipts)
        if not batch:
            raise InvalidInput("no receipts to verify")
        _, origin = self._log_for(batch)
        checkpoint = await self.checkpoint(min_size=max(r.index for r in batch) + 1, origin=origin)
        await self._ensure_session()
        for receipt in batch:
            response = await self._safe(
                "GET",
                "/v1/log/inclusion",
                params={"index": receipt.index, "size": checkpoint.size},
                headers=self._headers(),
            )
            check_inclusion(receipt, self._parse(response, InclusionProof), checkpoint)
        return checkpoint
