"""Partner data and small secrets at rest: sealed under a fresh data key the KEK wraps.

One JSON envelope — its format name, the wrapped data key and the sealed bytes, both
base64 — bound by associated data to what it belongs to, so an envelope copied onto
another record does not open (:class:`~modelpact.errors.Tampered`).  The field names are
the caller's: they are what its stored rows already say.

A partner's own data is sealed with :func:`seal_for_partner` instead: the envelope's data
key is wrapped by that partner's data key under the charter
(:class:`~modelpact.services.partner_keys.PartnerDataKeys`), itself wrapped by the KEK, so
destroying the partner's key at exit makes every such envelope undecryptable.  Such an
envelope names the *generation* of the partner's key it was sealed under (absent: the
first), since a key that has sealed enough is succeeded by a new generation.
:func:`envelope_format` tells the two apart when reading rows written before.

A KEK rotation re-wraps an envelope's data key with :func:`rewrap_envelope`: the sealed
bytes stay as they are.
"""

from __future__ import annotations

import base64
import json

from modelpact.crypto import DataKey
from modelpact.errors import InvalidInput, NotFound, Tampered
from modelpact.services.kek import Wrap
from modelpact.services.partner_keys import KeyDestroyed, PartnerDataKeys
from modelpact.services.workspace import Workspace

__all__ = [
    "envelope_format",
    "open_envelope",
    "open_for_partner",
    "rewrap_envelope",
    "seal_envelope",
    "seal_for_partner",
]


def seal_envelope(
    wrap: Wrap, plaintext: bytes, ad: bytes, *, kind: str, fields: tuple[str, str]
) -> str:
    """``plaintext`` sealed under a new data key wrapped by ``wrap``; ``fields``: the names
    of the wrapped key and of the sealed bytes in the envelope.

    ``wrap`` is what :meth:`~modelpact.services.kek.WorkspaceKek.wrapping` yields: store
    the envelope before its block ends, so a KEK rotation finds it.
    """
    data_key = DataKey.generate()
    return _envelope(kind, fields, wrap(data_key, ad), data_key.seal(plaintext, ad))


def _envelope(
    kind: str,
    fields: tuple[str, str],
    wrapped: bytes,
    sealed: bytes,
    generation: int | None = None,
) -> str:
    wrapped_name, sealed_name = fields
    document: dict[str, str | int] = {
        "format": kind,
        wrapped_name: base64.b64encode(wrapped).decode("ascii"),
        sealed_name: base64.b64encode(sealed).decode("ascii"),
    }
    if generation is not None and generation > 1:  # absent: the first (as before generations)
        document["generation"] = generation
    return json.dumps(document, separators=(",", ":"))


def _parts(text: str, kind: str, fields: tuple[str, str], what: str) -> tuple[bytes, bytes]:
    wrapped_name, sealed_name = fields
    try:
        envelope = json.loads(text)
        if envelope["format"] != kind:
            raise InvalidInput(f"not {what}")
        wrapped = base64.b64decode(envelope[wrapped_name], validate=True)
        sealed = base64.b64decode(envelope[sealed_name], validate=True)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"not {what}") from None
    return wrapped, sealed


def _generation(text: str, what: str) -> int:
    """The partner key generation an envelope names (1 if it names none)."""
    generation = json.loads(text).get("generation", 1)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise InvalidInput(f"not {what}")
    return generation


def envelope_format(text: str) -> str | None:
    """The ``format`` an envelope names, or None if it is not one."""
    try:
        kind = json.loads(text)["format"]
    except (KeyError, TypeError, ValueError):
        return None
    return kind if isinstance(kind, str) else None


def open_envelope(
    ws: Workspace, text: str, ad: bytes, *, kind: str, fields: tuple[str, str], what: str
) -> bytes:
    """The plaintext of :func:`seal_envelope`'s envelope; :class:`InvalidInput` naming
    ``what`` if it is not one, :class:`~modelpact.errors.Tampered` if it was changed."""
    wrapped, sealed = _parts(text, kind, fields, what)
    return ws.kek().unwrap(wrapped, ad).open(sealed, ad)


def rewrap_envelope(
    ws: Workspace, text: str, ad: bytes, *, kind: str, fields: tuple[str, str], what: str
) -> str | None:
    """:func:`seal_envelope`'s envelope with its data key wrapped under the newest KEK, or
    None if it is already (the sealed bytes are unchanged)."""
    wrapped, sealed = _parts(text, kind, fields, what)
    new = ws.kek().rewrap(wrapped, ad)
    return None if new is None else _envelope(kind, fields, new, sealed)


def seal_for_partner(
    ws: Workspace,
    partner: str,
    charter: str,
    plaintext: bytes,
    ad: bytes,
    *,
    kind: str,
    fields: tuple[str, str],
) -> str:
    """Like :func:`seal_envelope`, the data key wrapped by the current generation of the
    partner's key under ``charter`` (made on first use; the seal counted, a new generation
    made when due); :class:`~modelpact.services.partner_keys.KeyDestroyed` after exit."""
    generation, partner_key = PartnerDataKeys(ws).for_sealing(partner, charter)
    data_key = DataKey.generate()
    wrapped = partner_key.seal(data_key.secret(), _wrap_ad(ad, generation))
    return _envelope(kind, fields, wrapped, data_key.seal(plaintext, ad), generation)


def _wrap_ad(ad: bytes, generation: int) -> bytes:
    """What binds a data key's wrap to its record and to the generation the envelope names."""
    return b"wrap:" + ad + (b"" if generation == 1 else f"#{generation}".encode())


def open_for_partner(
    ws: Workspace,
    partner: str,
    charter: str,
    text: str,
    ad: bytes,
    *,
    kind: str,
    fields: tuple[str, str],
    what: str,
) -> bytes:
    """The plaintext of :func:`seal_for_partner`'s envelope; :class:`InvalidInput` naming
    ``what`` if it is not one, :class:`~modelpact.errors.Tampered` if it was changed,
    :class:`~modelpact.services.partner_keys.KeyDestroyed` once the partner's key is gone."""
    wrapped, sealed = _parts(text, kind, fields, what)
    generation = _generation(text, what)
    try:
        partner_key = PartnerDataKeys(ws).generation(partner, charter, generation)
    except KeyDestroyed:
        raise
    except NotFound:  # never sealed for this partner: moved here from another record
        raise Tampered(
            f"{what} does not open: {partner} has no data key under {charter}"
            + ("" if generation == 1 else f" (generation {generation})")
        ) from None
    return DataKey(partner_key.open(wrapped, _wrap_ad(ad, generation))).open(sealed, ad)
