"""Partner data and small secrets at rest: sealed under a fresh data key the KEK wraps.

One JSON envelope — its format name, the wrapped data key and the sealed bytes, both
base64 — bound by associated data to what it belongs to, so an envelope copied onto
another record does not open (:class:`~modelpact.errors.Tampered`).  The field names are
the caller's: they are what its stored rows already say.
"""

from __future__ import annotations

import base64
import json

from modelpact.crypto import DataKey
from modelpact.errors import InvalidInput
from modelpact.services.workspace import Workspace

__all__ = ["open_envelope", "seal_envelope"]


def seal_envelope(
    ws: Workspace, plaintext: bytes, ad: bytes, *, kind: str, fields: tuple[str, str]
) -> str:
    """``plaintext`` sealed under a new data key; ``fields``: the names of the wrapped key
    and of the sealed bytes in the envelope."""
    data_key = DataKey.generate()
    wrapped, sealed = fields
    return json.dumps(
        {
            "format": kind,
            wrapped: base64.b64encode(ws.kek().wrap(data_key, ad)).decode("ascii"),
            sealed: base64.b64encode(data_key.seal(plaintext, ad)).decode("ascii"),
        },
        separators=(",", ":"),
    )


def open_envelope(
    ws: Workspace, text: str, ad: bytes, *, kind: str, fields: tuple[str, str], what: str
) -> bytes:
    """The plaintext of :func:`seal_envelope`'s envelope; :class:`InvalidInput` naming
    ``what`` if it is not one, :class:`~modelpact.errors.Tampered` if it was changed."""
    wrapped_name, sealed_name = fields
    try:
        envelope = json.loads(text)
        if envelope["format"] != kind:
            raise InvalidInput(f"not {what}")
        wrapped = base64.b64decode(envelope[wrapped_name], validate=True)
        sealed = base64.b64decode(envelope[sealed_name], validate=True)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"not {what}") from None
    return ws.kek().unwrap(wrapped, ad).open(sealed, ad)
