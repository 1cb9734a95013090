"""The partner's side of the demo, with the SDK: session, scoring, a refusal, a 429, receipts.

Run by scripts/demo.sh against a gateway it started on 127.0.0.1.  Everything
here is what a partner holds: its private key, the countersigned charter (which
names the owner's public key), the owner's CA certificate and its own data.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from modelpact.charter import SignedCharter
from modelpact.client import PartnerClient
from modelpact.crypto import SigningKey
from modelpact.errors import Denied, QuotaExhausted


def read_holdout(path: Path) -> tuple[list[list[float]], list[int]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [[float(v) for v in row[:-1]] for row in rows], [int(row[-1]) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--charter", type=Path, required=True)
    parser.add_argument("--holdout", type=Path, required=True)
    parser.add_argument("--witness", type=Path, required=True)
    args = parser.parse_args()
    console = Console(highlight=False)
    countersigned = SignedCharter.from_json(args.charter.read_text(), source=str(args.charter))
    charter = countersigned.charter
    key = SigningKey.load(args.key)
    options = {
        "partner": charter.partner.id,
        "key": key,
        "charter": charter.charter,
        "owner_key": charter.owner.verify_key,
        "countersigned": charter,  # each session is attested before any data goes out
        "witness_path": args.witness,
        "verify": args.ca,
    }
    rows, labels = read_holdout(args.holdout)
    batch = charter.limits.max_batch_rows
    summary: list[tuple[str, str]] = []
    receipts = []

    with PartnerClient(args.gateway, purpose=charter.purposes[0], **options) as sdk:
        grant = sdk.open_session()
        console.print(
            f"session for {grant.partner} under {grant.charter}@v{grant.charter_version} "
            f"({grant.purpose}), expires {grant.expires_at:%H:%M:%S} UTC"
        )
        # The session was attested as it opened (countersigned=): what serves it, signed by
        # the owner's workspace key for a fresh nonce, checked against this charter.  Again,
        # to show what it says:
        attested = sdk.attest(countersigned=charter)
        console.print(
            f"attestation ({attested.provider} measurement, not a hardware quote) checked: "
            f"code {attested.measurement.code[:19]}..., charter {attested.charter.charter}"
            f"@v{attested.charter.version}, "
            + ", ".join(f"{m.model} {m.version} {m.artifact[:15]}..." for m in attested.models)
            + f"; models run in: {attested.isolation.get('model_runtime', '?')}"
        )
        summary.append(
            (
                "attestation",
                f"{attested.provider} measurement: signature, nonce, time, charter hold",
            )
        )
        for model in ("cancer-screen", "cancer-screen-mlp"):
            predicted: list[int] = []
            for start in range(0, len(rows), batch):
                result = sdk.predict(model, rows[start : start + batch])
                receipts.append(result.receipt)
                for output in result.outputs:
                    if "label" in output:
                        predicted.append(int(output["label"]))
                    else:  # scores: the class with the highest score
                        best = max(output["scores"], key=lambda s: s["score"])
                        predicted.append(int(best["label"]))
            correct = sum(p == t for p, t in zip(predicted, labels, strict=True))
            first = result.outputs[0]
            summary.append(
                (f"{model} {result.version}", f"{correct}/{len(labels)} correct; shown: {first}")
            )
            console.print(f"scored {len(rows)} held-out rows with {model}")

        # Encrypted: the SDK keeps the CKKS secret key; the gateway scores ciphertexts it
        # cannot read and logs only their digests and the row count.
        started = time.perf_counter()
        hidden = sdk.predict_encrypted("cancer-screen", rows)  # batch packing
        seconds = time.perf_counter() - started
        receipts.extend(hidden.receipts)
        picked = [max(o["scores"], key=lambda s: s["score"])["label"] for o in hidden.outputs]
        correct = sum(int(p) == t for p, t in zip(picked, labels, strict=True))
        one = sdk.predict_encrypted("cancer-screen", rows[:1], packing="rows")
        receipts.extend(one.receipts)
        malignant = one.outputs[0]["scores"][1]["score"]
        summary.append(
            (
                f"cancer-screen {hidden.version}, encrypted (CKKS)",
                f"{correct}/{len(labels)} correct in {len(hidden.receipts)} batch requests, "
                f"{seconds:.2f} s; one row in row packing: P(class 1) = {malignant:.4f}",
            )
        )
        console.print(f"scored {len(rows)} held-out rows encrypted; the gateway saw ciphertexts")

        with PartnerClient(args.gateway, purpose="marketing", **options) as wrong:
            try:
                wrong.predict("cancer-screen", rows[:1])
                summary.append(("wrong purpose (marketing)", "ALLOWED — unexpected"))
            except Denied as refused:
                summary.append(("wrong purpose (marketing)", f"denied: {refused.summary}"))

        limit = charter.limits.requests_per_minute or 0
        hit = None
        for attempt in range(limit + 5):  # bounded: the limit plus a few
            try:
                receipts.append(sdk.predict("cancer-screen", rows[:1]).receipt)
            except QuotaExhausted as slow_down:
                hit = (attempt, slow_down.retry_after)
                break
        if hit is None:
            summary.append(("rate limit", "never reached — unexpected"))
        else:
            summary.append(
                ("rate limit", f"429 after {hit[0]} more requests; retry after {hit[1]:.0f} s")
            )

        started = time.perf_counter()
        checkpoint = sdk.verify_receipts(receipts)
        summary.append(
            (
                "receipts",
                f"{len(receipts)} verified against checkpoint {checkpoint.size} "
                f"in {time.perf_counter() - started:.2f} s (witness: {args.witness.name})",
            )
        )
        sdk.close_session()

    table = Table(title="partner acme, end to end")
    table.add_column("what")
    table.add_column("result")
    for what, result_text in summary:
        table.add_row(what, result_text)
    console.print(table)


if __name__ == "__main__":
    main()
