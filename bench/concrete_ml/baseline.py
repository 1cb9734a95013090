"""Concrete ML baseline: client/server FHE logistic regression on breast cancer (30 features).

Run with the separate venv made by ``setup.sh`` (Concrete ML's pins conflict with the project):

    bash bench/concrete_ml/setup.sh
    /work/venvs/concrete-ml/bin/python bench/concrete_ml/baseline.py --rows 50

The model is StandardScaler + ``concrete.ml.sklearn.LogisticRegression`` (default n_bits=8),
fitted on a fixed stratified split (test_size=0.3, random_state=0).  It is compiled, saved with
``FHEModelDev`` to a temporary directory, then driven as a deployment: ``FHEModelClient`` makes
the keys, quantizes/encrypts/serializes one row at a time, ``FHEModelServer`` runs the circuit on
the serialized ciphertext, and the client deserializes/decrypts/dequantizes the score.  Scaling
is clear client-side preprocessing, timed on its own (``scale_ms``), outside ``encrypt_ms``.

The server deserializes the evaluation keys once, as a long-lived server caching a client's keys
would, so ``run_ms`` is input deserialization + FHE execution + output serialization.  The cost
of the plain ``server.run(bytes, eval_key_bytes)`` call, which deserializes the keys on every
call, is reported as ``run_ms_with_eval_key_deserialize``.

Prints one JSON object on stdout; progress goes to stderr.  Nothing touches the network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Concrete's namespace __init__ uses pkg_resources, and the pinned stack warns loudly.
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from concrete import fhe  # noqa: E402
from concrete.ml.deployment import FHEModelClient, FHEModelDev, FHEModelServer  # noqa: E402
from concrete.ml.sklearn import LogisticRegression  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def use_torchscript_onnx_exporter() -> None:
    """Make ``torch.onnx.export`` default to the TorchScript exporter, as in torch 2.3.1.

    Concrete ML 1.9.0 pins torch==2.3.1, which only exists on PyPI as a CUDA build for
    Linux x86_64; this venv runs torch 2.13.0+cpu instead.  Since torch 2.9 ``export``
    defaults to ``dynamo=True`` (which needs onnxscript and emits a different graph); the
    Hummingbird conversion that Concrete ML uses for linear models calls ``export`` without
    ``dynamo``, so default it back to False, the path torch 2.3.1 took.
    """
    original = torch.onnx.export
    if getattr(original, "_concrete_ml_bench_shim", False):
        return

    def export(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("dynamo", False)
        return original(*args, **kwargs)

    export._concrete_ml_bench_shim = True  # type: ignore[attr-defined]
    torch.onnx.export = export


TEST_SIZE = 0.3
SEED = 0
WARMUP = 3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "mean": round(statistics.fmean(ordered), 4),
        "median": round(statistics.median(ordered), 4),
        "p95": round(p95, 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50, help="test rows timed (after warm-up)")
    parser.add_argument("--n-bits", type=int, default=8, help="Concrete ML n_bits (default 8)")
    args = parser.parse_args()
    use_torchscript_onnx_exporter()
    load_start = os.getloadavg()[0]

    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y
    )
    if args.rows + WARMUP > len(x_test):
        parser.error(f"--rows must be at most {len(x_test) - WARMUP} (test set: {len(x_test)})")

    scaler = StandardScaler().fit(x_train)
    xs_train = scaler.transform(x_train)

    t0 = time.perf_counter()
    model = LogisticRegression(n_bits=args.n_bits)
    model.fit(xs_train, y_train)
    fit_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    circuit = model.compile(xs_train)
    compile_s = time.perf_counter() - t0
    max_bits = circuit.graph.maximum_integer_bit_width()
    log(f"fit {fit_s:.2f}s, compile {compile_s:.2f}s, max integer bit width {max_bits}")

    warm = x_test[:WARMUP]
    rows = x_test[WARMUP : WARMUP + args.rows]
    rows_y = y_test[WARMUP : WARMUP + args.rows]

    with tempfile.TemporaryDirectory(prefix="concrete-ml-bench-") as tmp:
        model_dir = Path(tmp) / "model"
        key_dir = Path(tmp) / "keys"

        t0 = time.perf_counter()
        FHEModelDev(str(model_dir), model).save()
        save_s = time.perf_counter() - t0
        client_zip_bytes = (model_dir / "client.zip").stat().st_size
        server_zip_bytes = (model_dir / "server.zip").stat().st_size

        client = FHEModelClient(str(model_dir), key_dir=str(key_dir))
        t0 = time.perf_counter()
        client.generate_private_and_evaluation_keys(force=True)
        keygen_s = time.perf_counter() - t0
        eval_keys = client.get_serialized_evaluation_keys()
        assert isinstance(eval_keys, bytes)
        log(f"keygen {keygen_s:.2f}s, evaluation keys {len(eval_keys)} bytes")

        t0 = time.perf_counter()
        server = FHEModelServer(str(model_dir))
        server_load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        server_keys = fhe.EvaluationKeys.deserialize(eval_keys)
        eval_key_deserialize_s = time.perf_counter() - t0

        def one(row: np.ndarray) -> dict[str, Any]:
            t0 = time.perf_counter()
            xs = scaler.transform(row.reshape(1, -1))
            t1 = time.perf_counter()
            enc = client.quantize_encrypt_serialize(xs)
            t2 = time.perf_counter()
            out = server.run(enc, server_keys)
            t3 = time.perf_counter()
            proba = client.deserialize_decrypt_dequantize(out)
            t4 = time.perf_counter()
            assert isinstance(enc, bytes)
            assert isinstance(out, bytes)
            return {
                "scale_ms": ms(t1 - t0),
                "encrypt_ms": ms(t2 - t1),
                "run_ms": ms(t3 - t2),
                "decrypt_ms": ms(t4 - t3),
                "input_bytes": len(enc),
                "output_bytes": len(out),
                "pred": int(model.classes_[np.argmax(np.asarray(proba).reshape(-1))]),
            }

        for row in warm:
            one(row)
        log(f"warm-up done ({WARMUP} rows); timing {len(rows)} rows")
        results = [one(row) for row in rows]

        # The plain API call with serialized keys (deserialized on every call), on up to 10 rows.
        with_keys = []
        for row in rows[: min(10, len(rows))]:
            enc = client.quantize_encrypt_serialize(scaler.transform(row.reshape(1, -1)))
            t0 = time.perf_counter()
            server.run(enc, eval_keys)
            with_keys.append(ms(time.perf_counter() - t0))

    xs_rows = scaler.transform(rows)
    fhe_pred = np.array([r["pred"] for r in results])
    clear_pred = model.sklearn_model.predict(xs_rows)  # float scikit-learn model, same fit
    quant_pred = model.predict(xs_rows)  # Concrete ML's quantized model, in the clear

    def series(key: str) -> list[float]:
        return [float(r[key]) for r in results]

    # Headline times are per-row medians: the 2 cores are shared, so a mean takes in whatever
    # else ran; the means, p95, min and max are under "timing_ms".
    encrypt_ms = statistics.median(series("encrypt_ms"))
    run_ms = statistics.median(series("run_ms"))
    decrypt_ms = statistics.median(series("decrypt_ms"))
    input_bytes = series("input_bytes")
    output_bytes = series("output_bytes")
    end_to_end_ms = encrypt_ms + run_ms + decrypt_ms

    result = {
        "concrete_ml_version": version("concrete-ml"),
        "concrete_python_version": version("concrete-python"),
        "torch_version": version("torch"),
        "numpy_version": version("numpy"),
        "scikit_learn_version": version("scikit-learn"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nproc": os.cpu_count(),
        "loadavg_1m_start": round(load_start, 2),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "dataset": "sklearn load_breast_cancer (569 x 30)",
        "split": {"test_size": TEST_SIZE, "random_state": SEED, "stratify": True},
        "model": "StandardScaler + concrete.ml.sklearn.LogisticRegression",
        "n_bits": args.n_bits,
        "max_integer_bit_width": int(max_bits),
        "circuit": {
            "programmable_bootstrap_count": int(circuit.programmable_bootstrap_count),
            "size_of_secret_keys": int(circuit.size_of_secret_keys),
            "size_of_bootstrap_keys": int(circuit.size_of_bootstrap_keys),
            "size_of_keyswitch_keys": int(circuit.size_of_keyswitch_keys),
            "size_of_inputs": int(circuit.size_of_inputs),
            "size_of_outputs": int(circuit.size_of_outputs),
            "global_p_error": float(circuit.global_p_error),
            "complexity": float(circuit.complexity),
        },
        "rows": len(results),
        "warmup_rows": WARMUP,
        "fit_s": round(fit_s, 4),
        "compile_s": round(compile_s, 4),
        "save_s": round(save_s, 4),
        "client_zip_bytes": client_zip_bytes,
        "server_zip_bytes": server_zip_bytes,
        "keygen_s": round(keygen_s, 4),
        "eval_key_bytes": len(eval_keys),
        "server_load_s": round(server_load_s, 4),
        "eval_key_deserialize_ms": round(ms(eval_key_deserialize_s), 4),
        "time_stat": "median per row (ms)",
        "scale_ms": round(statistics.median(series("scale_ms")), 4),
        "encrypt_ms": round(encrypt_ms, 4),
        "run_ms": round(run_ms, 4),
        "decrypt_ms": round(decrypt_ms, 4),
        "run_ms_with_eval_key_deserialize": round(statistics.median(with_keys), 4),
        "input_bytes_per_row": round(statistics.fmean(input_bytes), 1),
        "output_bytes_per_row": round(statistics.fmean(output_bytes), 1),
        "bytes_per_row_total": round(
            statistics.fmean(input_bytes) + statistics.fmean(output_bytes)
        ),
        "rows_per_s_server": round(1000.0 / run_ms, 2),
        "rows_per_s_end_to_end": round(1000.0 / end_to_end_ms, 2),
        "fhe_agreement_with_clear": round(float(np.mean(fhe_pred == clear_pred)), 4),
        "fhe_agreement_with_quantized_clear": round(float(np.mean(fhe_pred == quant_pred)), 4),
        "fhe_accuracy": round(float(np.mean(fhe_pred == rows_y)), 4),
        "clear_accuracy": round(float(np.mean(clear_pred == rows_y)), 4),
        "timing_ms": {
            k: stats(series(k)) for k in ("scale_ms", "encrypt_ms", "run_ms", "decrypt_ms")
        },
        "timed_section_notes": (
            "encrypt_ms = quantize+encrypt+serialize (client); run_ms = deserialize input + FHE "
            "+ serialize output (server, eval keys deserialized once); decrypt_ms = "
            "deserialize+decrypt+dequantize+sigmoid (client); one row per call; scaling excluded"
        ),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
