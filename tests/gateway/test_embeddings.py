"""Keyed embeddings through the gateway: distances kept within a partner, vectors useless
across partners, and a leaked set attributed to the partner whose rotation it carries."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA

from modelpact.cli.main import main
from modelpact.errors import InvalidInput
from modelpact.gateway.app import create_app
from modelpact.marks import KeyedRotation, rotation_test
from modelpact.runtime import export_sklearn
from modelpact.services import CharterDesk, ModelRegistry, Workspace
from modelpact.services.attribution import attribute_embeddings
from modelpact.services.watermarking import WatermarkDesk
from tests.gateway.conftest import charter_for, client, run

ROWS = load_breast_cancer().data


def test_each_partner_gets_its_own_rotation_of_the_same_vectors(
    ws: Workspace, gateway: Any, capsys: Any
) -> None:
    pca = PCA(n_components=8).fit(ROWS)
    ModelRegistry(ws).add("embedder", export_sklearn(pca), version="1.0.0", source="pca.onnx")
    grant = {
        "model": "embedder",
        "versions": "1.*",
        "actions": ["predict"],
        "output": {"kind": "embedding"},
    }
    for partner in ("acme", "globex"):
        CharterDesk(ws).apply(
            charter_for(ws, partner, version=2, grants=[grant]), source=f"{partner}.json"
        )
    app = create_app(ws, gateway=gateway)
    rows = ROWS[:40]

    async def ask(partner: str) -> np.ndarray:
        async with client(app, ws, partner=partner) as sdk:
            prediction = await sdk.predict("embedder", rows)
            return np.array([o["embedding"] for o in prediction.outputs])

    acme, globex = run(ask("acme")), run(ask("globex"))
    original = pca.transform(rows)
    assert acme.shape == globex.shape == original.shape

    def distances(v: np.ndarray) -> np.ndarray:
        return np.linalg.norm(v[:, None, :] - v[None, :, :], axis=2)

    # Within a partner: every distance as the model's own vectors have it (float32 model).
    assert np.allclose(distances(acme), distances(original), rtol=1e-4, atol=1e-2)
    # Across partners: the same inputs, unrelated vectors.
    assert not np.allclose(acme, globex, atol=1.0)
    assert run(ask("acme")).tolist() == acme.tolist()  # the same rotation every time
    # A leak of acme's vectors carries acme's rotation, not globex's.
    rotations = {
        p: KeyedRotation(WatermarkDesk(ws).keys(p).prf, "embedder@1.0.0", 8)
        for p in ("acme", "globex")
    }
    found = {p: rotation_test(p, acme, original, r) for p, r in rotations.items()}
    assert found["acme"].statistic > 0.999 and found["acme"].p_value < 1e-9
    assert found["globex"].p_value > 1e-6
    assert "acme's rotation" in found["acme"].explain()
    # The owner's CLI says the same from two CSV files: the inputs and the leaked vectors.
    np.savetxt(ws.root / "inputs.csv", rows, delimiter=",")
    np.savetxt(ws.root / "leak.csv", acme, delimiter=",")
    code = main([
        "--workspace", str(ws.root), "watermark", "verify-embeddings", "--model", "embedder",
        "--inputs", str(ws.root / "inputs.csv"), "--vectors", str(ws.root / "leak.csv"),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "Named: the vectors carry acme's rotation" in printed
    assert "globex's rotation" not in printed
    # A leak of the model's own vectors (no partner's rotation) names nobody; a leak from
    # another model's width is one clear error.
    innocent = attribute_embeddings(ws, rows, original, model="embedder")
    assert innocent.named == [] and innocent.partners == 2
    with pytest.raises(InvalidInput, match="embeds in 8 dimensions"):
        attribute_embeddings(ws, rows, acme[:, :4], model="embedder")
