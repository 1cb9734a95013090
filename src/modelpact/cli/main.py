"""Entry point: ``modelpact [--workspace DIR] COMMAND ...``.

Only :class:`~modelpact.errors.ModelpactError` is shown to the user, as one
line on stderr with a non-zero exit; anything else is a bug, reported in one
line too (set ``MODELPACT_DEBUG=1`` for the traceback).  Partner commands
(``partner keygen``, ``charter countersign``, ``charter check``) import no
server dependency, so they run from the partner's SDK install.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from modelpact import __version__
from modelpact.cli import (
    audit,
    charter,
    dashboard,
    doctor,
    keys,
    model,
    monitor,
    mpc,
    partner,
    policy,
    redteam,
    review,
    serve,
    watermark,
    workspace,
)
from modelpact.errors import ModelpactError

__all__ = ["app", "main", "run"]

app = typer.Typer(
    name="modelpact",
    help="Share ML models with partners under a signed charter, without giving them away.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
app.command("init")(workspace.init)
app.command("serve")(serve.serve)
app.command("doctor")(doctor.doctor)
app.command("redteam")(redteam.redteam)
app.add_typer(model.app, name="model")
app.add_typer(partner.app, name="partner")
app.add_typer(charter.app, name="charter")
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(monitor.app, name="monitor")
app.add_typer(watermark.app, name="watermark")
app.add_typer(mpc.app, name="mpc")
app.add_typer(dashboard.app, name="dashboard")
app.add_typer(review.app, name="review")
app.add_typer(keys.app, name="keys")


def _version(value: bool) -> None:
    if value:
        print(f"modelpact {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace_dir: Annotated[
        str | None,
        typer.Option(
            "--workspace", "-w", envvar="MODELPACT_WORKSPACE", help="The owner's workspace folder."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    ctx.obj = {"workspace": workspace_dir}


def _one_line(text: str) -> str:
    """Escape newlines and other control characters, so an error stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _fail(message: str, code: int) -> int:
    print(f"modelpact: error: {_one_line(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code.  Never lets a traceback reach the user."""
    try:
        # Without standalone mode, typer returns (not raises) the code of Exit and of Ctrl-C.
        result = app(args=argv, prog_name="modelpact", standalone_mode=False)
        if isinstance(result, int) and not isinstance(result, bool) and result != 0:
            if result == 130:
                print("modelpact: aborted", file=sys.stderr)
            return result
    except ModelpactError as exc:
        return _fail(exc.diagnostics(), 1)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # usage: unknown command, missing or bad argument
        message = exc.format_message()
        if "\n" in message.strip():  # no arguments at all: the message is the help page
            print(message)
            return 2
        return _fail(f"{message} — see 'modelpact --help'", 2)
    except (typer.Abort, KeyboardInterrupt):
        print("modelpact: aborted", file=sys.stderr)
        return 130
    except ImportError as exc:
        missing = exc.name or str(exc)
        return _fail(
            f"this command needs the owner's server install ({missing} is missing) "
            "— run: pip install 'modelpact[server]'",
            1,
        )
    except Exception as exc:
        if os.environ.get("MODELPACT_DEBUG"):
            raise
        return _fail(
            f"internal error ({type(exc).__name__}): {exc} — this is a bug; "
            "rerun with MODELPACT_DEBUG=1 for details",
            70,
        )
    return 0


def run() -> None:
    sys.exit(main())
