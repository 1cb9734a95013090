"""The Open Inference Protocol (KServe V2 REST): in process over ASGI, tritonclient on uvicorn."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry, SessionEntry
from modelpact.client import PartnerClient
from modelpact.errors import Denied
from modelpact.services import CharterDesk, ModelRegistry, Workspace
from modelpact.wire import PROBLEM_BASE, Receipt
from tests.gateway.conftest import (
    KEYS,
    MODEL,
    N_FEATURES,
    charter_for,
    entries,
    raw,
    run,
    running,
)
from tests.gateway.conftest import client as sdk

ROWS: list[list[float]] = load_breast_cancer().data[:4].tolist()
FLAT = [value for row in ROWS for value in row]
INFER = f"/v2/models/{MODEL}/infer"


async def bearer(app: Any, ws: Workspace, partner: str = "acme") -> dict[str, str]:
    grant = await sdk(app, ws, partner).open_session()
    return {"Authorization": f"Bearer {grant.token}"}


def tensor(data: Any = None, **changes: Any) -> dict[str, Any]:
    base = {"name": "input", "shape": [len(ROWS), N_FEATURES], "datatype": "FP64"}
    return base | {"data": FLAT if data is None else data} | changes


def grant(output: dict[str, Any], model: str = MODEL, versions: str = "1.*") -> dict[str, Any]:
    return {"model": model, "versions": versions, "actions": ["predict"], "output": output}


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + kind
    assert body["error"] == body["detail"]  # what V2 clients show
    return body


def test_server_metadata_and_health_need_no_session(app: Any) -> None:
    async def scenario() -> None:
        async with raw(app) as http:
            metadata = await http.get("/v2")
            assert metadata.json() == {"name": "modelpact", "version": "0.1.0", "extensions": []}
            for path in ("/v2/health/live", "/v2/health/ready"):
                response = await http.get(path)
                assert response.status_code == 200 and response.content == b""

    run(scenario())


def test_model_metadata_describes_what_the_grant_serves(app: Any, ws: Workspace) -> None:
    async def scenario() -> None:
        headers = await bearer(app, ws)
        async with raw(app) as http:
            for path in (f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/versions/1.0.0"):
                response = await http.get(path, headers=headers)
                assert response.json() == {
                    "name": MODEL,
                    "versions": ["1.0.0"],
                    "platform": "onnxruntime_onnx",
                    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
                    "outputs": [{"name": "scores", "datatype": "FP64", "shape": [-1, 2]}],
                }
                ready = await http.get(path + "/ready", headers=headers)
                assert ready.status_code == 200 and ready.content == b""

    run(scenario())


@pytest.mark.parametrize(
    ("output", "names"),
    [
        ({"kind": "scores", "decimals": 2}, ["scores"]),
        ({"kind": "label"}, ["label"]),
        ({"kind": "top_k", "k": 1, "decimals": 3}, ["top_k_labels", "top_k_scores"]),
    ],
    ids=["scores", "label", "top_k"],
)
def test_infer_answers_as_v1_does_with_a_verifiable_receipt(
    app: Any, ws: Workspace, output: dict[str, Any], names: list[str]
) -> None:
    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, grants=[grant(output)]), source="v2.json"
    )

    async def scenario() -> None:
        async with sdk(app, ws) as partner, raw(app) as http:
            v1 = await partner.predict(MODEL, ROWS)
            headers = await bearer(app, ws)
            metadata = (await http.get(f"/v2/models/{MODEL}", headers=headers)).json()
            assert [o["name"] for o in metadata["outputs"]] == names
            for data, datatype in ((FLAT, "FP64"), (ROWS, "FP32")):  # flat, and nested
                body = {"id": "req-1", "inputs": [tensor(data, datatype=datatype)]}
                response = await http.post(INFER, json=body, headers=headers)
                assert response.status_code == 200, response.text
                answer = response.json()
                assert (answer["model_name"], answer["model_version"]) == (MODEL, "1.0.0")
                assert answer["id"] == "req-1"
                outputs = {o["name"]: o for o in answer["outputs"]}
                assert list(outputs) == names
                assert [o["shape"][1:] for o in outputs.values()] == [
                    o["shape"][1:] for o in metadata["outputs"]
                ]
                assert_same_as_v1(outputs, v1.outputs)
                receipt = Receipt.model_validate(answer["parameters"]["modelpact_receipt"])
                await partner.verify_receipts([receipt, v1.receipt])

    run(scenario())
    access = [e for e in entries(ws) if isinstance(e, AccessEntry)]
    assert [e.decision for e in access] == ["allow"] * 3
    assert access[1].output_digest == access[0].output_digest  # the same shaped answer


def assert_same_as_v1(outputs: dict[str, Any], v1: list[dict[str, object]]) -> None:
    rows = len(v1)
    if "label" in outputs:
        assert outputs["label"]["datatype"] == "INT64"
        assert outputs["label"]["shape"] == [rows]
        assert outputs["label"]["data"] == [row["label"] for row in v1]
    elif "scores" in outputs:
        scores: Any = [row["scores"] for row in v1]
        assert outputs["scores"]["datatype"] == "FP64"
        assert outputs["scores"]["shape"] == [rows, len(scores[0])]
        assert outputs["scores"]["parameters"] == {"labels": [s["label"] for s in scores[0]]}
        assert outputs["scores"]["data"] == [s["score"] for row in scores for s in row]
    else:
        picks: Any = [pick for row in v1 for pick in row["top_k"]]  # type: ignore[attr-defined]
        assert outputs["top_k_labels"]["shape"] == outputs["top_k_scores"]["shape"] == [rows, 1]
        assert outputs["top_k_labels"]["data"] == [p["label"] for p in picks]
        assert outputs["top_k_scores"]["data"] == [p["score"] for p in picks]


def test_requested_outputs_and_json_parameters_are_honoured(app: Any, ws: Workspace) -> None:
    async def scenario() -> dict[str, Any]:
        headers = await bearer(app, ws)
        body = {
            "inputs": [tensor(parameters={"binary_data": False})],
            "outputs": [{"name": "scores", "parameters": {"binary_data": False}}],
            "parameters": {"binary_data_output": False, "priority": 1},
        }
        async with raw(app) as http:
            response = await http.post(INFER, json=body, headers=headers)
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

    answer = run(scenario())
    assert [o["name"] for o in answer["outputs"]] == ["scores"]
    assert "id" not in answer  # none was sent


def test_unknown_and_ungranted_models_answer_the_same_404(app: Any, ws: Workspace) -> None:
    """acme's charter grants fraud-detector 1.*; globex alone is granted churn-scorer."""
    registry = ModelRegistry(ws)
    onnx = registry.decrypt(MODEL, "1.0.0")
    registry.add("churn-scorer", onnx, version="1.0.0", source="m.onnx")
    registry.add(MODEL, onnx, version="2.0.0", source="m.onnx")
    registry.rollback(MODEL, to_version="1.0.0")
    scores = {"kind": "scores", "decimals": 2}
    CharterDesk(ws).apply(
        charter_for(ws, "globex", version=2, grants=[grant(scores), grant(scores, "churn-scorer")]),
        source="g2.json",
    )

    async def scenario() -> None:
        with pytest.raises(Denied):  # no session under another partner's charter
            await sdk(app, ws, charter="northwind-globex").open_session()
        acme, globex = await bearer(app, ws), await bearer(app, ws, "globex")
        body = {"inputs": [tensor()]}
        async with raw(app) as http:
            theirs = await http.get("/v2/models/churn-scorer", headers=acme)
            nobodys = await http.get("/v2/models/no-such-model", headers=acme)
            for response, name in ((theirs, "churn-scorer"), (nobodys, "no-such-model")):
                detail = assert_problem(response, 404, "not-found")["detail"]
                assert detail.replace(name, "X") == "model 'X' does not exist"
            for path in ("/v2/models/churn-scorer/ready", "/v2/models/churn-scorer/infer"):
                response = await http.request(
                    "POST" if path.endswith("infer") else "GET", path, json=body, headers=acme
                )
                assert_problem(response, 404, "not-found")
            # A version outside the grant looks like a version that does not exist.
            for version in ("2.0.0", "9.9.9"):
                response = await http.get(f"/v2/models/{MODEL}/versions/{version}", headers=acme)
                detail = assert_problem(response, 404, "not-found")["detail"]
                assert detail == f"model '{MODEL}' has no version '{version}'"
            mine = (await http.get(f"/v2/models/{MODEL}", headers=acme)).json()
            assert mine["versions"] == ["1.0.0"]
            versioned = f"/v2/models/{MODEL}/versions/%s/infer"
            hidden = await http.post(versioned % "2.0.0", json=body, headers=acme)
            assert_problem(hidden, 404, "not-found")
            served = await http.post(versioned % "1.0.0", json=body, headers=acme)
            assert served.json()["model_version"] == "1.0.0"
            allowed = await http.post("/v2/models/churn-scorer/infer", json=body, headers=globex)
            assert allowed.status_code == 200, allowed.text

    run(scenario())
    denied = [e for e in entries(ws) if isinstance(e, AccessEntry) and e.decision == "deny"]
    assert [(e.model, e.version) for e in denied] == [("churn-scorer", "served"), (MODEL, "2.0.0")]
    reason = "no grant of northwind-acme@v1 covers predict on churn-scorer (any version)"
    assert denied[0].reasons == (reason,)  # the log keeps the truth the partner is not told


def test_requests_without_a_valid_session_are_refused_and_recorded(app: Any, ws: Workspace) -> None:
    async def scenario() -> None:
        async with raw(app) as http:
            for headers in ({}, {"Authorization": "Bearer mpt_nope"}):
                for method, path in (("GET", f"/v2/models/{MODEL}"), ("POST", INFER)):
                    response = await http.request(
                        method, path, json={"inputs": [tensor()]}, headers=headers
                    )
                    assert_problem(response, 401, "unauthenticated")
                    assert response.headers["www-authenticate"].startswith("Bearer")

    run(scenario())
    refused = [e for e in entries(ws) if isinstance(e, SessionEntry) and e.decision == "deny"]
    assert len(refused) == 4
    assert not [e for e in entries(ws) if isinstance(e, AccessEntry)]


BINARY = {"Inference-Header-Content-Length": "10"}
SCORES_AS = {"name": "scores", "parameters": {"binary_data": True}}
MALFORMED = {
    "shape-more-rows": {"inputs": [tensor(shape=[len(ROWS) + 1, N_FEATURES])]},
    "shape-rank-1": {"inputs": [tensor(shape=[len(ROWS) * N_FEATURES])]},
    "shape-rank-3": {"inputs": [tensor(shape=[1, 1, len(ROWS) * N_FEATURES])]},
    "no-rows": {"inputs": [tensor(shape=[0, N_FEATURES], data=[])]},
    "nested-short-rows": {"inputs": [tensor([row[:-1] for row in ROWS])]},
    "nested-too-deep": {"inputs": [tensor([[row] for row in ROWS])]},
    "datatype-bool": {"inputs": [tensor(datatype="BOOL")]},
    "datatype-bytes": {"inputs": [tensor(datatype="BYTES")]},
    "datatype-fp16": {"inputs": [tensor(datatype="FP16")]},
    "strings": {"inputs": [tensor(["x"] * len(FLAT))]},
    "booleans": {"inputs": [tensor([True] * len(FLAT))]},
    "fractions-as-int64": {"inputs": [tensor(datatype="INT64")]},
    "int8-out-of-range": {"inputs": [tensor([300] * len(FLAT), datatype="INT8")]},
    "two-inputs": {"inputs": [tensor(), tensor()]},
    "wrong-input-name": {"inputs": [tensor(name="features")]},
    "no-data": {"inputs": [{"name": "input", "shape": [1, N_FEATURES], "datatype": "FP32"}]},
    "no-inputs": {"inputs": []},
    "extra-field": {"inputs": [tensor()], "extra": 1},
    "id-not-a-string": {"inputs": [tensor()], "id": 7},
    "unknown-output": {"inputs": [tensor()], "outputs": [{"name": "label"}]},
    "binary-output": {"inputs": [tensor()], "outputs": [SCORES_AS]},
    "binary-data-output": {"inputs": [tensor()], "parameters": {"binary_data_output": True}},
    "classification": {
        "inputs": [tensor()],
        "outputs": [{"name": "scores", "parameters": {"classification": 2}}],
    },
    "shared-memory": {"inputs": [tensor(parameters={"shared_memory_region": "r"})]},
    "nan": {"inputs": [tensor([float("nan")] * len(FLAT))]},
    "width": {"inputs": [tensor([1.0] * 7, shape=[1, 7])]},
    "batch": {"inputs": [tensor([1.0] * N_FEATURES * 65, shape=[65, N_FEATURES])]},
    "truncated": b'{"inputs": [{"name": "input", "shape": [1, 30]',
}


@pytest.mark.parametrize(
    ("body", "headers"),
    [pytest.param(body, {}, id=name) for name, body in MALFORMED.items()]
    + [
        pytest.param({"inputs": [tensor()]}, BINARY, id="binary-header"),
        pytest.param(
            gzip.compress(json.dumps({"inputs": [tensor()]}).encode()),
            {"Content-Encoding": "gzip"},
            id="gzip",
        ),
    ],
)
def test_malformed_requests_are_400_problems_and_audited(
    app: Any, ws: Workspace, body: Any, headers: dict[str, str]
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def scenario() -> httpx.Response:
        auth = await bearer(app, ws)
        async with raw(app) as http:
            return await http.post(INFER, content=content, headers=auth | headers)

    before = len(entries(ws))
    response = run(scenario())
    assert_problem(response, 400, "invalid-input")
    refused = [e for e in entries(ws)[before:] if isinstance(e, AccessEntry)]
    assert [e.decision for e in refused] == ["deny"]
    assert all(str(FLAT[0]) not in reason for reason in refused[0].reasons)


def test_openapi_has_stable_v2_operation_ids(app: Any) -> None:
    async def scenario() -> dict[str, Any]:
        async with raw(app) as http:
            return (await http.get("/openapi.json")).json()  # type: ignore[no-any-return]

    spec = run(scenario())
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "v2ServerMetadata",
        "v2Live",
        "v2Ready",
        "v2ModelMetadata",
        "v2ModelMetadataVersioned",
        "v2ModelReady",
        "v2ModelReadyVersioned",
        "v2Infer",
        "v2InferVersioned",
    } <= ids
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    schema = infer["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"id", "parameters", "inputs", "outputs"}


def test_tritonclient_over_tls_on_a_real_uvicorn(app: Any, ws: Workspace, tmp_path: Path) -> None:
    import tritonclient.http as http  # in the dev extra; a missing install fails, not skips
    from tritonclient.utils import InferenceServerException

    features = np.asarray(ROWS, dtype=np.float32)
    tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
    with (
        running(app, **tls) as url,
        PartnerClient(
            url,
            partner="acme",
            key=KEYS["acme"],
            charter="northwind-acme",
            purpose="fraud-screening",
            owner_key=ws.owner_verify_key,
            witness_path=tmp_path / "witness.note",
            verify=ws.ca_cert_path,
            clock=ws.clock,
        ) as partner,
    ):
        v1 = partner.predict(MODEL, features.tolist())
        headers = {"Authorization": f"Bearer {partner.open_session().token}"}
        triton = http.InferenceServerClient(
            url=url.removeprefix("https://"),
            ssl=True,
            ssl_options={"ca_certs": str(ws.ca_cert_path)},
        )
        try:
            assert triton.is_server_live() and triton.is_server_ready()
            assert triton.get_server_metadata()["name"] == "modelpact"
            assert triton.is_model_ready(MODEL, headers=headers)
            assert not triton.is_model_ready(MODEL)  # no session: 401
            metadata = triton.get_model_metadata(MODEL, headers=headers)
            assert metadata["inputs"][0]["name"] == "input"

            tensor = http.InferInput("input", list(features.shape), "FP32")
            tensor.set_data_from_numpy(features, binary_data=False)
            wanted = http.InferRequestedOutput("scores", binary_data=False)
            result = triton.infer(
                MODEL, [tensor], outputs=[wanted], request_id="t-1", headers=headers
            )
            scores = result.as_numpy("scores")
            assert scores.shape == (len(ROWS), 2)
            expected: Any = [[s["score"] for s in row["scores"]] for row in v1.outputs]
            assert scores.tolist() == expected
            assert result.get_output("scores")["parameters"] == {"labels": [0, 1]}
            response = result.get_response()
            assert response["id"] == "t-1"
            receipt = Receipt.model_validate(response["parameters"]["modelpact_receipt"])
            partner.verify_receipts([receipt, v1.receipt])

            # tritonclient's defaults ask for binary tensors: refused, and saying why.
            with pytest.raises(InferenceServerException, match="binary") as caught:
                triton.infer(MODEL, [tensor], headers=headers)
            assert caught.value.status() == "400"
            with pytest.raises(InferenceServerException, match="no session token"):
                triton.get_model_metadata(MODEL)
        finally:
            triton.close()
