"""``modelpact partner ...``: the owner's partner list, and the partner's side of the gateway.

Owner (server install): ``add``, ``list``, ``suspend``, ``resume``, ``revoke``.

Partner (the SDK install is enough: these import no server package):

- ``keygen`` makes the partner's key pair;
- ``session`` checks the key, the signed charter and the purpose against the gateway
  (a session is opened, the log's checkpoint verified and handed to the witness, the
  session closed) and saves them as a profile (:mod:`modelpact.cli.partner_profile`);
- ``predict`` scores a CSV in batches, keeps every receipt, and resumes after an
  interruption;
- ``verify-receipts`` checks receipts against the owner's signed log;
- ``rotate-key`` moves the partner to a new key, proving the current one (the gateway
  enrols it; the key file is replaced and each rotation recorded beside it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelpact.cli.terminal import open_ws, out, read_text, replace_durably
from modelpact.errors import (
    InvalidInput,
    ModelpactError,
    NotFound,
    ProofInvalid,
    QuotaExhausted,
    ServerError,
    StorageUnavailable,
    quote_untrusted,
)

if TYPE_CHECKING:
    from modelpact.audit.checkpoint import Checkpoint
    from modelpact.charter import SignedCharter
    from modelpact.cli.partner_profile import FeatureFile, PartnerProfile, PredictionRun
    from modelpact.client import PartnerClient, Prediction
    from modelpact.crypto import SigningKey
    from modelpact.wire import Receipt

__all__ = ["app"]

app = typer.Typer(
    help="Partner keys and enrolment; the partner's side of the gateway.", no_args_is_help=True
)

#: Where ``partner session`` writes the profile and the other commands read it.
DEFAULT_PROFILE = Path("modelpact-partner.toml")
#: The longest wait ``predict`` sits out on a 429, and how many times per batch.
MAX_WAIT_SECONDS = 60.0
MAX_WAITS = 3
#: Receipts checked against one checkpoint by ``verify-receipts``.
VERIFY_BATCH = 256
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

ProfileOption = Annotated[
    Path, typer.Option("--profile", help="The partner profile written by 'partner session'.")
]


@app.command("keygen")
def keygen(
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the private key (created 0600).")
    ] = Path("partner.key"),
) -> None:
    """(Partner) Create your Ed25519 key pair; give the printed public key to the owner."""
    from modelpact.crypto import SigningKey

    key = SigningKey.generate()
    key.save(out_path)
    out().print(key.verify_key.encode())


@app.command("add")
def add(
    ctx: typer.Context,
    partner_id: Annotated[str, typer.Argument(metavar="ID", help="Partner id (lower-case slug).")],
    public_key: Annotated[str, typer.Option(help="The partner's key, ed25519:<base64>.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Enrol a partner by its public key."""
    from modelpact.services import PartnerDirectory

    with open_ws(ctx) as ws:
        record = PartnerDirectory(ws).enrol(partner_id, public_key, name=name)
    out().print(f"enrolled partner {record.id} ({record.public_key})")


@app.command("list")
def list_partners(ctx: typer.Context) -> None:
    """List partners, their keys and status."""
    from modelpact.services import PartnerDirectory

    with open_ws(ctx) as ws:
        partners = PartnerDirectory(ws).all()
    table = Table("id", "name", "status", "public key")
    for record in partners:
        table.add_row(record.id, record.name, record.status, record.public_key)
    out().print(table if partners else "no partners enrolled")


def _status_command(verb: str, help_text: str) -> None:
    def command(
        ctx: typer.Context,
        partner_id: Annotated[str, typer.Argument(metavar="ID")],
    ) -> None:
        from modelpact.services import PartnerDirectory

        with open_ws(ctx) as ws:
            record = PartnerDirectory(ws).change_status(partner_id, verb)
        out().print(f"partner {record.id} is now {record.status}")

    command.__doc__ = help_text
    app.command(verb)(command)


_status_command("suspend", "Suspend a partner: every request is denied until resumed.")
_status_command("resume", "Resume a suspended partner.")
_status_command("revoke", "Revoke a partner for good.")


# -- the partner's side of the gateway -----------------------------------------------------------


def _gateway_url(text: str) -> str:
    """The gateway's base URL; plain http only to this machine (tokens would travel in clear)."""
    import httpx

    try:
        url = httpx.URL(text.strip())
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"--gateway {quote_untrusted(text)} is not a URL: {exc}") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise InvalidInput(
            f"--gateway {quote_untrusted(text)} is not an https:// URL",
            hint="pass the gateway's address, e.g. https://gateway.example:8443",
        )
    if url.scheme == "http" and url.host not in _LOOPBACK:
        raise InvalidInput(
            "plain http is allowed only to this machine: session tokens and rows would "
            "travel in clear",
            hint="use https:// (with --ca for the owner's CA)",
        )
    return str(url).rstrip("/")


def _tls(ca: Path | None) -> ssl.SSLContext | bool:
    """What to trust: the given CA file (the owner's ``tls/ca.pem``) or the system's CAs."""
    if ca is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca))
    except FileNotFoundError:
        raise NotFound(f"CA certificate {ca} does not exist") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise InvalidInput(f"{ca} is not a PEM CA certificate: {exc}") from None


def _signed_charter(path: Path) -> SignedCharter:
    """The envelope both parties signed, with both signatures checked."""
    from modelpact.charter import SignedCharter

    signed = SignedCharter.from_json(read_text(path, what="signed charter"), source=str(path))
    signed.verify_complete()
    return signed


def _rotations_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".rotations.json")


def _rotations(key_path: Path) -> list[dict[str, object]]:
    """The rotations 'partner rotate-key' recorded beside the key, oldest first."""
    path = _rotations_path(key_path)
    if not path.exists():
        return []
    try:
        records = json.loads(read_text(path, what="key rotation record"))
    except ValueError:
        raise InvalidInput(f"{path} is not the JSON 'partner rotate-key' writes") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InvalidInput(f"{path} is not the JSON 'partner rotate-key' writes")
    return records


def _partner_key(path: Path, signed: SignedCharter) -> SigningKey:
    """The partner's key, refused unless it is the key the charter names for the partner,
    or the key that one was rotated to ('partner rotate-key' records each rotation)."""
    from modelpact.crypto import SigningKey

    key = SigningKey.load(path)
    expected = signed.charter.partner.verify_key
    reached = expected.encode()
    for record in _rotations(path):
        if record.get("partner") == signed.charter.partner.id and record.get("old_key") == reached:
            reached = str(record.get("new_key"))
    if key.verify_key != expected and key.verify_key.encode() != reached:
        raise InvalidInput(
            f"{path} is not the partner key of {signed.charter.ref}: it holds "
            f"{key.verify_key.encode()}, the charter names {expected.encode()}",
            hint="pass the key you countersigned the charter with",
        )
    return key


def _check_purpose(signed: SignedCharter, purpose: str) -> None:
    if purpose not in signed.charter.purposes:
        raise InvalidInput(
            f"purpose {quote_untrusted(purpose)} is not one of {signed.charter.ref}'s purposes",
            hint="choose one of: " + ", ".join(signed.charter.purposes),
        )


def _client(
    url: str,
    signed: SignedCharter,
    key: SigningKey,
    purpose: str,
    *,
    verify: ssl.SSLContext | bool,
    log_origin: str | None,
    witness: Path,
) -> PartnerClient:
    from modelpact.client import PartnerClient

    return PartnerClient(
        url,
        partner=signed.charter.partner.id,
        key=key,
        charter=signed.charter.charter,
        purpose=purpose,
        owner_key=signed.charter.owner.verify_key,
        countersigned=signed.charter,  # every session is attested before data goes out
        log_origin=log_origin,
        witness_path=witness,
        verify=verify,
    )


@dataclass(frozen=True)
class _Partner:
    """A loaded profile, its charter checked and its key matched: ready to make a client."""

    profile: PartnerProfile
    signed: SignedCharter
    key: SigningKey

    @classmethod
    def load(cls, path: Path) -> _Partner:
        from modelpact.cli.partner_profile import PartnerProfile

        profile = PartnerProfile.load(path)
        signed = _signed_charter(profile.charter)
        key = _partner_key(profile.key, signed)
        _check_purpose(signed, profile.purpose)
        return cls(profile, signed, key)

    def client(self) -> PartnerClient:
        return _client(
            self.profile.gateway,
            self.signed,
            self.key,
            self.profile.purpose,
            verify=_tls(self.profile.ca),
            log_origin=self.profile.log_origin,
            witness=self.profile.witness,
        )


def _close_quietly(client: PartnerClient) -> None:
    """End the session (no one keeps its token); a failure here changes nothing done."""
    import httpx

    with contextlib.suppress(ModelpactError, httpx.HTTPError):
        client.close_session()


def _log_origin(url: str, verify: ssl.SSLContext | bool) -> str:
    """The origin line of the gateway's checkpoint (its signature is checked by the caller)."""
    import httpx

    from modelpact.client.protocol import error_from
    from modelpact.wire import CheckpointDocument

    try:
        with httpx.Client(base_url=url, verify=verify, timeout=30.0) as http:
            response = http.get("/v1/log/checkpoint")
    except httpx.TransportError as exc:
        raise ServerError(f"cannot reach the gateway: {exc}") from None
    if response.status_code >= 400:
        raise error_from(response)
    try:
        note = CheckpointDocument.model_validate_json(response.content).note
    except ValueError:
        raise ServerError("the gateway's reply is not a valid CheckpointDocument") from None
    return note.split("\n", 1)[0]


@app.command("session")
def session(
    gateway: Annotated[str, typer.Option(help="The gateway's URL, e.g. https://host:8443.")],
    key: Annotated[Path, typer.Option(help="Your partner private key.")],
    charter: Annotated[
        Path, typer.Option(help="The charter envelope signed by the owner and by you.")
    ],
    purpose: Annotated[str, typer.Option(help="One of the charter's purposes.")],
    ca: Annotated[
        Path | None,
        typer.Option(help="CA certificate to trust (the owner's tls/ca.pem); default: system CAs."),
    ] = None,
    profile: Annotated[
        Path, typer.Option(help="Where to write the profile (0600, replaced if it exists).")
    ] = DEFAULT_PROFILE,
    witness: Annotated[
        Path | None,
        typer.Option(help="The witness's state file (default: beside the profile, *.witness)."),
    ] = None,
) -> None:
    """(Partner) Check key, charter and purpose against the gateway; save them as a profile.

    Opens a session to prove it all works, verifies the log's signed checkpoint (the
    witness keeps it), closes the session and writes the profile.  No session token
    is stored: later commands open sessions as they need them.
    """
    from modelpact.cli.partner_profile import PartnerProfile

    url = _gateway_url(gateway)
    signed = _signed_charter(charter)
    partner_key = _partner_key(key, signed)
    _check_purpose(signed, purpose)
    verify = _tls(ca)
    witness_path = (witness or profile.with_suffix(".witness")).absolute()
    with _client(
        url, signed, partner_key, purpose, verify=verify, log_origin=None, witness=witness_path
    ) as client:
        try:
            grant = client.open_session()
            origin = _log_origin(url, verify)
            checkpoint = client.checkpoint(origin=origin)
        finally:
            _close_quietly(client)
    PartnerProfile(
        gateway=url,
        key=key.absolute(),
        charter=charter.absolute(),
        purpose=purpose,
        ca=None if ca is None else ca.absolute(),
        log_origin=origin,
        witness=witness_path,
    ).save(profile)
    console = out()
    expires = grant.expires_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    console.print(
        f"session ok: partner {grant.partner}, charter {grant.charter} "
        f"v{grant.charter_version}, purpose {grant.purpose}, expires {expires} "
        "(closed now; commands open their own)"
    )
    console.print(f"log {origin}: checkpoint of size {checkpoint.size} kept in {witness_path}")
    console.print(f"profile -> {profile}")


@app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    partner_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="(Owner) The partner whose statement to apply."),
    ] = None,
    statement: Annotated[
        Path | None,
        typer.Option(help="(Owner) A statement the partner wrote with --statement-out."),
    ] = None,
    statement_out: Annotated[
        Path | None,
        typer.Option(help="(Partner, offline) Write the signed statement here for the owner."),
    ] = None,
    profile: ProfileOption = DEFAULT_PROFILE,
) -> None:
    """(Partner) Replace your key: the gateway enrols a new key once your current key and
    the new one both sign the change; then the profile's key file holds the new key (0600)
    and the old key is gone.  Your open sessions end.  Interrupted, run it again.

    Offline: '--statement-out FILE' writes the change signed by both keys for the owner,
    who applies it with 'modelpact partner rotate-key ID --statement FILE' (owner); then
    run 'modelpact partner rotate-key' again to finish.  Charters you countersigned with
    the old key stay valid; the next version of a charter names the new key.
    """
    import os

    from modelpact.cli.terminal import fsync_folder
    from modelpact.crypto import SigningKey
    from modelpact.errors import Unauthenticated

    if partner_id is not None or statement is not None:
        _apply_rotation_statement(ctx, partner_id, statement)
        return
    partner = _Partner.load(profile)
    key_path = partner.profile.key
    next_path = key_path.with_name(key_path.name + ".next")
    resumed = next_path.exists()
    if resumed:
        new = SigningKey.load(next_path)
    else:
        new = SigningKey.generate()
        new.save(next_path)  # kept before the gateway knows it: a lost answer loses no key
        fsync_folder(next_path.parent)  # and durably named, before the gateway enrols it
    old = partner.key.verify_key
    if statement_out is not None:
        _write_rotation_statement(partner, new, statement_out)
        return
    entry: int | None
    with partner.client() as client:
        try:
            entry = client.rotate_key(new).entry
        except Unauthenticated:
            if not resumed:
                raise
            entry = None  # a previous run's answer was lost: does the gateway hold it?
    if entry is None:
        with _Partner(partner.profile, partner.signed, new).client() as check:
            check.open_session()  # refused (raises) unless the gateway enrolled the new key
            _close_quietly(check)
    records = [
        *_rotations(key_path),
        {
            "partner": partner.signed.charter.partner.id,
            "old_key": old.encode(),
            "new_key": new.verify_key.encode(),
            "entry": entry,
        },
    ]
    replace_durably(_rotations_path(key_path), (json.dumps(records, indent=1) + "\n").encode())
    try:
        os.replace(next_path, key_path)  # the old private key file is gone
    except OSError as exc:
        raise StorageUnavailable(f"cannot replace {key_path}: {exc.strerror}") from None
    fsync_folder(key_path.parent)
    console = out()
    where = "" if entry is None else f" (audit entry {entry})"
    console.print(f"the gateway enrolled your new key{where}; {key_path} now holds it")
    console.print(new.verify_key.encode())


def _write_rotation_statement(partner: _Partner, new: SigningKey, path: Path) -> None:
    """The rotation signed by both keys for the offline audience, for the owner to apply."""
    import secrets
    from datetime import UTC, datetime

    from modelpact.client.protocol import Identity
    from modelpact.wire import Challenge

    challenge = Challenge(
        audience="modelpact-offline",  # services.partners.OFFLINE_AUDIENCE (no server import)
        nonce=secrets.token_urlsafe(32),
        expires_at=datetime.now(UTC),
    )
    identity = Identity(
        partner=partner.signed.charter.partner.id,
        key=partner.key,
        charter=partner.signed.charter.charter,
        purpose=partner.profile.purpose,
    )
    request = identity.rotation_request(challenge, new)
    replace_durably(path, (request.model_dump_json(indent=1) + "\n").encode(), mode=0o644)
    console = out()
    console.print(f"wrote {path}: your current key and the new one both signed it")
    console.print(
        "give it to the owner ('modelpact partner rotate-key ID --statement FILE'), then run "
        "'modelpact partner rotate-key' again to finish"
    )
    console.print(new.verify_key.encode())


def _apply_rotation_statement(
    ctx: typer.Context, partner_id: str | None, statement: Path | None
) -> None:
    from modelpact.services import PartnerDirectory

    if partner_id is None or statement is None:
        raise InvalidInput(
            "the owner applies a partner's statement with: "
            "modelpact partner rotate-key ID --statement FILE"
        )
    text = read_text(statement, what="key rotation statement")
    with open_ws(ctx) as ws:
        revoked = PartnerDirectory(ws).rotate_key_offline(partner_id, text)
        record = PartnerDirectory(ws).get(partner_id)
    out().print(f"partner {partner_id} now uses {record.public_key}; {revoked} session(s) revoked")


@app.command("dashboard")
def dashboard(profile: ProfileOption = DEFAULT_PROFILE) -> None:
    """(Partner) Print a one-time link that signs you in to the gateway's dashboard (your own
    usage only), after proving your key in a new session."""
    partner = _Partner.load(profile)
    with partner.client() as client:
        try:
            link = client.dashboard_link()
        finally:
            _close_quietly(client)
    out().print(link, soft_wrap=True)
    out().print("(one use, 10 minutes)")


# -- predict: a CSV in, a CSV out, resumably -----------------------------------------------------

#: Rows per encrypted request in batch packing: the slots of the default CKKS ring.
ENCRYPTED_BATCH_ROWS = 4096


class Packing(StrEnum):
    BATCH = "batch"
    ROWS = "rows"


def _send(
    client: PartnerClient,
    model: str,
    rows: list[list[float]],
    *,
    version: str | None,
    first_row: int,
    notes: Console,
    packing: str | None = None,
) -> Prediction:
    """One batch (one request: encrypted under ``packing`` when given); a 429 with a short
    ``retry_after`` is waited out (it was not counted)."""
    for attempt in range(MAX_WAITS + 1):
        try:
            if packing is None:
                return client.predict(model, rows, version=version)
            found = client.predict_encrypted(
                model, rows, version=version, packing=packing, chunk=len(rows)
            )
            if len(found.receipts) != 1:
                raise ServerError("an encrypted batch took more than one request")
            from modelpact.client.protocol import Prediction as Answer

            return Answer(found.model, found.version, found.outputs, found.receipts[0])
        except QuotaExhausted as exc:
            wait = exc.retry_after
            if wait is None or wait > MAX_WAIT_SECONDS or attempt == MAX_WAITS:
                if wait is not None:
                    exc.hint = f"the gateway asks to wait {math.ceil(wait)} s"
                raise
            notes.print(
                f"{exc.summary}; waiting {wait:.1f} s, then sending rows "
                f"{first_row}-{first_row + len(rows) - 1} again"
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def _chunks(rows: Iterator[list[float]], size: int) -> Iterator[list[list[float]]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _run_batches(
    client: PartnerClient,
    run: PredictionRun,
    features: FeatureFile,
    *,
    model: str,
    version: str | None,
    size: int,
    notes: Console,
    packing: str | None = None,
) -> int:
    """Send what is left of the input, recording each batch durably; return batches sent."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from modelpact.cli.partner_profile import feature_rows, output_csv

    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=notes,
        disable=not notes.is_terminal,
    )
    rows = itertools.islice(feature_rows(features.path), run.state.rows_done, None)
    sent = 0
    with progress:
        task = progress.add_task(model, total=features.rows, completed=run.state.rows_done)
        for chunk in _chunks(rows, size):
            first = run.state.rows_done + 1
            prediction = _send(
                client,
                model,
                chunk,
                version=run.state.version or version,
                first_row=first,
                notes=notes,
                packing=packing,
            )
            if len(prediction.outputs) != len(chunk):
                raise ServerError(
                    f"the gateway answered {len(prediction.outputs)} outputs for {len(chunk)} rows"
                )
            columns, text = output_csv(prediction.outputs, first, run.state.columns)
            receipt = {
                "first_row": first,
                "last_row": first + len(chunk) - 1,
                "model": prediction.model,
                "version": prediction.version,
                "receipt": prediction.receipt.model_dump(mode="json"),
            }
            run.record(receipt, text, len(chunk), columns=columns, version=prediction.version)
            sent += 1
            progress.update(task, completed=run.state.rows_done)
    return sent


@app.command("predict")
def predict(
    model: Annotated[str, typer.Option(help="The model to predict with.")],
    input_path: Annotated[
        Path,
        typer.Option("--input", help="CSV of numeric features, one row per line; header allowed."),
    ],
    out_path: Annotated[
        Path,
        typer.Option("--out", help="Output CSV; receipts go to OUT.receipts.jsonl beside it."),
    ],
    profile: ProfileOption = DEFAULT_PROFILE,
    batch: Annotated[
        int | None,
        typer.Option(
            min=1, help="Rows per request (default and maximum: the charter's max_batch_rows)."
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(help="Model version (default: the one served, then kept for the run)."),
    ] = None,
    encrypted: Annotated[
        bool,
        typer.Option(
            "--encrypted",
            help="Send CKKS ciphertexts: the gateway never sees the rows or the scores "
            "(linear and logistic models; needs modelpact[encrypted]).",
        ),
    ] = False,
    packing: Annotated[
        Packing,
        typer.Option(help="With --encrypted: batch (throughput) or rows (latency)."),
    ] = Packing.BATCH,
) -> None:
    """(Partner) Predict a CSV of features in batches; run it again to resume after a stop.

    Writes OUT (row, then the output flattened), OUT.receipts.jsonl (one receipt per
    request) and OUT.state.json (the input's SHA-256 and the rows done).  A run
    resumes only over the same input; rows already done are not sent again.  With
    --encrypted the secret key stays here and the outputs are the model's scores.
    """
    from modelpact.cli.partner_profile import PredictionRun, scan_features

    partner = _Partner.load(profile)
    limit = partner.signed.charter.limits.max_batch_rows
    size = batch or limit
    if size > limit:
        raise InvalidInput(
            f"--batch {size} is over the charter's max_batch_rows of {limit}",
            hint=f"pass --batch {limit} or less",
        )
    if encrypted:  # one request per batch: a ciphertext's slots, or a few rows
        size = min(size, ENCRYPTED_BATCH_ROWS if packing is Packing.BATCH else 16)
    features = scan_features(input_path)
    run = PredictionRun.begin(
        out_path,
        input_path=input_path,
        input_sha256=features.sha256,
        rows=features.rows,
        model=model,
        version=version,
    )
    console = out()
    if run.state.complete:
        console.print(f"{out_path} already holds all {run.state.rows} rows; nothing sent")
        return
    notes = Console(stderr=True, markup=False, highlight=False)
    start = run.state.rows_done
    resume = "run the same command again to resume"
    with partner.client() as client:
        try:
            # Opening attests the session against the profile's countersigned charter: a
            # gateway enforcing another version is refused before any row is sent.
            client.open_session()
            sent = _run_batches(
                client,
                run,
                features,
                model=model,
                version=version,
                size=size,
                notes=notes,
                packing=packing.value if encrypted else None,
            )
        except ModelpactError as exc:
            done = f"{run.state.rows_done} of {run.state.rows} rows done; {resume}"
            exc.hint = f"{exc.hint}; {done}" if exc.hint else done
            raise
        except KeyboardInterrupt:  # one line saying how to go on (typer would exit 0 here)
            raise ModelpactError(
                f"interrupted after {run.state.rows_done} of {run.state.rows} rows", hint=resume
            ) from None
        finally:
            _close_quietly(client)
    again = f", resumed after row {start}" if start else ""
    how = f" encrypted ({packing.value} packing)" if encrypted else ""
    console.print(
        f"{out_path}: {run.state.rows} rows of {model} {run.state.version}{how} "
        f"({sent} batches of at most {size} sent now{again}); receipts in {run.receipts}"
    )


# -- verify-receipts -----------------------------------------------------------------------------


def _receipts(path: Path) -> list[tuple[str, Receipt]]:
    """``(where, receipt)`` for each line: a receipt, or an object whose ``receipt`` is one."""
    from pydantic import ValidationError

    from modelpact.wire import Receipt

    found: list[tuple[str, Receipt]] = []
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"receipts file {path} does not exist") from None
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{path} line {number}"
                try:
                    value = json.loads(line)
                    if isinstance(value, dict) and "receipt" in value:
                        value = value["receipt"]
                    found.append((where, Receipt.model_validate(value)))
                except (ValueError, ValidationError):
                    raise InvalidInput(f"{where} is not a receipt") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is not UTF-8 text") from None
    return found


def _verify(client: PartnerClient, batch: list[tuple[str, Receipt]]) -> Checkpoint:
    """Check a batch against one checkpoint; on a failure, name the receipt's line."""
    try:
        return client.verify_receipts(receipt for _, receipt in batch)
    except (ProofInvalid, NotFound) as exc:
        if len(batch) == 1:
            raise type(exc)(f"{batch[0][0]}: {exc.summary}", hint=exc.hint) from None
        for item in batch:  # find which one: check them one by one
            _verify(client, [item])
        raise


@app.command("verify-receipts")
def verify_receipts(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="RECEIPTS", help="Receipt files, such as OUT.receipts.jsonl."),
    ],
    profile: ProfileOption = DEFAULT_PROFILE,
) -> None:
    """(Partner) Check receipts are in the log the owner signed, consistent with the last seen.

    Verifies the owner's signature on a checkpoint covering them, has the witness check
    it against the last checkpoint it kept, and checks each receipt's inclusion proof.
    """
    import base64

    partner = _Partner.load(profile)
    receipts = [item for path in files for item in _receipts(path)]
    if not receipts:
        raise InvalidInput(f"no receipts in {', '.join(map(str, files))}")
    with partner.client() as client:
        try:
            for start in range(0, len(receipts), VERIFY_BATCH):
                checkpoint = _verify(client, receipts[start : start + VERIFY_BATCH])
        finally:
            _close_quietly(client)
    root = base64.b64encode(checkpoint.root).decode("ascii")
    out().print(
        f"{len(receipts)} receipts verified against checkpoint of size {checkpoint.size}, "
        f"root {root} ({checkpoint.origin})"
    )
