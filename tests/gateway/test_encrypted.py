"""Encrypted predictions through the gateway: the partner's decrypted outputs are the model's
own in both packings, under the same charter, quota and audit; whatever cannot be scored or
was not granted is refused with one line and recorded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from modelpact.audit.entries import AccessEntry, SessionEntry
from modelpact.client import PartnerClient
from modelpact.crypto.homomorphic import SecretContext
from modelpact.errors import Denied, InvalidInput, QuotaExhausted
from modelpact.gateway.app import Gateway, create_app
from modelpact.services import CharterDesk, Workspace
from modelpact.services.model_workers import WorkerPool
from modelpact.wire import CIPHERTEXTS_MEDIA_TYPE, PROBLEM_BASE, pack_ciphertexts
from tests.gateway.conftest import KEYS, MODEL, charter_for, client, entries, raw, run, running

X, Y = load_breast_cancer(return_X_y=True)
# The served model (conftest's), for unmarked reference scores: plain answers carry the
# partner's watermark, which encrypted ones cannot.
REFERENCE = LogisticRegression(max_iter=5000).fit(X, Y)
ENCRYPTED = {
    "model": MODEL,
    "versions": "1.*",
    "actions": ["predict", "predict_encrypted"],
    "output": {"kind": "scores", "decimals": 6},
}


def grant_encrypted(ws: Workspace, **changes: Any) -> None:
    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, grants=[ENCRYPTED], **changes), source="v2.json"
    )


def plain_scores(outputs: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[s["score"] for s in o["scores"]] for o in outputs])


def test_both_packings_give_the_models_outputs_with_receipts_and_digests_in_the_log(
    ws: Workspace,
) -> None:
    grant_encrypted(ws)
    gateway = Gateway(ws, workers=WorkerPool(ws.root, size=1, timeout=60.0))
    app = create_app(ws, gateway=gateway)
    rows = X[:70]  # two requests of at most 64 (max_batch_rows) in batch packing

    async def scenario() -> None:
        try:
            async with client(app, ws) as sdk:
                plain = REFERENCE.predict_proba(rows)
                batch = await sdk.predict_encrypted(MODEL, rows)
                assert batch.packing == "batch" and len(batch.receipts) == 2
                assert len(batch.outputs) == 70 and batch.version == "1.0.0"
                assert np.abs(plain_scores(batch.outputs) - plain).max() < 1e-3
                one = await sdk.predict_encrypted(MODEL, rows[:3], packing="rows")
                assert np.abs(plain_scores(one.outputs) - plain[:3]).max() < 1e-3
                assert [s["label"] for s in one.outputs[0]["scores"]] == [0, 1]
                await sdk.verify_receipts([*batch.receipts, *one.receipts])
        finally:
            await gateway.workers.aclose()  # type: ignore[union-attr]

    run(scenario())
    gateway.close()
    log = entries(ws)
    uploads = [e for e in log if isinstance(e, SessionEntry) and e.action == "context"]
    assert [e.decision for e in uploads] == ["allow", "allow"]  # one per key set (packing)
    assert all(e.reasons[0].startswith("encryption context sha256:") for e in uploads)
    scored = [e for e in log if isinstance(e, AccessEntry) and e.action == "predict_encrypted"]
    assert [(e.decision, e.rows) for e in scored] == [("allow", 64), ("allow", 6), ("allow", 3)]
    assert all(e.input_digest and e.output_digest for e in scored)
    assert "batch packing" in scored[0].reasons and "rows packing" in scored[2].reasons
    assert uploads[0].reasons[0].split()[2].rstrip(",") in scored[0].reasons[-2]


def test_the_blocking_sdk_over_a_real_server_recovers_a_dropped_context(
    ws: Workspace, gateway: Gateway
) -> None:
    grant_encrypted(ws)
    app = create_app(ws, gateway=gateway)
    with running(app) as url:
        sdk = PartnerClient(
            url,
            partner="acme",
            key=KEYS["acme"],
            charter="northwind-acme",
            purpose="fraud-screening",
            owner_key=ws.owner_verify_key,
            clock=ws.clock,
        )
        with sdk:
            first = sdk.predict_encrypted(MODEL, X[:5])
            token = sdk.session.token  # type: ignore[union-attr]
            gateway.contexts.drop(gateway.sessions.authenticate(token).token_id)
            again = sdk.predict_encrypted(MODEL, X[:5])  # 409, uploaded again, answered
            assert np.abs(first.scores - again.scores).max() < 1e-3
    uploads = [e for e in entries(ws) if isinstance(e, SessionEntry) and e.action == "context"]
    assert len(uploads) == 2


def test_without_a_predict_encrypted_grant_nothing_is_held_or_scored(
    ws: Workspace, gateway: Gateway
) -> None:
    app = create_app(ws, gateway=gateway)  # the fixture's charter grants predict only

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            with pytest.raises(Denied, match="grants no encrypted predictions"):
                await sdk.predict_encrypted(MODEL, X[:2])
            grant = sdk.session
            assert grant is not None
        async with raw(app) as http:
            context = SecretContext()
            answer = await http.post(
                f"/v1/models/{MODEL}/predict-encrypted",
                params={"packing": "batch", "rows": 2, "context": "sha256:" + "a" * 64},
                content=pack_ciphertexts(context.encrypt_columns(X[:2])),
                headers={"Authorization": f"Bearer {grant.token}"},
            )
            assert answer.status_code == 403, answer.text
            assert "does not allow predict_encrypted" in answer.json()["detail"]

    run(scenario())
    log = entries(ws)
    assert [e.decision for e in log if isinstance(e, SessionEntry) and e.action == "context"] == [
        "deny"
    ]
    refused = [e for e in log if isinstance(e, AccessEntry) and e.action == "predict_encrypted"]
    assert [(e.decision, e.rows) for e in refused] == [("deny", 2)]


def test_bad_contexts_and_bodies_are_refused_with_one_line_each(
    ws: Workspace, gateway: Gateway
) -> None:
    grant_encrypted(ws)
    app = create_app(ws, gateway=gateway)
    partner = SecretContext()
    columns = partner.encrypt_columns(X[:4])

    async def scenario() -> None:
        grant = await client(app, ws).open_session()
        auth = {"Authorization": f"Bearer {grant.token}"}
        async with raw(app) as http:

            async def put(data: bytes) -> Any:
                return await http.put("/v1/encryption/context", content=data, headers=auth)

            secret = partner._context.serialize(save_secret_key=True)
            for data, words in (
                (secret, "secret key"),
                (b"\x0a\x03abc", "not a TenSEAL public context"),
                (b"", "empty"),
            ):
                answer = await put(data)
                assert answer.status_code == 400 and words in answer.json()["detail"], answer.text
            held = await put(partner.public())
            assert held.status_code == 200, held.text
            digest = held.json()["digest"]
            assert held.json()["degree"] == 8192 and held.json()["primes"] == [60, 40, 60]

            async def score(body: bytes, rows: int = 4, context: str = digest) -> Any:
                params = {"packing": "batch", "rows": rows, "context": context}
                headers = auth | {"Content-Type": CIPHERTEXTS_MEDIA_TYPE}
                return await http.post(
                    f"/v1/models/{MODEL}/predict-encrypted",
                    params=params,
                    content=body,
                    headers=headers,
                )

            body = pack_ciphertexts(columns)
            good = await score(body)
            assert good.status_code == 200, good.text
            assert good.json()["rows"] == 4 and len(good.json()["scores"]) == 1
            for answer, status, words in (
                (await score(body[:-10]), 400, "cut short"),
                (await score(b""), 400, "no ciphertexts"),
                (await score(pack_ciphertexts(columns[:29])), 400, "one ciphertext per feature"),
                (await score(body, rows=5), 400, "not the 5 declared"),
                (await score(body, rows=65), 400, "at most 64 rows per request"),
                (await score(body, context="sha256:" + "b" * 64), 409, "no encryption context"),
                (await score(pack_ciphertexts([b"\x0a\x01"] * 30)), 400, "not a TenSEAL message"),
            ):
                assert answer.status_code == status, answer.text
                assert words in answer.json()["detail"], answer.text
            assert (await score(body, context="sha256:" + "b" * 64)).json()["type"] == (
                PROBLEM_BASE + "context-needed"
            )
            malformed = await http.post(
                f"/v1/models/{MODEL}/predict-encrypted",
                params={"packing": "sideways", "rows": 4, "context": digest},
                content=body,
                headers=auth,
            )
            assert malformed.status_code == 422

    run(scenario())
    scored = [e for e in entries(ws) if isinstance(e, AccessEntry)]
    assert [e.decision for e in scored] == ["allow"] + ["deny"] * 9
    assert scored[-1].version == "unparsed" and scored[-1].action == "predict_encrypted"


def test_rows_count_against_the_daily_quota_and_noised_grants_are_not_served_encrypted(
    ws: Workspace, gateway: Gateway
) -> None:
    grant_encrypted(ws, limits__daily_quota=100)
    app = create_app(ws, gateway=gateway)

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            await sdk.predict_encrypted(MODEL, X[:64])
            with pytest.raises(QuotaExhausted):
                await sdk.predict_encrypted(MODEL, X[64:128])  # 128 > 100: refused
            await sdk.predict_encrypted(MODEL, X[:36])  # exactly what is left
        noised = ENCRYPTED | {"output": {"kind": "noised_scores", "epsilon": 1.0}}
        CharterDesk(ws).apply(
            charter_for(ws, "acme", version=3, grants=[noised], limits__daily_quota=None),
            source="v3.json",
        )
        async with client(app, ws) as sdk:
            with pytest.raises(Denied, match="cannot do to encrypted answers"):
                await sdk.predict_encrypted(MODEL, X[:2])
            with pytest.raises(InvalidInput, match="packing must be"):
                await sdk.predict_encrypted(MODEL, X[:2], packing="diagonal")

    run(scenario())
