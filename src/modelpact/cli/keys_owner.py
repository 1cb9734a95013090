"""``modelpact keys rotate-owner`` and ``keys owner-chain``: the owner's signing-key handover.

``rotate-owner`` makes a new owner key, records the handover (signed by the old and the
new key) in the audit log, swaps the key files and signs a checkpoint with the new key;
run it again after an interruption and it finishes the same handover, and a second run
while one is under way stops at once (:mod:`modelpact.services.owner_keys`).
``owner-chain`` prints the workspace's owner keys in order, with the log index of each
handover, for partners and auditors who pin a key.
"""

from __future__ import annotations

import typer

from modelpact.cli.terminal import out, ws_root

__all__ = ["register"]


def rotate_owner(ctx: typer.Context) -> None:
    """(Owner) Hand the audit log and charters over to a new owner signing key.

    Stop the gateway first and start it again after: a running gateway keeps signing
    with the key it started with.  Partners and auditors follow the handover from the
    key they trust; webhook receivers must be given the new key (printed here).
    """
    from modelpact.services import open_workspace
    from modelpact.services.owner_keys import finish_key_swap, rotate_owner_key

    root = ws_root(ctx)
    # An interrupted run may have left the .pub naming the next key (the workspace does
    # not open then): its handover is logged first, then the key is moved into place.
    finish_key_swap(root)
    with open_workspace(root) as ws:
        rotation = rotate_owner_key(ws)
    console = out()
    if rotation.resumed:
        console.print("finished an interrupted owner-key rotation")
    console.print(f"old owner key: {rotation.old_key.encode()} (private key destroyed)")
    console.print(f"new owner key: {rotation.new_key.encode()}")
    console.print(
        f"handover recorded at audit entry {rotation.index}; "
        f"checkpoint of size {rotation.checkpoint.size} signed by the new key"
    )
    console.print(
        "restart the gateway; give the new key to webhook receivers "
        "(partners and auditors follow the handover from the key they trust)"
    )


def owner_chain(ctx: typer.Context) -> None:
    """(Owner) Print the workspace's owner keys in order, and where each handed over."""
    from modelpact.cli.terminal import open_ws
    from modelpact.services.owner_keys import owner_key_chain

    with open_ws(ctx) as ws:
        chain = owner_key_chain(ws)
    console = out()
    for position, key in enumerate(chain.keys):
        if position < len(chain.boundaries):
            console.print(f"{key.encode()}  signed trees up to size {chain.boundaries[position]}")
        else:
            console.print(f"{key.encode()}  current")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``modelpact keys``."""
    app.command("rotate-owner")(rotate_owner)
    app.command("owner-chain")(owner_chain)
