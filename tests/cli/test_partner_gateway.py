"""The partner's side of the gateway through the CLI: session, predict (resumable), receipts.

Everything runs against the gateway of ``tests/gateway`` served by a real uvicorn over
TLS on 127.0.0.1, through a :class:`Gate` that counts requests and can hold predictions.
The partner commands run in process (``modelpact.cli.main.main``), except where a
process must really die, or show it imports no server package: there a child
interpreter runs them with every server package made unimportable.
"""

# ruff: noqa: F811 - the gateway's fixtures are imported by name and requested as arguments

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import signal
import ssl
import stat
import subprocess
import sys
import textwrap
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry, SessionEntry, decode_entry
from modelpact.cli.partner import MAX_WAITS, _send
from modelpact.cli.partner_profile import (
    PartnerProfile,
    feature_rows,
    output_csv,
    scan_features,
    state_path,
)
from modelpact.client import PartnerClient
from modelpact.errors import InsecureKeyFile, QuotaExhausted
from modelpact.services import CharterDesk, Workspace
from tests.cli.conftest import Cli, Result, assert_one_line_error
from tests.gateway.conftest import (  # noqa: F401 - fixtures are used by name
    KEYS,
    MODEL,
    app,
    charter_for,
    clock,
    gateway,
    onnx_model,
    running,
    ws,
)

ROWS: list[list[float]] = load_breast_cancer().data[:200].tolist()
PURPOSE = "fraud-screening"

#: What a partner's plain ``pip install modelpact`` lacks, by module prefix.
SERVER_MODULES = [
    "sqlalchemy",
    "alembic",
    "psycopg",
    "cedarpy",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "sklearn",
    "numpy",
    "model_signing",
    "OpenSSL",
    "fastapi",
    "starlette",
    "uvicorn",
    "limits",
    "modelpact.services",
    "modelpact.store",
    "modelpact.policy",
    "modelpact.runtime",
    "modelpact.gateway",
]

CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = json.loads(sys.argv[1])

    def blocked(name):
        return any(name == b or name.startswith(b + ".") for b in BLOCKED)

    class PartnerInstall(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                raise ImportError(f"No module named {name!r} (partner install)", name=name)
            return None

    sys.meta_path.insert(0, PartnerInstall())
    from modelpact.cli.main import main

    code = main(sys.argv[2:])
    print("LEAKED", json.dumps(sorted(m for m in sys.modules if blocked(m))))
    sys.exit(code)
    """
)


class Gate:
    """An ASGI wrapper: counts requests, and can hold every prediction after the first few.

    A held prediction never reaches the gateway; once released it is answered 503.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0
        self.predictions = 0
        self.hold_after: int | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
            if scope["path"].endswith("/predict"):
                self.predictions += 1
                if self.hold_after is not None and self.predictions > self.hold_after:
                    self.holding.set()
                    while not self.release.is_set():
                        await asyncio.sleep(0.01)
                    await send({"type": "http.response.start", "status": 503, "headers": []})
                    await send({"type": "http.response.body", "body": b""})
                    return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Partner:
    url: str
    root: Path
    key: Path
    charter: Path
    ca: Path
    gate: Gate

    @property
    def profile(self) -> Path:
        return self.root / "modelpact-partner.toml"

    def session_args(self, **changes: str | Path) -> list[str | Path]:
        options: dict[str, str | Path] = {
            "--gateway": self.url,
            "--key": self.key,
            "--charter": self.charter,
            "--purpose": PURPOSE,
            "--ca": self.ca,
            "--profile": self.profile,
        }
        options |= {f"--{name}": value for name, value in changes.items()}
        return ["partner", "session", *(x for pair in options.items() for x in pair)]

    def predict_args(self, rows: Path, out: Path, *extra: str) -> list[str | Path]:
        return [
            "partner",
            "predict",
            "--profile",
            self.profile,
            "--model",
            MODEL,
            "--input",
            rows,
            "--out",
            out,
            *extra,
        ]


@pytest.fixture
def partner(app: Any, ws: Workspace, tmp_path: Path) -> Iterator[Partner]:
    """Acme's key and countersigned charter on disk, and the gateway serving over TLS."""
    key = tmp_path / "acme.key"
    KEYS["acme"].save(key)
    charter = tmp_path / "northwind-acme.signed.json"
    charter.write_text(charter_for(ws, "acme"))
    gate = Gate(app)
    tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
    with running(gate, **tls) as url:
        try:
            yield Partner(url, tmp_path, key, charter, ws.ca_cert_path, gate)
        finally:
            gate.release.set()


def write_rows(path: Path, rows: list[list[float]], *, header: bool = True) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow([f"feature_{i}" for i in range(len(rows[0]))])
        writer.writerows([repr(value) for value in row] for row in rows)
    return path


def read_output(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


def audit(ws: Workspace) -> list[Any]:
    with ws.store.unit_of_work() as uow:
        return [decode_entry(r.entry) for r in uow.audit.entries(0, uow.audit.size())]


def allowed_rows(ws: Workspace) -> list[int]:
    """Rows of every allowed prediction, in log order: what the partner really sent."""
    return [e.rows for e in audit(ws) if isinstance(e, AccessEntry) and e.decision == "allow"]


def sdk_scores(partner: Partner, ws: Workspace, rows: list[list[float]]) -> list[list[float]]:
    """The v1 SDK's answers for ``rows``, in batches of 64: each row's class scores."""
    with PartnerClient(
        partner.url,
        partner="acme",
        key=KEYS["acme"],
        charter="northwind-acme",
        purpose=PURPOSE,
        owner_key=ws.owner_verify_key,
        verify=partner.ca,
    ) as sdk:
        outputs = [
            o for i in range(0, len(rows), 64) for o in sdk.predict(MODEL, rows[i : i + 64]).outputs
        ]
        sdk.close_session()
    return [[float(s["score"]) for s in o["scores"]] for o in outputs]


def opened(cli: Cli, partner: Partner) -> Result:
    result = cli(*partner.session_args())
    assert result.code == 0, result.err
    return result


def child(cwd: Path, *args: str | Path) -> subprocess.Popen[str]:
    """The CLI in a child interpreter that cannot import any server package."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(SERVER_MODULES), *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


# -- session -------------------------------------------------------------------------------------


def test_session_proves_the_setup_and_writes_a_private_profile(
    cli: Cli, partner: Partner, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(partner.root)
    args = [a for a in partner.session_args() if a not in ("--profile", partner.profile)]
    result = cli(*args)
    assert result.code == 0, result.err
    assert "charter northwind-acme v1" in result.out and "expires" in result.out

    profile = partner.root / "modelpact-partner.toml"  # the default, in the current folder
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    settings = tomllib.loads(profile.read_text())
    assert settings == {
        "gateway": partner.url,
        "key": str(partner.key),
        "charter": str(partner.charter),
        "purpose": PURPOSE,
        "ca": str(partner.ca),
        "log_origin": ws.log_origin,
        "witness": str(partner.root / "modelpact-partner.witness"),
    }
    assert "mpt_" not in profile.read_text()  # no session token is kept
    assert (partner.root / "modelpact-partner.witness").read_text().startswith(ws.log_origin)
    sessions = [e for e in audit(ws) if isinstance(e, SessionEntry)]
    assert [(e.action, e.decision) for e in sessions] == [
        ("open", "allow"),
        ("attest", "allow"),  # checked before anything else was sent
        ("close", "allow"),
    ]


def test_a_wrong_key_or_purpose_is_refused_before_any_request(
    cli: Cli, partner: Partner, tmp_path: Path
) -> None:
    globex = tmp_path / "globex.key"
    KEYS["globex"].save(globex)
    wrong_key = cli(*partner.session_args(key=globex))
    assert_one_line_error(wrong_key, "is not the partner key of northwind-acme@v1")
    wrong_purpose = cli(*partner.session_args(purpose="marketing"))
    assert_one_line_error(wrong_purpose, "'marketing' is not one of northwind-acme@v1")
    assert partner.gate.requests == 0
    assert not partner.profile.exists()


def test_a_profile_others_can_read_is_refused(cli: Cli, partner: Partner, tmp_path: Path) -> None:
    opened(cli, partner)
    partner.profile.chmod(0o644)
    with pytest.raises(InsecureKeyFile):
        PartnerProfile.load(partner.profile)
    rows = write_rows(tmp_path / "rows.csv", ROWS[:3])
    result = cli(*partner.predict_args(rows, tmp_path / "preds.csv"))
    assert_one_line_error(result, "chmod 600")


@given(st.text())
def test_profile_strings_survive_toml(text: str) -> None:
    profile = PartnerProfile(
        gateway=text or "x",
        key=Path("/k"),
        charter=Path("/c"),
        purpose=text or "p",
        log_origin="o",
        witness=Path("/w"),
    )
    assert PartnerProfile.model_validate(tomllib.loads(profile.to_toml())) == profile


# -- predict and verify-receipts -----------------------------------------------------------------


def test_predict_agrees_with_the_sdk_and_its_receipts_verify(
    cli: Cli, partner: Partner, ws: Workspace, tmp_path: Path
) -> None:
    opened(cli, partner)
    rows = write_rows(tmp_path / "rows.csv", ROWS)
    preds = tmp_path / "preds.csv"
    result = cli(*partner.predict_args(rows, preds, "--batch", "64"))
    assert result.code == 0, result.err
    assert "200 rows of fraud-detector 1.0.0 (4 batches" in result.out
    assert allowed_rows(ws) == [64, 64, 64, 8]

    header, lines = read_output(preds)
    assert header == ["row", "score_0", "score_1"]  # the grant: scores, 2 decimals
    assert [int(line[0]) for line in lines] == list(range(1, 201))
    assert [[float(v) for v in line[1:]] for line in lines] == sdk_scores(partner, ws, ROWS)

    receipts = (tmp_path / "preds.csv.receipts.jsonl").read_text().splitlines()
    assert [json.loads(r)["first_row"] for r in receipts] == [1, 65, 129, 193]
    verified = cli(
        "partner", "verify-receipts", "--profile", partner.profile, f"{preds}.receipts.jsonl"
    )
    assert verified.code == 0, verified.err
    assert verified.out.startswith("4 receipts verified against checkpoint of size ")

    again = cli(*partner.predict_args(rows, preds))
    assert again.code == 0 and "nothing sent" in again.out
    assert len(allowed_rows(ws)) == 4 + 4  # the SDK's four, and none more from the CLI


def test_a_receipt_with_an_altered_leaf_hash_fails_verification(
    cli: Cli, partner: Partner, tmp_path: Path
) -> None:
    opened(cli, partner)
    rows = write_rows(tmp_path / "rows.csv", ROWS[:100])
    preds = tmp_path / "preds.csv"
    assert cli(*partner.predict_args(rows, preds, "--batch", "40")).code == 0
    path = tmp_path / "preds.csv.receipts.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    leaf = record["receipt"]["leaf_hash"]
    record["receipt"]["leaf_hash"] = ("B" if leaf[0] == "A" else "A") + leaf[1:]
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    result = cli("partner", "verify-receipts", "--profile", partner.profile, path)
    assert_one_line_error(result, f"{path} line 2: ", "is not the one the receipt names")


def test_a_run_stopped_by_the_quota_resumes_without_sending_a_row_twice(
    cli: Cli, partner: Partner, ws: Workspace, tmp_path: Path
) -> None:
    now = ws.clock()
    if (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now) < (
        timedelta(minutes=5)
    ):
        pytest.skip("the daily quota renews within minutes: its 429 could be waited out")
    opened(cli, partner)
    v2 = charter_for(ws, "acme", version=2, limits__daily_quota=100)
    CharterDesk(ws).apply(v2, source="v2.json")
    rows = write_rows(tmp_path / "rows.csv", ROWS)
    preds = tmp_path / "preds.csv"

    # The profile still holds v1: the session's attestation names v2, so nothing is sent.
    stale = cli(*partner.predict_args(rows, preds, "--batch", "64"))
    assert_one_line_error(stale, "northwind-acme@v2", "not the charter this partner countersigned")
    assert (
        not state_path(preds).exists()
        or json.loads(state_path(preds).read_text())["rows_done"] == 0
    )
    partner.charter.write_text(v2)  # the partner's copy of the v2 it countersigned

    stopped = cli(*partner.predict_args(rows, preds, "--batch", "64"))
    assert_one_line_error(stopped, "daily quota", "64 of 200 rows done", "run the same command")
    assert json.loads(state_path(preds).read_text())["rows_done"] == 64
    assert len(read_output(preds)[1]) == 64

    # A crash after the next batch's rows were written but before the state recorded them,
    # and in the middle of a receipt's line:
    with preds.open("a") as handle:
        handle.write("65,0.5,0.5\n66,0.")
    with (tmp_path / "preds.csv.receipts.jsonl").open("a") as handle:
        handle.write('{"first_row": 65, "rec')

    original = rows.read_bytes()
    write_rows(rows, [*ROWS[:199], [0.0] * 30])
    changed = cli(*partner.predict_args(rows, preds))
    assert_one_line_error(changed, "is not the input the run into", "restore that input")
    rows.write_bytes(original)

    v3 = charter_for(ws, "acme", version=3, limits__daily_quota=10_000)
    CharterDesk(ws).apply(v3, source="v3.json")
    partner.charter.write_text(v3)
    resumed = cli(*partner.predict_args(rows, preds, "--batch", "64"))
    assert resumed.code == 0, resumed.err
    assert "resumed after row 64" in resumed.out

    assert allowed_rows(ws) == [64, 64, 64, 8]  # each row sent and answered once
    denied = [e for e in audit(ws) if isinstance(e, AccessEntry) and e.decision == "deny"]
    assert len(denied) == 1  # the refused batch
    _, lines = read_output(preds)
    assert [int(line[0]) for line in lines] == list(range(1, 201))
    receipts = (tmp_path / "preds.csv.receipts.jsonl").read_text().splitlines()
    assert [json.loads(r)["first_row"] for r in receipts] == [1, 65, 129, 193]
    verified = cli(
        "partner", "verify-receipts", "--profile", partner.profile, f"{preds}.receipts.jsonl"
    )
    assert verified.code == 0, verified.err


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_a_stopped_run_resumes_and_the_commands_need_no_server(
    partner: Partner, ws: Workspace, tmp_path: Path, stop: signal.Signals
) -> None:
    code, out, err = finished(child(tmp_path, *partner.session_args()))
    assert code == 0, err
    assert "LEAKED []" in out
    rows = write_rows(tmp_path / "rows.csv", ROWS)
    preds = tmp_path / "preds.csv"

    partner.gate.hold_after = 1  # the second batch hangs in flight
    first = child(tmp_path, *partner.predict_args(rows, preds, "--batch", "64"))
    try:
        assert partner.gate.holding.wait(timeout=60), "the second batch never came"
        assert json.loads(state_path(preds).read_text())["rows_done"] == 64
    finally:
        first.send_signal(stop)
        code, _, err = finished(first)
    if stop == signal.SIGINT:  # Ctrl-C: one line that says how to go on
        assert code == 1
        assert err.strip().splitlines() == [
            "modelpact: error: interrupted after 64 of 200 rows "
            "— run the same command again to resume"
        ]
    else:
        assert code == -signal.SIGKILL
    partner.gate.hold_after = None
    partner.gate.release.set()

    code, out, err = finished(child(tmp_path, *partner.predict_args(rows, preds, "--batch", "64")))
    assert code == 0, err
    assert "resumed after row 64" in out and "LEAKED []" in out
    assert allowed_rows(ws) == [64, 64, 64, 8]
    _, lines = read_output(preds)
    assert [int(line[0]) for line in lines] == list(range(1, 201))

    code, out, err = finished(
        child(
            tmp_path,
            "partner",
            "verify-receipts",
            "--profile",
            partner.profile,
            f"{preds}.receipts.jsonl",
        )
    )
    assert code == 0, err
    assert "4 receipts verified" in out and "LEAKED []" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n1,2,3\n4,5\n", "line 3: 2 values, expected 3"),
        ("1,2,3\n4,5,6\n7,x,9\n", "line 3, column 2: 'x' is not a number"),
        ("1,2,c\n4,5,6\n", "line 1, column 3: 'c' is not a number"),
        ("a,b\n1,2\n\n3,nan\n", "line 4, column 2: nan is not finite"),
        ("a,b,c\n", "holds no rows of features"),
        ('1,2\n3,"4\n', "line 2: unexpected end of data"),
    ],
    ids=["width", "not-a-number", "mixed-first-row", "nan", "header-only", "open-quote"],
)
def test_a_malformed_csv_is_a_one_line_error_naming_the_line(
    cli: Cli, partner: Partner, tmp_path: Path, text: str, message: str
) -> None:
    opened(cli, partner)
    rows = tmp_path / "rows.csv"
    rows.write_text(text)
    preds = tmp_path / "preds.csv"
    result = cli(*partner.predict_args(rows, preds))
    assert_one_line_error(result, str(rows), message)
    assert partner.gate.predictions == 0
    assert not preds.exists() and not state_path(preds).exists()


def test_batch_over_the_charter_limit_and_a_foreign_output_are_refused(
    cli: Cli, partner: Partner, tmp_path: Path
) -> None:
    opened(cli, partner)
    rows = write_rows(tmp_path / "rows.csv", ROWS[:3])
    preds = tmp_path / "preds.csv"
    too_big = cli(*partner.predict_args(rows, preds, "--batch", "65"))
    assert_one_line_error(too_big, "over the charter's max_batch_rows of 64")
    preds.write_text("someone else's file\n")
    foreign = cli(*partner.predict_args(rows, preds))
    assert_one_line_error(foreign, "already exists and is not a run in progress")
    assert preds.read_text() == "someone else's file\n"
    assert partner.gate.predictions == 0


def test_a_short_429_is_waited_out_and_a_long_one_stops_the_run() -> None:
    class Refusing:
        def __init__(self, *waits: float | None) -> None:
            self.waits = list(waits)
            self.calls = 0

        def predict(self, model: str, rows: Any, *, version: str | None) -> str:
            self.calls += 1
            if self.waits:
                raise QuotaExhausted("rate limit reached", retry_after=self.waits.pop(0))
            return "answer"

    notes = Console(file=io.StringIO())
    send = functools.partial(
        _send, model=MODEL, rows=[[1.0]], version=None, first_row=1, notes=notes
    )
    short = Refusing(0.01, 0.01)
    assert send(short) == "answer" and short.calls == 3
    assert "waiting 0.0 s, then sending rows 1-1 again" in notes.file.getvalue()  # type: ignore[attr-defined]
    for waits, calls in (((61.0,), 1), ((None,), 1), ((0.01,) * 9, MAX_WAITS + 1)):
        refusing = Refusing(*waits)
        with pytest.raises(QuotaExhausted):
            send(refusing)
        assert refusing.calls == calls


@pytest.mark.parametrize(
    ("first_line", "rows"),
    [("a,b,c", 2), ("0,1,2", 2), ("", 2), ("7,8,9", 3)],
    ids=["names", "pandas-default-names", "no-header", "numbers"],
)
def test_a_header_is_detected(tmp_path: Path, first_line: str, rows: int) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"{first_line}\n1,2,3\n4,5,6\n")
    assert scan_features(path).rows == rows
    assert list(feature_rows(path))[-1] == [4.0, 5.0, 6.0]


# -- the output format ---------------------------------------------------------------------------


def test_outputs_flatten_by_kind() -> None:
    pair = [{"label": "yes", "score": 0.75}, {"label": "no", "score": 0.25}]
    cases = [
        ([{"label": 1}], ["label"], ["1"]),
        ([{"value": 2.5}], ["value"], ["2.5"]),
        (
            [{"top_k": pair}],
            ["label_1", "score_1", "label_2", "score_2"],
            ["yes", "0.75", "no", "0.25"],
        ),
        ([{"scores": pair}], ["score_yes", "score_no"], ["0.75", "0.25"]),
        ([{"embedding": [1, 2]}], ["output"], ['{"embedding":[1,2]}']),
    ]
    for outputs, columns, cells in cases:
        got_columns, text = output_csv(outputs, 7, None)
        assert got_columns == columns
        assert list(csv.reader(text.splitlines())) == [["row", *columns], ["7", *cells]]
    _, text = output_csv([{"label": 0}], 8, ["label"])  # a later batch: no header
    assert text == "8,0\n"


def test_predict_encrypted_writes_the_models_scores_in_both_packings(
    cli: Cli, partner: Partner, ws: Workspace, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    grant = {
        "model": MODEL,
        "versions": "1.*",
        "actions": ["predict", "predict_encrypted"],
        "output": {"kind": "label"},
    }
    envelope = charter_for(ws, "acme", version=2, grants=[grant])
    CharterDesk(ws).apply(envelope, source="v2.json")
    partner.charter.write_text(envelope)
    opened(cli, partner)
    features, labels = load_breast_cancer(return_X_y=True)
    served = LogisticRegression(max_iter=5000).fit(features, labels)  # conftest's model
    for packing, count, batches in (("batch", 100, 2), ("rows", 20, 2)):
        rows = write_rows(tmp_path / f"{packing}.csv", ROWS[:count])
        preds = tmp_path / f"{packing}.preds.csv"
        result = cli(*partner.predict_args(rows, preds, "--encrypted", "--packing", packing))
        assert result.code == 0, result.err
        assert f"encrypted ({packing} packing) ({batches} batches" in result.out
        header, lines = read_output(preds)
        assert header == ["row", "score_0", "score_1"]  # scores, though the grant says label
        found = [[float(v) for v in line[1:]] for line in lines]
        assert abs(served.predict_proba(ROWS[:count]) - found).max() < 1e-3
        verified = cli(
            "partner", "verify-receipts", "--profile", partner.profile, f"{preds}.receipts.jsonl"
        )
        assert verified.code == 0, verified.err
    scored = [e for e in audit(ws) if isinstance(e, AccessEntry)]
    assert [(e.action, e.rows) for e in scored] == [("predict_encrypted", n) for n in
                                                    (64, 36, 16, 4)]  # fmt: skip
    bad = cli(*partner.predict_args(rows, tmp_path / "x.csv", "--encrypted", "--packing", "diag"))
    assert bad.code != 0


def test_dashboard_links_from_the_cli_sign_owner_and_partner_in(
    cli: Cli, partner: Partner, ws: Workspace
) -> None:
    import httpx

    opened(cli, partner)
    printed = cli("partner", "dashboard", "--profile", partner.profile)
    assert printed.code == 0, printed.err
    link = printed.out.splitlines()[0]
    assert link.startswith(f"{partner.url}/dashboard/signin?link=")
    owner = cli("--workspace", ws.root, "dashboard", "link", "--url", partner.url)
    assert owner.code == 0, owner.err
    trust = ssl.create_default_context(cafile=str(partner.ca))
    for url, lands in ((link, "/dashboard/partners/acme"), (owner.out.split()[0], "/dashboard")):
        with httpx.Client(verify=trust, follow_redirects=True) as web:
            page = web.get(url)
            assert page.status_code == 200 and page.url.path == lands
            assert web.get(url).status_code == 403  # one use
    bad = cli("--workspace", ws.root, "dashboard", "link", "--minutes", "0")
    assert bad.code != 0
