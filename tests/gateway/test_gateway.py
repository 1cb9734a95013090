"""The gateway end to end: the SDK against the ASGI app in process, and over TLS on uvicorn."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry, SessionEntry
from modelpact.client import AsyncPartnerClient, PartnerClient
from modelpact.errors import (
    Denied,
    InvalidInput,
    NotFound,
    QuotaExhausted,
)
from modelpact.services import CharterDesk, PartnerDirectory, Workspace
from modelpact.wire import PROBLEM_BASE, Challenge
from tests.gateway.conftest import (
    KEYS,
    MODEL,
    Clock,
    charter_for,
    client,
    entries,
    raw,
    run,
    running,
)

ROWS = load_breast_cancer().data[:5].tolist()


def test_predictions_are_shaped_audited_and_provable(app: Any, ws: Workspace) -> None:
    async def scenario() -> None:
        async with client(app, ws) as sdk:
            prediction = await sdk.predict(MODEL, np.array(ROWS))
            assert prediction.version == "1.0.0"
            assert len(prediction.outputs) == len(ROWS)
            for output in prediction.outputs:  # the grant says: scores, 2 decimals
                scores = output["scores"]
                assert all(round(s["score"], 2) == s["score"] for s in scores)
            second = await sdk.predict(MODEL, ROWS[:2])
            checkpoint = await sdk.verify_receipts([prediction.receipt, second.receipt])
            assert checkpoint.size > second.receipt.index

    run(scenario())
    access = [e for e in entries(ws) if isinstance(e, AccessEntry)]
    assert [e.decision for e in access] == ["allow", "allow"]
    assert access[0].rows == len(ROWS) and access[0].input_digest and access[0].output_digest
    assert all(str(ROWS[0][0]) not in e.model_dump_json() for e in access)  # no raw inputs


def test_a_wrong_purpose_is_denied_with_reasons_and_audited(app: Any, ws: Workspace) -> None:
    async def scenario() -> None:
        async with client(app, ws, purpose="marketing") as sdk:
            with pytest.raises(Denied):
                await sdk.predict(MODEL, ROWS)

    run(scenario())
    refused = [e for e in entries(ws) if isinstance(e, SessionEntry) and e.decision == "deny"]
    assert refused and refused[-1].purpose == "marketing"


def test_one_partner_cannot_use_anothers_charter_or_receipts(app: Any, ws: Workspace) -> None:
    async def scenario() -> None:
        async with client(app, ws, charter="northwind-globex") as thief:
            with pytest.raises(Denied):
                await thief.open_session()
        async with client(app, ws, partner="globex") as globex, client(app, ws) as acme:
            theirs = await globex.predict(MODEL, ROWS[:1])
            with pytest.raises(NotFound):
                await acme.verify_receipts([theirs.receipt])
            await globex.verify_receipts([theirs.receipt])

    run(scenario())


def test_bad_signatures_and_replayed_challenges_are_refused(app: Any, ws: Workspace) -> None:
    acme = client(app, ws)._identity
    impostor = client(app, ws, key=KEYS["globex"])._identity

    async def scenario() -> None:
        async with raw(app) as http:

            async def challenge() -> Challenge:
                reply = await http.post("/v1/sessions/challenge", json={"partner": "acme"})
                return Challenge.model_validate(reply.json())

            first = await challenge()
            forged = impostor.session_request(first, ws.clock())
            response = await http.post("/v1/sessions", json=forged.model_dump(mode="json"))
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            # A forgery does not burn the partner's nonce; the honest answer still works...
            honest = acme.session_request(first, ws.clock()).model_dump(mode="json")
            assert (await http.post("/v1/sessions", json=honest)).status_code == 201
            # ...once: the same signed request again is a replay.
            assert (await http.post("/v1/sessions", json=honest)).status_code == 401
            # An old signature over a fresh nonce does not verify.
            fresh = await challenge()
            spliced = honest | {"nonce": fresh.nonce}
            assert (await http.post("/v1/sessions", json=spliced)).status_code == 401
            # A nonce issued to acme cannot open globex's session.
            stolen = impostor.session_request(fresh, ws.clock()).model_dump(mode="json")
            stolen |= {"partner": "globex", "charter": "northwind-globex"}
            assert (await http.post("/v1/sessions", json=stolen)).status_code == 401

    run(scenario())


def test_suspension_revocation_and_expiry_take_effect_on_the_next_request(
    app: Any, ws: Workspace, clock: Clock
) -> None:
    async def scenario() -> None:
        async with client(app, ws) as sdk, raw(app) as http:
            await sdk.predict(MODEL, ROWS[:1])
            token = sdk.session.token  # type: ignore[union-attr]
            headers = {"Authorization": f"Bearer {token}"}
            clock.advance(minutes=16)  # past the 15 minute session
            expired = await http.post(
                f"/v1/models/{MODEL}/predict", json={"rows": ROWS[:1]}, headers=headers
            )
            assert expired.status_code == 401
            await sdk.predict(MODEL, ROWS[:1])  # the SDK opens a new session by itself
            PartnerDirectory(ws).change_status("acme", "suspend")
            with pytest.raises(Denied):
                await sdk.predict(MODEL, ROWS[:1])

    run(scenario())


def test_rate_limits_answer_429_with_retry_after(ws: Workspace, gateway: Any) -> None:
    from modelpact.gateway.app import create_app

    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, limits__requests_per_minute=2), source="v2.json"
    )
    app = create_app(ws, gateway=gateway)

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            await sdk.predict(MODEL, ROWS[:1])
            await sdk.predict(MODEL, ROWS[:1])
            with pytest.raises(QuotaExhausted) as caught:
                await sdk.predict(MODEL, ROWS[:1])
            assert caught.value.retry_after and caught.value.retry_after > 0
        async with raw(app) as http:
            grant = await client(app, ws).open_session()
            response = await http.post(
                f"/v1/models/{MODEL}/predict",
                json={"rows": ROWS[:1]},
                headers={"Authorization": f"Bearer {grant.token}"},
            )
            assert response.status_code == 429
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["type"] == PROBLEM_BASE + "quota-exhausted"

    run(scenario())


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b'{"rows": [[1, 2', 422, "invalid-request"),
        (b'{"rows": [[NaN' + b", 1.0" * 29 + b"]]}", 400, "invalid-input"),
        (b'{"rows": [[Infinity' + b", 1.0" * 29 + b"]]}", 400, "invalid-input"),
        (json.dumps({"rows": [[1.0] * 7]}).encode(), 400, "invalid-input"),
        (json.dumps({"rows": [[1.0] * 30] * 65}).encode(), 400, "invalid-input"),
        (json.dumps({"rows": [["x"] * 30]}).encode(), 422, "invalid-request"),
        (json.dumps({"rows": []}).encode(), 422, "invalid-request"),
        (json.dumps({"rows": [[1.0] * 30], "extra": 1}).encode(), 422, "invalid-request"),
    ],
    ids=["truncated", "nan", "infinity", "width", "batch", "strings", "empty", "extra-field"],
)
def test_malformed_requests_are_4xx_problems_never_500(
    app: Any, ws: Workspace, body: bytes, status: int, kind: str
) -> None:
    async def scenario() -> httpx.Response:
        grant = await client(app, ws).open_session()
        async with raw(app) as http:
            return await http.post(
                f"/v1/models/{MODEL}/predict",
                content=body,
                headers={
                    "Authorization": f"Bearer {grant.token}",
                    "Content-Type": "application/json",
                },
            )

    before = len(entries(ws))
    response = run(scenario())
    assert response.status_code == status, response.text
    assert response.json()["type"] == PROBLEM_BASE + kind
    assert response.headers["content-type"] == "application/problem+json"
    after = entries(ws)[before:]
    refusals = [e for e in after if isinstance(e, AccessEntry) and e.decision == "deny"]
    assert len(refusals) == 1  # every refusal is on the record, with its reason
    assert refusals[0].reasons and refusals[0].rows in (
        0,
        len(json.loads(body)["rows"]) if status == 400 else 0,
    )


@pytest.mark.parametrize(
    ("model", "version"),
    [
        ("fraud-detector", "1.\n"),
        ("x" * 300, None),
        ("Fraud Detector", None),
        ("no-such-model", None),
    ],
    ids=["control-char-version", "long-name", "not-a-slug", "unknown"],
)
def test_bad_or_unknown_names_are_404_and_audited(
    app: Any, ws: Workspace, model: str, version: str | None
) -> None:
    async def scenario() -> httpx.Response:
        grant = await client(app, ws).open_session()
        async with raw(app) as http:
            return await http.post(
                f"/v1/models/{model}/predict",
                json={"rows": ROWS[:1], "version": version},
                headers={"Authorization": f"Bearer {grant.token}"},
            )

    before = len(entries(ws))
    response = run(scenario())
    assert response.status_code == 404, response.text
    after = entries(ws)[before:]
    assert [e.decision for e in after if isinstance(e, AccessEntry)] == ["deny"]


def test_a_model_outside_the_charter_looks_like_no_model_at_all(
    app: Any, ws: Workspace, onnx_model: bytes
) -> None:
    from modelpact.services import ModelRegistry

    ModelRegistry(ws).add("secret-model", onnx_model, version="1.0.0", source="s.onnx")

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with client(app, ws) as sdk:
            await sdk.open_session()
            headers = {"Authorization": f"Bearer {sdk.session.token}"}  # type: ignore[union-attr]
        async with raw(app) as http:
            body = {"rows": ROWS[:1]}
            secret = await http.post("/v1/models/secret-model/predict", json=body, headers=headers)
            missing = await http.post("/v1/models/nothing-here/predict", json=body, headers=headers)
        assert secret.status_code == missing.status_code == 404
        return secret.json(), missing.json()

    secret, missing = run(scenario())
    assert secret["type"] == missing["type"]


def test_an_oversized_body_is_413_before_it_is_read(ws: Workspace, gateway: Any) -> None:
    from modelpact.gateway.app import create_app

    app = create_app(ws, gateway=gateway, max_body=1024)

    async def scenario() -> httpx.Response:
        async with raw(app) as http:
            return await http.post(f"/v1/models/{MODEL}/predict", content=b"[" * 4096)

    response = run(scenario())
    assert response.status_code == 413
    assert response.json()["type"] == PROBLEM_BASE + "payload-too-large"


def test_requests_without_a_valid_session_are_refused_and_recorded(app: Any, ws: Workspace) -> None:
    async def scenario() -> list[int]:
        async with raw(app) as http:
            codes = []
            for headers in ({}, {"Authorization": "Basic x"}, {"Authorization": "Bearer mpt_nope"}):
                response = await http.post(
                    f"/v1/models/{MODEL}/predict", json={"rows": ROWS[:1]}, headers=headers
                )
                codes.append(response.status_code)
                assert response.headers["www-authenticate"].startswith("Bearer")
            return codes

    assert run(scenario()) == [401, 401, 401]
    refused = [e for e in entries(ws) if isinstance(e, SessionEntry) and e.decision == "deny"]
    assert len(refused) == 3


def test_openapi_has_stable_operation_ids(app: Any) -> None:
    async def scenario() -> dict[str, Any]:
        async with raw(app) as http:
            return (await http.get("/openapi.json")).json()  # type: ignore[no-any-return]

    spec = run(scenario())
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "createChallenge",
        "openSession",
        "closeSession",
        "predict",
        "getCheckpoint",
        "proveInclusion",
        "proveConsistency",
        "health",
        "ready",
    } <= ids


def test_over_tls_on_a_real_uvicorn(app: Any, ws: Workspace, tmp_path: Path) -> None:
    tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
    with running(app, **tls) as url:
        with PartnerClient(
            url,
            partner="acme",
            key=KEYS["acme"],
            charter="northwind-acme",
            purpose="fraud-screening",
            owner_key=ws.owner_verify_key,
            witness_path=tmp_path / "witness.note",
            verify=ws.ca_cert_path,
            clock=ws.clock,
        ) as sdk:
            receipts = [sdk.predict(MODEL, [row]).receipt for row in ROWS]
            checkpoint = sdk.verify_receipts(receipts)
            assert checkpoint.size >= len(receipts)
            later = sdk.predict(MODEL, ROWS[:1]).receipt
            sdk.verify_receipts([later])  # the witness checked consistency with the first
            sdk.close_session()
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(url + "/healthz", verify=ssl.create_default_context())
        trusted = ssl.create_default_context(cafile=str(ws.ca_cert_path))
        assert httpx.get(url + "/readyz", verify=trusted).status_code == 200
    assert (tmp_path / "witness.note").exists()


def test_client_side_checks_refuse_bad_rows_before_sending(app: Any, ws: Workspace) -> None:
    async def scenario() -> None:
        async with client(app, ws) as sdk:
            for rows in ([[float("nan")] * 30], [], "text", [[True] * 30]):
                with pytest.raises(InvalidInput):
                    await sdk.predict(MODEL, rows)

    run(scenario())
    assert not [e for e in entries(ws) if isinstance(e, AccessEntry)]


def test_a_revoked_partner_cannot_open_a_session(app: Any, ws: Workspace) -> None:
    PartnerDirectory(ws).change_status("acme", "revoke")

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            with pytest.raises(Denied):
                await sdk.open_session()

    run(scenario())


def test_unparseable_json_without_a_session_is_401_and_recorded(app: Any, ws: Workspace) -> None:
    async def scenario() -> httpx.Response:
        async with raw(app) as http:
            return await http.post(
                f"/v1/models/{MODEL}/predict",
                content=b'{"rows": [[1',
                headers={"Content-Type": "application/json"},
            )

    response = run(scenario())
    assert response.status_code == 401
    refused = [e for e in entries(ws) if isinstance(e, SessionEntry) and e.decision == "deny"]
    assert len(refused) == 1


def test_receipts_are_verified_in_the_background_and_a_bad_one_stops_the_client(
    app: Any, ws: Workspace
) -> None:
    from modelpact.errors import ProofInvalid
    from modelpact.wire import Receipt

    async def drained(sdk: AsyncPartnerClient) -> None:
        for _ in range(200):  # at most ~10 s
            if not sdk._pending:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the background check did not catch up")

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            sdk.verify_in_background(every=0.05)
            for row in ROWS[:3]:
                await sdk.predict(MODEL, [row])
            await drained(sdk)
            good = await sdk.predict(MODEL, ROWS[:1])
            forged = Receipt.model_validate(
                good.receipt.model_dump() | {"leaf_hash": base64.b64encode(b"x" * 32).decode()}
            )
            sdk._pending.append(forged)  # as if the gateway had sent a receipt that lies
            for _ in range(200):
                if sdk._broken is not None:
                    break
                await asyncio.sleep(0.05)
            with pytest.raises(ProofInvalid):
                await sdk.predict(MODEL, ROWS[:1])

    run(scenario())


def test_changes_made_by_another_process_hold_on_the_very_next_request(
    app: Any, ws: Workspace, gateway: Any, onnx_model: bytes
) -> None:
    """The gateway keeps partners, charters, models and sessions until the store's change
    counter moves; a second workspace on the same database plays the owner's CLI."""
    import sqlalchemy as sa

    from modelpact.services import ModelRegistry, open_workspace
    from modelpact.services.sessions import SessionDesk

    selects: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(" ".join(statement.split()))

    engine = ws.store._engine  # type: ignore[attr-defined]
    owner = open_workspace(ws.root, clock=ws.clock)

    async def scenario() -> None:
        async with client(app, ws) as sdk, raw(app) as http:
            await sdk.predict(MODEL, ROWS[:1])  # fills the cache
            token = sdk.session.token  # type: ignore[union-attr]
            headers = {"Authorization": f"Bearer {token}"}

            async def post() -> httpx.Response:
                return await http.post(
                    f"/v1/models/{MODEL}/predict", json={"rows": ROWS[:1]}, headers=headers
                )

            sa.event.listen(engine, "before_cursor_execute", record)
            try:
                assert (await post()).status_code == 200
            finally:
                sa.event.remove(engine, "before_cursor_execute", record)
            # Of what a request checks, a cached one reads the change counter only.
            checked = ("state_changes", "partners", "charters", "sessions", "models")
            read = [s for s in selects if any(f" {t} " in f"{s} " for t in checked)]
            assert len(read) == 1 and "state_changes" in read[0], selects

            PartnerDirectory(owner).change_status("acme", "suspend")
            assert (await post()).status_code == 403
            PartnerDirectory(owner).change_status("acme", "resume")
            assert (await post()).status_code == 200

            ModelRegistry(owner).add(MODEL, onnx_model, version="1.1.0", source="m.onnx")
            assert (await post()).json()["version"] == "1.1.0"
            ModelRegistry(owner).rollback(MODEL, to_version="1.0.0")
            assert (await post()).json()["version"] == "1.0.0"

            narrowed = charter_for(owner, "acme", version=2, purposes=["research"])
            CharterDesk(owner).apply(narrowed, source="v2.json")
            dropped = await post()
            assert dropped.status_code == 403
            assert "no longer lists purpose" in dropped.text

            SessionDesk(owner, audience=gateway.audience).revoke(token)
            assert (await post()).status_code == 401

    try:
        run(scenario())
    finally:
        owner.close()


def test_refused_requests_take_their_slot_of_the_rate_window(ws: Workspace, gateway: Any) -> None:
    from modelpact.gateway.app import create_app

    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, limits__requests_per_minute=2), source="v2.json"
    )
    app = create_app(ws, gateway=gateway)

    async def scenario() -> list[int]:
        grant = await client(app, ws).open_session()
        headers = {"Authorization": f"Bearer {grant.token}"}
        async with raw(app) as http:
            return [
                (
                    await http.post(
                        f"/v1/models/{name}/predict", json={"rows": ROWS[:1]}, headers=headers
                    )
                ).status_code
                for name in ("no-such-model", "Not A Name", MODEL)
            ]

    before = len(entries(ws))
    assert run(scenario()) == [404, 404, 429]  # a flood of refusals is throttled too
    denied = [e for e in entries(ws)[before:] if isinstance(e, AccessEntry)]
    assert [e.decision for e in denied] == ["deny", "deny", "deny"]


def test_without_a_quota_a_cached_request_runs_on_the_event_loop_reading_only_the_counter(
    ws: Workspace, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No durable count to make: the pipeline runs inline, the counter its only read, and a
    change made by another process still holds on the next request."""
    import sqlalchemy as sa

    import modelpact.gateway.app as gateway_app
    from modelpact.gateway.app import create_app
    from modelpact.services import open_workspace

    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, limits__daily_quota=None), source="v2.json"
    )
    app = create_app(ws, gateway=gateway)
    owner = open_workspace(ws.root, clock=ws.clock)
    statements: list[str] = []
    counters: list[int] = []
    hops: list[str] = []
    read_counter = ws.store.state_counter

    def counted() -> int:
        counters.append(read_counter())
        return counters[-1]

    async def no_hop(fn: Any, *args: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await anyio.to_thread.run_sync(fn, *args)

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    async def scenario() -> None:
        async with client(app, ws) as sdk, raw(app) as http:
            await sdk.predict(MODEL, ROWS[:1])  # fills the cache and loads the model
            gateway.monitor.flush()  # its thread reads its own rows once, off the request path
            headers = {"Authorization": f"Bearer {sdk.session.token}"}  # type: ignore[union-attr]

            async def post() -> httpx.Response:
                return await http.post(
                    f"/v1/models/{MODEL}/predict", json={"rows": ROWS[:1]}, headers=headers
                )

            monkeypatch.setattr(ws.store, "state_counter", counted)
            monkeypatch.setattr(gateway_app, "_thread", no_hop)
            engine = ws.store._engine  # type: ignore[attr-defined]
            sa.event.listen(engine, "before_cursor_execute", record)
            try:
                assert (await post()).status_code == 200
                assert statements == [] and hops == [] and len(counters) == 1
                PartnerDirectory(owner).change_status("acme", "suspend")
                assert (await post()).status_code == 403  # read for real: the counter moved
                assert hops == ["predict_with_token"]
                PartnerDirectory(owner).change_status("acme", "resume")
                assert (await post()).status_code == 200
                assert (await post()).status_code == 200
                assert hops == ["predict_with_token"] * 2  # the second from the cache again
            finally:
                sa.event.remove(engine, "before_cursor_execute", record)

    try:
        run(scenario())
    finally:
        owner.close()


def test_a_cache_miss_after_the_rate_slot_does_not_take_a_second_one(
    ws: Workspace, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelpact.gateway.app import create_app
    from modelpact.services.state_cache import CacheMiss

    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, limits__daily_quota=None, limits__requests_per_minute=2),
        source="v2.json",
    )
    app = create_app(ws, gateway=gateway)
    engine = gateway.decider.engine
    asked: list[object] = []

    def flaky(uow: Any = None) -> Any:
        # The inline path asks twice (look-up, then decision); the second one misses,
        # as if the cache had been dropped in between.
        asked.append(uow)
        if type(uow).__name__ == "_CachedOnly" and asked.count(uow) == 2:
            raise CacheMiss("dropped")
        return engine(uow)

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            await sdk.predict(MODEL, ROWS[:1])  # fills the cache: one slot
            monkeypatch.setattr(gateway.decider, "engine", flaky)
            await sdk.predict(MODEL, ROWS[:1])  # inline, then the thread path: one slot
            assert sum(type(u).__name__ == "_CachedOnly" for u in asked) == 2
            with pytest.raises(QuotaExhausted):
                await sdk.predict(MODEL, ROWS[:1])

    run(scenario())
