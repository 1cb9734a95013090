"""``modelpact mpc ...``: joint (MPC) runs between owner, partner and a compute party.

Each of the three parties runs ``modelpact mpc join`` with its role; they meet over mutual
TLS at the addresses in ``--peers`` (owner, partner, compute, in that order).  The
certificate commands make what MPyC reads: a CA every party trusts (``mpyc_ca.crt``) and
one certificate and key per party (``party_<i>.crt``, ``party_<i>.key``).  ``certs``
makes all of it in one folder, for a run on one host; between organisations each party
keeps its own key (``request``) and the agreed CA signs the request (``ca``, ``issue``).
"""

from __future__ import annotations

import contextlib
import csv
import io
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out, read_text, write_text_atomic
from modelpact.errors import AlreadyExists, InvalidInput, NotFound

if TYPE_CHECKING:
    from modelpact.services.joint import Network, Scores, Task

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    help="Joint (MPC) scoring and evaluation with a third compute party, and its certificates.",
)

#: Rows files read at most this large (a joint run takes at most 100,000 rows).
MAX_ROWS_FILE = 256 * 1024 * 1024


class RoleName(StrEnum):
    OWNER = "owner"
    PARTNER = "partner"
    COMPUTE = "compute"


class TaskName(StrEnum):
    SCORE = "score"
    EVALUATE = "evaluate"


_INDEX = {RoleName.OWNER: 0, RoleName.PARTNER: 1, RoleName.COMPUTE: 2}


@app.command("join")
def join(
    ctx: typer.Context,
    role: Annotated[RoleName, typer.Option(help="This party's role (its MPyC index: 0, 1, 2).")],
    peers: Annotated[
        str,
        typer.Option(help="host:port of owner,partner,compute, in that order (the same for all)."),
    ],
    tls_dir: Annotated[
        Path,
        typer.Option(help="Folder with mpyc_ca.crt and this party's party_<i>.crt and .key."),
    ],
    task: Annotated[TaskName, typer.Option(help="score, or evaluate on labelled rows.")],
    charter: Annotated[
        str | None, typer.Option(help="(owner, partner) The charter the run is under.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="(owner) The model to run.")] = None,
    version: Annotated[
        str | None, typer.Option(help="(owner) Its version (default: the served one).")
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(help="(owner) The charter purpose (needed if the charter names several)."),
    ] = None,
    rows: Annotated[
        Path | None,
        typer.Option(help="(partner) CSV with a header; every column but --labels a feature."),
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="(partner, evaluate) The column holding each row's class.")
    ] = None,
    metrics: Annotated[
        str, typer.Option(help="(partner, evaluate) What to reveal: accuracy, auc, or both.")
    ] = "accuracy",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="(partner, score) Where to write the outputs CSV.")
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(help="Address to accept peers on (default: this party's host in --peers)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds the whole run may take, then it stops.")
    ] = 600.0,
    connect_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the other parties to connect.")
    ] = 60.0,
) -> None:
    """Take part in one joint run: score the partner's rows (only the partner sees the
    scores) or evaluate the model on them (only the charter's agreed metrics are revealed,
    to both sides).  The owner's side checks the charter and audits the run."""
    from modelpact.services.joint import Network, Task

    network = Network.parse(
        peers, tls_dir, timeout=timeout, connect_timeout=connect_timeout, listen=listen
    )
    chosen = Task(task.value)
    given = {"--charter": charter, "--model": model, "--version": version,
             "--purpose": purpose, "--rows": rows, "--labels": labels,
             "--out": out_file}  # fmt: skip
    allowed = {
        RoleName.OWNER: {"--charter", "--model", "--version", "--purpose"},
        RoleName.PARTNER: {"--charter", "--rows", "--labels", "--out"},
        RoleName.COMPUTE: set(),
    }[role]
    extra = sorted(
        name for name, value in given.items() if value is not None and name not in allowed
    )
    if extra:
        raise InvalidInput(f"{', '.join(extra)} do(es) not apply to the {role.value}")
    if role is RoleName.OWNER:
        _join_owner(ctx, network, chosen, charter=charter, model=model, version=version,
                    purpose=purpose)  # fmt: skip
    elif role is RoleName.PARTNER:
        _join_partner(network, chosen, charter=charter, rows=rows, labels=labels,
                      metrics=metrics, out_file=out_file)  # fmt: skip
    else:
        from modelpact.services.joint import join_as_compute

        count = join_as_compute(network, task=chosen)
        out().print(f"joint {chosen.value} done: {count} rows; the compute party learns no more")


def _required(value: str | Path | None, option: str, role: str) -> None:
    if value is None:
        raise InvalidInput(f"the {role} needs {option}")


def _join_owner(
    ctx: typer.Context,
    network: Network,
    task: Task,
    *,
    charter: str | None,
    model: str | None,
    version: str | None,
    purpose: str | None,
) -> None:
    from modelpact.services.joint import JointDesk

    _required(charter, "--charter", "owner")
    _required(model, "--model", "owner")
    assert charter is not None and model is not None
    with open_ws(ctx) as ws:
        report = JointDesk(ws).run(
            network, charter=charter, model=model, version=version, task=task, purpose=purpose
        )
    console = out()
    console.print(
        f"joint {task.value} of {report.model} {report.version} for {report.partner} under "
        f"{report.charter}: {report.rows} rows (audit entry {report.audit_index}, run "
        f"{report.transcript})"
    )
    if report.metrics:
        console.print(_metrics_table(report.metrics))


def _join_partner(
    network: Network,
    task: Task,
    *,
    charter: str | None,
    rows: Path | None,
    labels: str | None,
    metrics: str,
    out_file: Path | None,
) -> None:
    from modelpact.charter.model import JointMetric
    from modelpact.services.joint import Scores, Task, join_as_partner, parse_rows

    _required(charter, "--charter", "partner")
    _required(rows, "--rows", "partner")
    assert charter is not None and rows is not None
    if task is Task.SCORE:
        _required(out_file, "--out", "partner")
        if labels is not None:
            raise InvalidInput("--labels applies to evaluate only")
    elif out_file is not None:
        raise InvalidInput("--out applies to score only: an evaluation reveals only metrics")
    if task is Task.EVALUATE and labels is None:
        raise InvalidInput("evaluate needs --labels COLUMN")
    try:
        asked = tuple(JointMetric(m.strip()) for m in metrics.split(",") if m.strip())
    except ValueError:
        raise InvalidInput(
            f"--metrics takes {', '.join(m.value for m in JointMetric)}, comma-separated"
        ) from None
    parsed = parse_rows(read_text(rows, what="rows file", limit=MAX_ROWS_FILE), label_column=labels)
    if out_file is not None:
        _writable(out_file)
    found = join_as_partner(network, charter=charter, task=task, rows=parsed, metrics=asked)
    console = out()
    if isinstance(found, Scores):
        assert out_file is not None
        write_text_atomic(out_file, _outputs_csv(found))
        console.print(
            f"scored {len(found.scores)} rows with {found.model} {found.version} under "
            f"{found.charter}; outputs written to {out_file} (run {found.transcript})"
        )
        return
    console.print(
        f"evaluated {found.model} {found.version} under {found.charter} on {found.rows} "
        f"rows (run {found.transcript})"
    )
    console.print(_metrics_table(found.metrics))


def _writable(path: Path) -> None:
    """Fail before the run, not after it, when the outputs could not be written."""
    if path.is_dir():
        raise InvalidInput(f"--out {path} is a folder")
    if not path.parent.is_dir():
        raise NotFound(f"the folder of --out {path} does not exist")


def _outputs_csv(found: Scores) -> str:
    """A header, then per row: the predicted label and each class's probability, or the
    regressor's values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    outputs = found.outputs()
    if found.labels:
        writer.writerow(["label", *(f"p_{label}" for label in found.labels)])
        for row in outputs:
            best = max(range(len(row)), key=row.__getitem__)
            writer.writerow([found.labels[best], *(f"{p:.6g}" for p in row)])
    else:
        width = len(outputs[0]) if outputs else 1
        writer.writerow(["value"] if width == 1 else [f"value_{i}" for i in range(width)])
        writer.writerows([[f"{v:.9g}" for v in row] for row in outputs])
    return buffer.getvalue()


def _metrics_table(metrics: dict[str, float]) -> Table:
    table = Table("metric", "value")
    for name, value in sorted(metrics.items()):
        table.add_row(name, f"{value:.6f}")
    return table


# ---------------------------------------------------------------------------- certificates


def _write_new(files: dict[Path, tuple[bytes, bool]]) -> None:
    """Write every file or none: each must not exist yet; private ones are created 0600."""
    from modelpact.crypto import write_private_file

    for path in files:
        if path.exists():
            raise AlreadyExists(f"{path} already exists", hint="move it away first")
    written: list[Path] = []
    try:
        for path, (data, private) in files.items():
            if private:
                write_private_file(path, data)
            else:
                write_text_atomic(path, data.decode("ascii"))
            written.append(path)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def _folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path} is not a folder")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@app.command("certs")
def certs(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to create the files in.")],
    days: Annotated[int, typer.Option(min=1, max=825, help="Certificates' lifetime.")] = 30,
) -> None:
    """For a run on ONE host (a trial, tests, a demo): a new CA and all three parties'
    certificates and keys in one folder.  Between organisations, do not share keys: use
    'request', 'ca' and 'issue' instead."""
    from modelpact.crypto.tls import create_ca, issue_party_cert, party_request

    folder = _folder(out_dir)
    now = datetime.now(UTC)
    ca, ca_key = create_ca("modelpact joint-run CA (local)", now=now, days=days)
    files: dict[Path, tuple[bytes, bool]] = {folder / "mpyc_ca.crt": (ca, False)}
    for index in range(3):
        request, key = party_request(index)
        cert = issue_party_cert(ca, ca_key, request, index=index, now=now, days=days)
        files[folder / f"party_{index}.crt"] = (cert, False)
        files[folder / f"party_{index}.key"] = (key, True)
    _write_new(files)
    out().print(
        f"wrote a CA and the certificates and keys of parties 0, 1 and 2 to {folder} "
        "(one host only: the CA key was not kept)"
    )


@app.command("ca")
def make_ca(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for mpyc_ca.crt and .key.")],
    days: Annotated[int, typer.Option(min=1, max=3650, help="The CA's lifetime.")] = 365,
) -> None:
    """(Whoever the three parties agree on) A CA for joint runs: give mpyc_ca.crt to every
    party, keep mpyc_ca.key (0600) to sign their requests with 'issue'."""
    from modelpact.crypto.tls import create_ca

    folder = _folder(out_dir)
    ca, key = create_ca("modelpact joint-run CA", now=datetime.now(UTC), days=days)
    _write_new({folder / "mpyc_ca.crt": (ca, False), folder / "mpyc_ca.key": (key, True)})
    out().print(f"wrote {folder / 'mpyc_ca.crt'} and {folder / 'mpyc_ca.key'} (0600)")


@app.command("request")
def request(
    role: Annotated[RoleName, typer.Option(help="The role this party plays.")],
    tls_dir: Annotated[Path, typer.Option(help="This party's TLS folder (created 0700).")],
) -> None:
    """(Each party) A new key, kept here (0600), and a certificate request to send the CA."""
    from modelpact.crypto.tls import party_request

    index = _INDEX[role]
    folder = _folder(tls_dir)
    csr, key = party_request(index)
    key_path, csr_path = folder / f"party_{index}.key", folder / f"party_{index}.csr"
    _write_new({key_path: (key, True), csr_path: (csr, False)})
    out().print(f"wrote {key_path} (keep it) and {csr_path} (send it to the CA)")


@app.command("issue")
def issue(
    ca_dir: Annotated[Path, typer.Option(help="Folder with mpyc_ca.crt and mpyc_ca.key.")],
    csr: Annotated[Path, typer.Option("--request", help="A party's party_<i>.csr.")],
    role: Annotated[RoleName, typer.Option(help="The role the request is for.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the certificate.")],
    days: Annotated[int, typer.Option(min=1, max=825, help="The certificate's lifetime.")] = 90,
) -> None:
    """(The CA) Sign a party's request; the party puts it, with mpyc_ca.crt, in its
    TLS folder as party_<i>.crt."""
    from modelpact.crypto import read_private_file
    from modelpact.crypto.tls import issue_party_cert

    ca = read_text(ca_dir / "mpyc_ca.crt", what="CA certificate").encode("ascii", "replace")
    key = read_private_file(ca_dir / "mpyc_ca.key")
    request_pem = read_text(csr, what="certificate request").encode("ascii", "replace")
    cert = issue_party_cert(
        ca, key, request_pem, index=_INDEX[role], now=datetime.now(UTC), days=days
    )
    _write_new({out_file: (cert, False)})
    out().print(f"wrote {out_file}: the {role.value}'s certificate (party {_INDEX[role]})")
