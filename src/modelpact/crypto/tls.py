"""TLS material: a local CA, the gateway's server and partner client certificates, and the
certificates of the three parties of a joint (MPC) run.

Everything is X.509 built with ``cryptography``: EC P-256 keys, ECDSA with SHA-256,
extensions that pass OpenSSL's strict chain checks (``VERIFY_X509_STRICT``, the
default from Python 3.13).  Functions return PEM bytes and write nothing: private
keys are PKCS#8 PEM, unencrypted, for the caller to store with
:func:`~modelpact.crypto.files.write_private_file` (0600, never overwritten).

Time is an argument.  ``not_valid_before`` is set five minutes before ``now``, so
a partner whose clock runs slightly behind the owner's still accepts a new
certificate.

Errors: unusable input (a malformed PEM, a host that is neither a DNS name nor an
IP address, a CA certificate that is not a CA) is :class:`InvalidInput`; a CA key
that does not belong to the CA certificate is :class:`Tampered`; a CA past its
end is :class:`Expired`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelpact.errors import Expired, InvalidInput, Tampered, quote_untrusted

__all__ = [
    "cert_fingerprint",
    "cert_hosts",
    "cert_not_after",
    "cert_subject_cn",
    "create_ca",
    "issue_client_cert",
    "issue_party_cert",
    "issue_server_cert",
    "party_cert_index",
    "party_common_name",
    "party_request",
    "server_cert_renewal_reason",
]

_BACKDATE = timedelta(minutes=5)
_MAX_CN = 64  # RFC 5280 upper bound for commonName
_MAX_HOSTS = 100
_MAX_PARTIES = 10  # MPyC party indices in a certificate name: one digit
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")

_Host = x509.DNSName | x509.IPAddress


# ---------------------------------------------------------------------------- issuing


def create_ca(common_name: str, *, now: datetime, days: int = 3650) -> tuple[bytes, bytes]:
    """A self-signed CA that can sign end-entity certificates only (path length 0).

    Returns ``(certificate PEM, private key PEM)``.
    """
    name = _name(common_name, what="CA common name")
    start, end = _window(now, days)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def issue_server_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    *,
    hosts: Sequence[str],
    now: datetime,
    days: int = 825,
    server_key_pem: bytes | None = None,
) -> tuple[bytes, bytes]:
    """A server certificate naming ``hosts`` (DNS names and IP addresses) in its SAN.

    A fresh key is made unless ``server_key_pem`` is given, in which case that key
    is certified again (a renewal keeps the key, so the key file is never
    replaced).  The end is capped at the CA's own.  Returns ``(certificate PEM,
    private key PEM)``.
    """
    names = _hosts(hosts)
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if server_key_pem is None
        else _load_key(server_key_pem, what="server key")
    )
    common_name = names[0].value if isinstance(names[0], x509.DNSName) else str(names[0].value)
    builder, ca_key = _leaf(ca_cert_pem, ca_key_pem, key, now=now, days=days)
    cert = (
        builder.subject_name(_name(common_name[:_MAX_CN], what="server name"))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def issue_client_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    *,
    partner: str,
    now: datetime,
    days: int = 365,
) -> tuple[bytes, bytes]:
    """A client certificate for mutual TLS whose subject common name is the partner id.

    Returns ``(certificate PEM, private key PEM)``; the key goes to the partner only.
    """
    subject = _name(partner, what="partner id")
    key = ec.generate_private_key(ec.SECP256R1())
    builder, ca_key = _leaf(ca_cert_pem, ca_key_pem, key, now=now, days=days)
    cert = (
        builder.subject_name(subject)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def party_common_name(index: int) -> str:
    """The subject MPyC gives party ``index`` and checks as the TLS host name when it connects."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < _MAX_PARTIES:
        raise InvalidInput(f"a party index is 0 to {_MAX_PARTIES - 1}, not {index!r}")
    return f"MPyC party {index}"


def party_request(index: int) -> tuple[bytes, bytes]:
    """A fresh key and a certificate signing request for party ``index``.

    Returns ``(CSR PEM, private key PEM)``: the key stays with the party, the CSR goes to
    whoever runs the joint run's CA (:func:`issue_party_cert`).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(party_common_name(index), what="party name"))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def issue_party_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    csr_pem: bytes,
    *,
    index: int,
    now: datetime,
    days: int = 90,
) -> bytes:
    """A certificate for party ``index`` of a joint run, on the key of ``csr_pem``.

    MPyC uses one certificate per party both to accept its peers' connections and to
    make its own, so it is a server and a client certificate at once, named
    ``MPyC party <index>`` (:func:`party_common_name`).  The request must be signed by its
    own key (proof of possession) and name that party: a CSR for party 1 does not become
    party 2's certificate.  Returns the certificate PEM.
    """
    expected = party_common_name(index)
    if not isinstance(csr_pem, bytes):
        raise InvalidInput("the certificate request must be PEM bytes")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise InvalidInput("the certificate request is not a PEM PKCS#10 request") from None
    if not csr.is_signature_valid:
        raise Tampered("the certificate request's signature does not verify")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise InvalidInput("the certificate request's key is not an EC P-256 key")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [expected]:
        shown = ", ".join(quote_untrusted(str(n.value)) for n in names) or "no name"
        raise InvalidInput(f"the certificate request names {shown}, not {expected!r}")
    builder, ca_key = _leaf(ca_cert_pem, ca_key_pem, public, now=now, days=days)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        builder.subject_name(_name(expected, what="party name"))
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def party_cert_index(pem: bytes, ca_cert_pem: bytes, *, now: datetime) -> int:
    """The party index a joint-run certificate names, once it is checked against the CA.

    :class:`Tampered` for a certificate this CA did not issue, :class:`Expired` outside
    its validity, :class:`InvalidInput` for one that names no party.  A check before a
    run starts, so that a wrong file fails in one line rather than as a hung handshake.
    """
    cert = _load_cert(pem, what="party certificate")
    ca = _load_cert(ca_cert_pem, what="CA certificate")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise Tampered("the party certificate was not issued by this CA") from None
    at = _utc(now)
    if not cert.not_valid_before_utc <= at < cert.not_valid_after_utc:
        raise Expired(
            f"the party certificate is valid from {cert.not_valid_before_utc.isoformat()} "
            f"until {cert.not_valid_after_utc.isoformat()}"
        )
    name = cert_subject_cn(pem)
    match = re.fullmatch(r"MPyC party ([0-9])", name)
    if match is None:
        raise InvalidInput(f"the certificate names {quote_untrusted(name)}, not an MPyC party")
    return int(match.group(1))


def server_cert_renewal_reason(
    cert_pem: bytes,
    key_pem: bytes,
    ca_cert_pem: bytes,
    *,
    hosts: Sequence[str],
    now: datetime,
    renew_within: timedelta = timedelta(days=30),
) -> str | None:
    """Why the server certificate should be issued again, or ``None`` if it is fine.

    Reasons: it cannot be read, does not belong to ``key_pem``, was not issued by
    this CA, is not a server certificate, does not name every one of ``hosts``,
    is not valid yet, has ended, or ends within ``renew_within`` (unless the CA
    ends no later, since a renewal could not last longer).  A key or CA certificate that cannot
    be read raises :class:`InvalidInput`: a new certificate would not help.
    """
    key = _load_key(key_pem, what="server key")
    ca = _load_cert(ca_cert_pem, what="CA certificate")
    wanted = [_host_text(name) for name in _hosts(hosts)]
    at = _utc(now)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "it is not a readable PEM certificate"
    if _spki(cert.public_key()) != _spki(key.public_key()):
        return "it does not belong to the server key"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "it was not issued by the workspace CA"
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        return "it is not a server certificate"
    present = set(_san_texts(cert))
    missing = [host for host in wanted if host not in present]
    if missing:
        return f"it does not name {', '.join(missing)}"
    if at < cert.not_valid_before_utc:
        return f"it is not valid before {cert.not_valid_before_utc.isoformat()}"
    end = cert.not_valid_after_utc
    if at >= end:
        return f"it ended on {end.isoformat()}"
    if end - at < renew_within and ca.not_valid_after_utc > end:
        return f"it ends on {end.isoformat()}"
    return None


# ---------------------------------------------------------------------------- reading


def cert_fingerprint(pem: bytes) -> str:
    """``sha256:<hex>`` of the certificate's DER encoding."""
    cert = _load_cert(pem, what="certificate")
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def cert_subject_cn(pem: bytes) -> str:
    """The subject's common name (for a client certificate: the partner id)."""
    cert = _load_cert(pem, what="certificate")
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(values) != 1:
        raise InvalidInput("the certificate subject does not hold exactly one common name")
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def cert_not_after(pem: bytes) -> datetime:
    """The end of the certificate's validity, in UTC."""
    return _load_cert(pem, what="certificate").not_valid_after_utc


def cert_hosts(pem: bytes) -> tuple[str, ...]:
    """The DNS names (lower case) and IP addresses in the certificate's SAN, in order."""
    return _san_texts(_load_cert(pem, what="certificate"))


# ---------------------------------------------------------------------------- internals


def _utc(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("certificate times need a timezone-aware datetime")
    return now.astimezone(UTC).replace(microsecond=0)


def _window(now: datetime, days: int) -> tuple[datetime, datetime]:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInput(f"certificate lifetime must be a positive number of days, not {days!r}")
    start = _utc(now)
    return start - _BACKDATE, start + timedelta(days=days)


def _name(text: str, *, what: str) -> x509.Name:
    if not isinstance(text, str) or not 1 <= len(text) <= _MAX_CN or not text.isprintable():
        raise InvalidInput(f"{what} must be 1 to {_MAX_CN} printable characters")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_cert(pem: bytes, *, what: str) -> x509.Certificate:
    if not isinstance(pem, bytes):
        raise InvalidInput(f"{what} must be PEM bytes")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise InvalidInput(f"{what} is not a PEM X.509 certificate") from None


def _load_key(pem: bytes, *, what: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(pem, bytes):
        raise InvalidInput(f"{what} must be PEM bytes")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInput(f"{what} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidInput(f"{what} is not an EC P-256 private key")
    return key


def _load_ca(
    ca_cert_pem: bytes, ca_key_pem: bytes
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = _load_cert(ca_cert_pem, what="CA certificate")
    key = _load_key(ca_key_pem, what="CA key")
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = x509.BasicConstraints(ca=False, path_length=None)
    if not constraints.ca:
        raise InvalidInput("the CA certificate is not a certificate authority")
    if _spki(ca.public_key()) != _spki(key.public_key()):
        raise Tampered("the CA key does not belong to the CA certificate")
    return ca, key


def _leaf(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    days: int,
) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
    """The parts every end-entity certificate shares, and the CA key to sign it with.

    ``key``: the subject's key (its public half is certified).  The caller adds the
    subject and the extended key usage.
    """
    ca, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    start, end = _window(now, days)
    ca_end = ca.not_valid_after_utc
    if ca_end <= start + _BACKDATE:
        raise Expired(
            f"the workspace CA ended on {ca_end.isoformat()}",
            hint="move tls/ aside to create a new CA, then give partners the new ca.pem",
        )
    public = key if isinstance(key, ec.EllipticCurvePublicKey) else key.public_key()
    try:
        ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    builder = (
        x509.CertificateBuilder()
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(end, ca_end))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(authority, critical=False)
    )
    return builder, ca_key


def _host(text: str) -> _Host:
    """A SAN entry for ``text``: an IP address if it parses as one, else a DNS name."""
    if not isinstance(text, str):
        raise InvalidInput("a host must be a string")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise InvalidInput(f"host {quote_untrusted(text)} has a zone; certificates name none")
        return x509.IPAddress(address)
    name = text.lower()
    # A name whose last label is all digits would read as a (mistyped) IP address.
    if len(name) > 253 or not _DNS_NAME.match(name) or name.rsplit(".", 1)[-1].isdigit():
        raise InvalidInput(
            f"host {quote_untrusted(text)} is neither a DNS name nor an IP address",
            hint="use letters, digits, '-' and '.' (an international name in its xn-- form)",
        )
    return x509.DNSName(name)


def _hosts(hosts: Sequence[str]) -> list[_Host]:
    if isinstance(hosts, str | bytes):
        raise InvalidInput("hosts must be a list of names, not one string")
    names: list[_Host] = []
    for text in hosts:
        name = _host(text)
        if name not in names:
            names.append(name)
    if not names or len(names) > _MAX_HOSTS:
        raise InvalidInput(f"a server certificate names 1 to {_MAX_HOSTS} hosts")
    return names


def _host_text(name: _Host) -> str:
    return name.value if isinstance(name, x509.DNSName) else str(name.value)


def _san_texts(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(_host_text(n) for n in san if isinstance(n, x509.DNSName | x509.IPAddress))
