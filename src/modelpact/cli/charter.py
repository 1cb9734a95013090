"""``modelpact charter ...``: check, sign, countersign (partner), apply, list, show, diff;
terminate (owner) and verify-exit (partner, offline, no server installed)."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out, read_text, replace_durably, write_text_atomic
from modelpact.errors import CharterInvalid, InvalidInput, ModelpactError, Tampered

if TYPE_CHECKING:
    from modelpact.audit.handover import KeyChain
    from modelpact.crypto import VerifyKey

__all__ = ["EXIT_REPORT_FORMAT", "EXIT_REPORT_PREFIX", "app", "verify_exit_report"]

#: As :mod:`modelpact.services.exit` writes them (the partner's install has no services).
EXIT_REPORT_FORMAT = "modelpact-exit-report/v1"
EXIT_REPORT_PREFIX = b"modelpact-exit-report/v1\n"

#: Charter versions are positive and fit the canonical JSON number range (2^53 - 1).
VERSION: dict[str, int] = {"min": 1, "max": 2**53 - 1}

app = typer.Typer(
    help="Charters: the agreement as code, signed by both parties.", no_args_is_help=True
)


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="Charter YAML.")]) -> None:
    """Lint a charter: errors and warnings with line numbers; non-zero exit on errors."""
    from modelpact.charter import check_charter

    text = read_text(file, what="charter")
    try:
        from modelpact.services import check_with_policy
    except ImportError:  # partner install: no policy engine; schema and lint still run
        report = check_charter(text, source=str(file))
        note = "policy compilation skipped (the server extra is not installed)"
    else:
        report = check_with_policy(text, source=str(file))
        note = "compiles to Cedar policies and passes schema validation"
    console = out()
    for finding in report.findings:
        console.print(str(finding))
    errors = sum(1 for f in report.findings if f.severity == "error")
    warnings = len(report.findings) - errors
    if errors:
        raise CharterInvalid(f"{file}: {errors} error(s), {warnings} warning(s)")
    console.print(f"{file}: no errors, {warnings} warning(s); {note}")


@app.command("sign")
def sign(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Charter YAML.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Signed envelope (default FILE.signed.json).")
    ] = None,
) -> None:
    """(Owner) Sign a charter with the workspace key, for the partner to countersign."""
    from modelpact.services import CharterDesk

    text = read_text(file, what="charter")
    with open_ws(ctx) as ws:
        signed = CharterDesk(ws).sign(text, source=str(file))
    target = out_path or file.with_suffix(".signed.json")
    write_text_atomic(target, signed.to_json())
    out().print(f"signed {signed.charter.ref} ({signed.digest}) -> {target}")


@app.command("countersign")
def countersign(
    file: Annotated[Path, typer.Argument(help="Envelope signed by the owner.")],
    key: Annotated[Path, typer.Option(help="Your partner private key.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: FILE, in place).")
    ] = None,
) -> None:
    """(Partner, offline) Check the owner's signature and countersign with your key."""
    from modelpact.charter import SignedCharter
    from modelpact.crypto import SigningKey

    signed = SignedCharter.from_json(read_text(file, what="signed charter"), source=str(file))
    both = signed.countersign(SigningKey.load(key))
    write_text_atomic(out_path or file, both.to_json())
    out().print(f"countersigned {both.charter.ref} ({both.digest}) -> {out_path or file}")


@app.command("apply")
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Envelope signed by owner and partner.")],
) -> None:
    """(Owner) Activate a countersigned charter: signatures, window, partner, models, policy."""
    from modelpact.services import CharterDesk

    text = read_text(file, what="signed charter")
    with open_ws(ctx) as ws:
        applied = CharterDesk(ws).apply(text, source=str(file))
    note = f"; supersedes v{applied.superseded}" if applied.superseded else ""
    out().print(f"applied {applied.charter.ref} for partner {applied.record.partner_id}{note}")


@app.command("list")
def list_charters(ctx: typer.Context) -> None:
    """List every applied charter version and its status."""
    from modelpact.services import CharterDesk

    with open_ws(ctx) as ws:
        records = CharterDesk(ws).all()
    table = Table("charter", "version", "partner", "status", "applied", "digest")
    for r in records:
        table.add_row(
            r.charter_id,
            str(r.version),
            r.partner_id,
            r.status,
            r.applied_at.isoformat(timespec="seconds"),
            r.digest,
        )
    out().print(table if records else "no charters applied")


@app.command("show")
def show(
    ctx: typer.Context,
    charter_id: Annotated[
        str | None, typer.Argument(metavar="[CHARTER]", help="An applied charter (owner).")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Version (default: latest).", **VERSION)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A signed envelope to review (partner, no workspace)."),
    ] = None,
) -> None:
    """Print a charter as YAML: an applied one, or the one inside a signed envelope."""
    from modelpact.charter import SignedCharter, to_yaml

    console = out()
    if file is not None:
        if charter_id is not None:
            raise InvalidInput("give either CHARTER or --file, not both")
        signed = SignedCharter.from_json(read_text(file, what="signed charter"), source=str(file))
        signed.verify_owner()
        state = "countersigned" if signed.is_countersigned else "signed by the owner only"
        console.print(f"# {signed.charter.ref} — {state}; owner signature valid; {signed.digest}")
        console.print(to_yaml(signed.charter))
        return
    if charter_id is None:
        raise InvalidInput("give CHARTER (an applied charter) or --file SIGNED.json")
    from modelpact.services import CharterDesk

    with open_ws(ctx) as ws:
        record, charter = CharterDesk(ws).get(charter_id, version)
    applied = record.applied_at.isoformat(timespec="seconds")
    console.print(f"# {charter.ref} — {record.status}, applied {applied}")
    console.print(to_yaml(charter))


@app.command("diff")
def diff(
    ctx: typer.Context,
    charter_id: Annotated[str, typer.Argument(metavar="CHARTER")],
    old: Annotated[int, typer.Argument(help="Older version.", **VERSION)],
    new: Annotated[int, typer.Argument(help="Newer version.", **VERSION)],
) -> None:
    """Show what changed between two applied versions."""
    from modelpact.services import CharterDesk

    with open_ws(ctx) as ws:
        lines = CharterDesk(ws).diff(charter_id, old, new)
    console = out()
    for line in lines or ("no differences",):
        console.print(line)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    charter_id: Annotated[str, typer.Argument(metavar="CHARTER")],
    to: Annotated[
        int, typer.Option("--to", help="The applied version to put back in force.", **VERSION)
    ],
    reason: Annotated[str, typer.Option(help="Why (audited).")],
) -> None:
    """Put an earlier applied version back in force (both parties signed it already)."""
    from modelpact.services import CharterDesk

    with open_ws(ctx) as ws:
        desk = CharterDesk(ws)
        done = desk.rollback(charter_id, to_version=to, reason=reason)
        changes = desk.diff(charter_id, done.previous, to)
    console = out()
    console.print(f"{done.charter.ref} is in force again (v{done.previous} superseded); logged")
    for line in changes:
        console.print(f"  {line}")


@app.command("terminate")
def terminate(
    ctx: typer.Context,
    charter_id: Annotated[str, typer.Argument(metavar="CHARTER")],
    reason: Annotated[str, typer.Option(help="Why the partnership ends (audited).")],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="The signed exit report (default CHARTER.exit.json)."),
    ] = None,
) -> None:
    """(Owner) End a charter: revoke its sessions, destroy the partner's data key, and
    write a signed exit report.  Again on a terminated charter: completes it, re-issues it."""
    from modelpact.services.exit import ExitDesk

    with open_ws(ctx) as ws:
        report = ExitDesk(ws).terminate(charter_id, reason=reason)
        key = ws.owner_verify_key.encode()
    target = out_path or Path(f"{charter_id}.exit.json")
    replace_durably(target, report.text.encode("utf-8"), mode=0o644)  # handed to the partner
    console = out()
    document = report.document
    when = report.terminated_at.isoformat(timespec="seconds")
    state = "was terminated" if report.resumed else "terminated"
    console.print(f"{charter_id} {state} at {when}; partner {report.partner}")
    for item in document["destroyed"]:
        console.print(f"  destroyed: {item['what']} ({item['at']})")
    for item in document["kept"]:
        console.print(f"  kept until {item['until'] or 'further notice'}: {item['what']}")
    console.print(f"wrote {target}; the partner verifies it offline with:")
    console.print(f"  modelpact charter verify-exit {target} --owner-key {key}")


@app.command("expire")
def expire(
    ctx: typer.Context,
    warn_days: Annotated[
        list[int] | None,
        typer.Option(
            "--warn-days",
            metavar="DAYS",
            min=1,
            max=3650,
            help="Warn this many days before a window closes (repeatable; default 14 and 1).",
        ),
    ] = None,
    webhook_ca: Annotated[
        Path | None,
        typer.Option(help="CA certificate(s), PEM, the webhooks' servers chain to."),
    ] = None,
) -> None:
    """(Owner) The expiry sweep, by hand or from cron (`serve` runs it every minute): end
    charters whose window closed (reports in the workspace's exits/), warn ahead of expiry
    (log entry and webhook, once each), and end retention (prune the log, destroy keys)."""
    import functools

    from modelpact.services.expiry import DEFAULT_WARNINGS, ExpirySweep
    from modelpact.services.webhooks import Notifier

    if webhook_ca is not None and not webhook_ca.is_file():
        raise InvalidInput(f"--webhook-ca {webhook_ca} is not a file")
    with open_ws(ctx) as ws:
        notifier = Notifier(ws.owner_key(), ca=webhook_ca)
        try:
            write = functools.partial(replace_durably, mode=0o644)  # handed to the partner
            sweep = ExpirySweep(
                ws, write=write, warnings=warn_days or DEFAULT_WARNINGS, notifier=notifier
            ).run()
            notifier.flush()  # the warnings' webhooks, before the process ends
        finally:
            notifier.close()
        failed, last_error = notifier.stats.failed, notifier.stats.last_error
        key = ws.owner_verify_key.encode()
    console = out()
    for ended in sweep.ended:
        state = "exit completed" if ended.resumed else "expired and ended"
        what = f"{ended.charter}@v{ended.version} ({ended.partner})"
        console.print(f"{what}: {state}; exit report {ended.report}")
    for warning in sweep.warned:
        what = f"{warning.charter}@v{warning.version} ({warning.partner})"
        sent = "; webhook sent" if warning.webhook else ""
        when = warning.until.isoformat()
        console.print(f"{what}: expires {when} (within {warning.days} days){sent}")
    for end in sweep.pruned:
        when = end.until.isoformat()
        console.print(
            f"{end.charter} ({end.partner}): retention ended {when}; "
            f"{end.entries} log entries pruned"
        )
    for partner in sweep.watermarks:
        console.print(f"{partner}: watermark keys and marked queries destroyed")
    if sweep.ended:
        console.print(f"the partner verifies a report with: modelpact charter verify-exit "
                      f"REPORT --owner-key {key}")  # fmt: skip
    if failed:
        console.print(f"warning: {failed} webhook(s) could not be delivered ({last_error})")
    if sweep.failures:
        raise ModelpactError(
            f"{len(sweep.failures)} problem(s): {'; '.join(sweep.failures)}",
            hint="the rest of the sweep ran; fix these and run 'modelpact charter expire' again",
        )
    if sweep.idle:
        console.print("nothing expired, expiring or past its retention")


@app.command("verify-exit")
def verify_exit(
    report: Annotated[Path, typer.Argument(help="An exit report from 'charter terminate'.")],
    owner_key: Annotated[
        str | None, typer.Option(help="The owner's key, ed25519:<base64>.")
    ] = None,
    charter_file: Annotated[
        Path | None,
        typer.Option("--charter-file", help="Your countersigned charter (names key and id)."),
    ] = None,
    charter_id: Annotated[
        str | None, typer.Option("--charter", help="The charter the report must name.")
    ] = None,
) -> None:
    """(Partner, offline) Check an exit report: the owner's signature, that it names your
    charter, the checkpoint's signature and that the termination is in the signed log."""
    from modelpact.charter import SignedCharter
    from modelpact.crypto import VerifyKey

    key = None if owner_key is None else VerifyKey.decode(owner_key)
    digests: frozenset[str] = frozenset()
    if charter_file is not None:
        signed = SignedCharter.from_json(
            read_text(charter_file, what="signed charter"), source=str(charter_file)
        )
        signed.verify_complete()
        named = signed.charter
        if key is not None and key != named.owner.verify_key:
            raise InvalidInput(f"--owner-key is not the owner key {charter_file} names")
        if charter_id is not None and charter_id != named.charter:
            raise InvalidInput(f"--charter {charter_id} is not {charter_file}'s {named.charter}")
        key, charter_id, digests = named.owner.verify_key, named.charter, frozenset({signed.digest})
    if key is None:
        raise InvalidInput("give --owner-key ed25519:... or --charter-file SIGNED.json")
    text = read_text(report, what="exit report")
    document = verify_exit_report(text, key, charter=charter_id, digests=digests)
    usage = document["usage"]
    out().print(
        f"{report}: OK — exit report for {document['charter']['id']} "
        f"(partner {document['charter']['partner']}), terminated "
        f"{document['terminated']['at']}; {usage['requests']} requests, {usage['rows']} rows, "
        f"{usage['denials']} denials, {len(document['incidents'])} incident(s); signed by the "
        f"owner; termination in the log under checkpoint size {document['checkpoint']['size']}"
    )


def _report_owner_keys(document: dict[str, Any], owner_key: VerifyKey) -> KeyChain:
    """The owner keys from ``owner_key`` (the charter's) to the report's signer, through the
    handovers the report carries, each proved in its final checkpoint (docs/handover.md)."""
    from modelpact.client.handover import follow_owner, trivial_chain
    from modelpact.wire import HandoverChain

    try:
        point = document["checkpoint"]
        origin = str(point["origin"])
        items = point.get("handovers", [])
        proved = HandoverChain.model_validate({"checkpoint": point["note"], "handovers": items})
    except (KeyError, TypeError, AttributeError, ValueError):
        raise Tampered("the exit report is signed but incomplete") from None
    if not proved.handovers:
        return trivial_chain(owner_key, origin)
    try:
        return follow_owner(owner_key, proved, origin)
    except Tampered:
        raise
    except ModelpactError as exc:  # a handover that does not even parse
        raise Tampered(f"the exit report's owner-key handovers: {exc.summary}") from None


def verify_exit_report(
    text: str,
    owner_key: VerifyKey,
    *,
    charter: str | None = None,
    digests: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The report inside an exit report file, once everything in it checks.

    The owner's signature over ``EXIT_REPORT_PREFIX + canonical_json(report)``; that it
    names ``charter`` (and one of ``digests`` among its versions); the final checkpoint's
    signature by the same key; and an inclusion proof that the termination entry it carries
    is in that checkpoint's log.  :class:`~modelpact.errors.Tampered` (its subclasses for
    signatures and proofs) on the first thing that does not.
    """
    from modelpact.audit.entries import TERMINATE_ACTION, AdminEntry, decode_entry
    from modelpact.audit.tree import leaf_hash, verify_inclusion
    from modelpact.crypto import canonical_json

    try:
        envelope = json.loads(text)
        if envelope["format"] != EXIT_REPORT_FORMAT:
            raise Tampered(f"not an exit report (format {str(envelope['format'])[:40]!r})")
        document = envelope["report"]
        signer = envelope["signature"]["key"]
        signature = base64.b64decode(envelope["signature"]["value"], validate=True)
        if not isinstance(document, dict):
            raise TypeError
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise Tampered(
            "not an exit report: it is not the JSON 'charter terminate' writes"
        ) from None
    chain = _report_owner_keys(document, owner_key)  # the charter's key, then its handovers
    if signer != chain.current.encode():
        raise Tampered(f"the exit report is signed by {str(signer)[:60]}, not the owner's key")
    chain.current.verify(signature, EXIT_REPORT_PREFIX + canonical_json(document))
    try:
        named = document["charter"]["id"]
        versions = {v["digest"] for v in document["charter"]["versions"]}
        point = document["checkpoint"]
        origin, index = point["origin"], point["index"]
        entry = base64.b64decode(point["entry"], validate=True)
        proof = [base64.b64decode(p, validate=True) for p in point["proof"]]
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise Tampered("the exit report is signed but incomplete") from None
    if charter is not None and named != charter:
        raise Tampered(f"the exit report is for charter {str(named)[:80]}, not {charter}")
    if digests and not digests & versions:
        raise Tampered("the exit report does not name your charter's version (digest)")
    if origin != chain.origin:
        raise Tampered("the exit report's checkpoint is for another log than its handovers")
    checkpoint = chain.open_checkpoint(point["note"])
    verify_inclusion(index, checkpoint.size, leaf_hash(entry), proof, checkpoint.root)
    terminated = decode_entry(entry)
    if (
        not isinstance(terminated, AdminEntry)
        or terminated.action != TERMINATE_ACTION
        or not terminated.subject.startswith(f"{named}@v")
    ):
        raise Tampered("the entry the exit report proves is not this charter's termination")
    return document
