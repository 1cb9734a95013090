"""The partner SDK: sessions, predictions and receipt verification over HTTP.

Runs with no server installed: it needs httpx, pydantic, ``cryptography`` (through
:mod:`modelpact.crypto`) and the log's verifier modules.
"""

from modelpact.client.attestation import check_attestation
from modelpact.client.partner import AsyncPartnerClient, PartnerClient
from modelpact.client.protocol import Identity, Prediction

__all__ = ["AsyncPartnerClient", "Identity", "PartnerClient", "Prediction", "check_attestation"]
