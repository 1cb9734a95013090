"""``modelpact keys``: rotate the workspace's keys.

The key-encryption key's commands live in :mod:`modelpact.cli.keys_kek`, the owner's
signing-key handover in :mod:`modelpact.cli.keys_owner`; each adds its commands here.
"""

from __future__ import annotations

import typer

from modelpact.cli import keys_kek, keys_owner

__all__ = ["app"]

app = typer.Typer(help="Rotate the workspace's keys.", no_args_is_help=True)
keys_kek.register(app)
keys_owner.register(app)
