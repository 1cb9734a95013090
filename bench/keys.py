"""What key rotation and encryption counting cost.

    python -m bench.keys [--partners 1000] [--versions 20] [--seals 5000]

A fresh SQLite workspace gets ``--versions`` versions of the breast-cancer logistic
regression and a data key for each of ``--partners`` partner charters (the KEK-wrapped keys
a rotation re-wraps; ten of the partners also get watermark keys).  Measured, side by side
in one run:

- ``modelpact keys rotate-kek`` as a function call: the whole rotation (begin, passes,
  audit entries, the key file swapped), and per wrapped key;
- one partner record sealed the way the monitor seals a watch state
  (:func:`~modelpact.services.envelopes.seal_for_partner`: the partner's key read and
  unwrapped, the seal counted, a fresh data key wrapped) against the AES-GCM seal alone of
  the same bytes under one data key, and opened again.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from modelpact.crypto import DataKey
from modelpact.runtime import export_sklearn
from modelpact.services import ModelRegistry, PartnerDirectory, init_workspace
from modelpact.services.envelopes import open_for_partner, seal_for_partner
from modelpact.services.kek_rotation import rotate_kek
from modelpact.services.partner_keys import PartnerDataKeys
from modelpact.services.watermarking import WatermarkDesk

FIELDS = ("wrapped_key", "sealed")
RECORD = os.urandom(2048)  # about a watch state's size


def per_call(fn: object, count: int) -> float:
    """Microseconds per call of ``fn()``, the best of three runs of ``count`` calls."""
    assert callable(fn)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partners", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--seals", type=int, default=5000)
    args = parser.parse_args()

    features, labels = load_breast_cancer(return_X_y=True)
    onnx = export_sklearn(LogisticRegression(max_iter=5000).fit(features, labels))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with init_workspace(root / "ws", database_url=f"sqlite:///{root / 'ws.db'}") as ws:
            registry = ModelRegistry(ws)
            for version in range(args.versions):
                registry.add("m", onnx, version=f"1.{version}.0", source="m.onnx")
            keys = PartnerDataKeys(ws)
            for partner in range(args.partners):
                keys.key(f"p{partner}", "c", create=True)
            directory, marks = PartnerDirectory(ws), WatermarkDesk(ws)
            for partner in range(10):
                directory.enrol(f"w{partner}", _public_key())
                marks.keys(f"w{partner}")

            start = time.perf_counter()
            report = rotate_kek(ws)
            rotation = time.perf_counter() - start
            wrapped = report.rewrapped

            data_key = DataKey.generate()
            ad = b"monitor/p0/c/m"
            sealed = seal_for_partner(ws, "p0", "c", RECORD, ad, kind="bench", fields=FIELDS)
            counted = per_call(
                lambda: seal_for_partner(ws, "p0", "c", RECORD, ad, kind="bench", fields=FIELDS),
                args.seals,
            )
            opened = per_call(
                lambda: open_for_partner(
                    ws, "p0", "c", sealed, ad, kind="bench", fields=FIELDS, what="a record"
                ),
                args.seals,
            )
            bare = per_call(lambda: data_key.seal(RECORD, ad), args.seals)
            read = per_call(lambda: keys.current("p0", "c"), args.seals)
            counter = keys.counter("p0", "c", 1)
            count = per_call(lambda: ws.encryptions().spend(counter), args.seals)

    rows = [
        (f"`keys rotate-kek` ({wrapped} keys, {report.passes} passes)", f"{rotation:.2f} s", ""),
        ("per re-wrapped key", f"{rotation / wrapped * 1e6:.0f} µs", ""),
        ("AES-GCM seal alone, 2 KiB, one data key", f"{bare:.1f} µs", "1"),
        ("the partner's key read and unwrapped (`PartnerDataKeys.current`)", f"{read:.1f} µs",
         f"{read / bare:.1f}"),
        ("one seal counted (`EncryptionBudget.spend`)", f"{count:.1f} µs", f"{count / bare:.1f}"),
        ("`seal_for_partner`, 2 KiB (key read, seal counted, fresh data key wrapped)",
         f"{counted:.1f} µs", f"{counted / bare:.1f}"),
        ("`open_for_partner`, 2 KiB", f"{opened:.1f} µs", f"{opened / bare:.1f}"),
    ]  # fmt: skip
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"machine: {machine}")
    print(
        f"wrapped: {args.versions} model versions, {args.partners} partner keys, 10 watermark sets"
    )
    print()
    print("| what | time | ratio |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _public_key() -> str:
    from modelpact.crypto import SigningKey

    return SigningKey.generate().verify_key.encode()


if __name__ == "__main__":
    main()
