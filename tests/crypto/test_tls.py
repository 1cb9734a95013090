"""TLS material: real handshakes on loopback with Python's ssl, and what the certificates hold.

Handshakes use the real time (OpenSSL checks validity against the system clock)
and ``VERIFY_X509_STRICT``, the default from Python 3.13, so partners on a recent
Python accept the chain too.  Every socket has a bounded timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelpact.crypto import (
    cert_fingerprint,
    cert_hosts,
    cert_not_after,
    cert_subject_cn,
    create_ca,
    issue_client_cert,
    issue_server_cert,
    server_cert_renewal_reason,
    write_private_file,
)
from modelpact.crypto.tls import issue_party_cert, party_cert_index, party_request
from modelpact.errors import Expired, InvalidInput, Tampered

TIMEOUT = 5.0
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
HOSTS = ("localhost", "127.0.0.1", "::1")
_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    ca_pem: bytes
    ca_key: bytes


def _write(folder: Path, name: str, cert: bytes, key: bytes) -> tuple[Path, Path]:
    (folder / f"{name}.pem").write_bytes(cert)
    write_private_file(folder / f"{name}.key", key)
    return folder / f"{name}.pem", folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and server certificate valid now (the handshake checks the real clock)."""
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_pem, ca_key = create_ca("modelpact test local CA", now=now)
    ca, _ = _write(folder, "ca", ca_pem, ca_key)
    server = issue_server_cert(ca_pem, ca_key, hosts=HOSTS, now=now)
    server_cert, server_key = _write(folder, "server", *server)
    return Pki(ca, server_cert, server_key, ca_pem, ca_key)


def _server_context(pki: Pki, *, require_client: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=pki.ca)
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


@contextlib.contextmanager
def tls_server(
    context: ssl.SSLContext, address: str = "127.0.0.1"
) -> Iterator[tuple[int, queue.Queue[object]]]:
    """Accept one connection; put the peer's certificate (or the error) in a queue."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        listener = socket.create_server((address, 0), family=family)
    except OSError as exc:
        pytest.skip(f"cannot listen on {address}: {exc.strerror}")
    listener.settimeout(TIMEOUT)
    seen: queue.Queue[object] = queue.Queue()

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError as exc:
            seen.put(exc)
            return
        connection.settimeout(TIMEOUT)
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                seen.put(tls.getpeercert())
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen.put(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        listener.close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def _client_context(ca: Path, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if client is not None:
        context.load_cert_chain(*client)
    return context


def _exchange(
    context: ssl.SSLContext, port: int, server_hostname: str, address: str = "127.0.0.1"
) -> bytes:
    """Handshake and read the server's greeting; ``b""`` if the server hung up."""
    with (
        socket.create_connection((address, port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        try:
            return tls.recv(2)
        except (ssl.SSLError, ConnectionError):
            return b""  # TLS 1.3: a refused client certificate shows on the first read


def _served(seen: queue.Queue[object]) -> object:
    return seen.get(timeout=TIMEOUT)


def _peer_cn(peer: object) -> str:
    assert isinstance(peer, dict)
    names = [value for rdn in peer["subject"] for key, value in rdn if key == "commonName"]
    assert len(names) == 1
    return str(names[0])


# ---------------------------------------------------------------------------- handshakes


@pytest.mark.parametrize("server_hostname", ["localhost", "LocalHost", "127.0.0.1"])
def test_a_client_trusting_the_ca_verifies_the_server(pki: Pki, server_hostname: str) -> None:
    with tls_server(_server_context(pki, require_client=False)) as (port, seen):
        assert _exchange(_client_context(pki.ca), port, server_hostname) == b"ok"
        assert _served(seen) is None  # no client certificate asked for


def test_the_server_is_verified_over_ipv6_loopback(pki: Pki) -> None:
    with tls_server(_server_context(pki, require_client=False), "::1") as (port, seen):
        assert _exchange(_client_context(pki.ca), port, "::1", "::1") == b"ok"
        assert _served(seen) is None


@pytest.mark.parametrize("server_hostname", ["gateway.example", "127.0.0.2", "localhost.evil"])
def test_a_name_not_in_the_certificate_fails_verification(pki: Pki, server_hostname: str) -> None:
    with tls_server(_server_context(pki, require_client=False)) as (port, seen):
        with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
            _exchange(_client_context(pki.ca), port, server_hostname)
        assert isinstance(_served(seen), ssl.SSLError)


def test_a_client_that_does_not_trust_the_ca_fails(pki: Pki, tmp_path: Path) -> None:
    other, _ = create_ca("someone else's CA", now=datetime.now(UTC))
    (tmp_path / "other.pem").write_bytes(other)
    with tls_server(_server_context(pki, require_client=False)) as (port, seen):
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            _exchange(_client_context(tmp_path / "other.pem"), port, "localhost")
        assert isinstance(_served(seen), ssl.SSLError)


def test_mutual_tls_shows_the_server_the_partner_id(pki: Pki, tmp_path: Path) -> None:
    cert, key = issue_client_cert(pki.ca_pem, pki.ca_key, partner="acme", now=datetime.now(UTC))
    client = _write(tmp_path, "acme", cert, key)
    with tls_server(_server_context(pki, require_client=True)) as (port, seen):
        assert _exchange(_client_context(pki.ca, client), port, "localhost") == b"ok"
        assert _peer_cn(_served(seen)) == "acme" == cert_subject_cn(cert)


def test_mutual_tls_refuses_a_client_without_a_certificate(pki: Pki) -> None:
    with tls_server(_server_context(pki, require_client=True)) as (port, seen):
        assert _exchange(_client_context(pki.ca), port, "localhost") == b""
        refused = _served(seen)
        assert isinstance(refused, ssl.SSLError)
        assert "certificate" in str(refused).lower()


def test_mutual_tls_refuses_a_client_certificate_from_another_ca(pki: Pki, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    other_pem, other_key = create_ca("someone else's CA", now=now)
    client = _write(
        tmp_path, "mallory", *issue_client_cert(other_pem, other_key, partner="acme", now=now)
    )
    with tls_server(_server_context(pki, require_client=True)) as (port, seen):
        assert _exchange(_client_context(pki.ca, client), port, "localhost") == b""
        assert isinstance(_served(seen), ssl.SSLError)


def test_a_client_certificate_cannot_serve(pki: Pki, tmp_path: Path) -> None:
    """Extended key usage keeps a partner's certificate from impersonating the gateway."""
    now = datetime.now(UTC)
    cert, key = issue_client_cert(pki.ca_pem, pki.ca_key, partner="localhost", now=now)
    impostor = _write(tmp_path, "impostor", cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*impostor)
    with tls_server(context) as (port, seen):
        with pytest.raises(ssl.SSLCertVerificationError):
            _exchange(_client_context(pki.ca), port, "localhost")
        assert isinstance(_served(seen), ssl.SSLError)


# ---------------------------------------------------------------------------- contents


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _ext(cert: x509.Certificate, kind: type[_E]) -> x509.Extension[_E]:
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return create_ca("modelpact northwind local CA", now=NOW)


def test_the_ca_is_p256_sha256_and_signs_end_entities_only(ca: tuple[bytes, bytes]) -> None:
    cert = _load(ca[0])
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.subject == cert.issuer
    assert cert_subject_cn(ca[0]) == "modelpact northwind local CA"
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert _ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        public
    )
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert_not_after(ca[0]) == NOW + timedelta(days=3650)
    assert b"PRIVATE KEY" in ca[1] and b"ENCRYPTED" not in ca[1]


def test_the_server_certificate_names_its_hosts(ca: tuple[bytes, bytes]) -> None:
    pem, key = issue_server_cert(*ca, hosts=["LocalHost", "127.0.0.1", "::1", "localhost"], now=NOW)
    cert = _load(pem)
    assert cert_hosts(pem) == HOSTS  # lower case, duplicates dropped, order kept
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in _ext(cert, x509.ExtendedKeyUsage).value
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    ca_ski = _ext(_load(ca[0]), x509.SubjectKeyIdentifier).value
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cert.issuer == _load(ca[0]).subject
    assert cert_not_after(pem) == NOW + timedelta(days=825)
    assert b"PRIVATE KEY" in key
    again, _ = issue_server_cert(*ca, hosts=HOSTS, now=NOW)
    assert _load(again).serial_number != cert.serial_number


def test_a_server_certificate_ends_with_its_ca(ca: tuple[bytes, bytes]) -> None:
    late = NOW + timedelta(days=3600)
    pem, _ = issue_server_cert(*ca, hosts=HOSTS, now=late)
    assert cert_not_after(pem) == cert_not_after(ca[0])


def test_renewal_can_keep_the_server_key(ca: tuple[bytes, bytes]) -> None:
    first, key = issue_server_cert(*ca, hosts=HOSTS, now=NOW)
    second, same = issue_server_cert(*ca, hosts=HOSTS, now=NOW, server_key_pem=key)
    assert same == key
    assert _load(first).public_key() == _load(second).public_key()


def test_the_client_certificate_carries_the_partner_id(ca: tuple[bytes, bytes]) -> None:
    pem, key = issue_client_cert(*ca, partner="acme", now=NOW)
    cert = _load(pem)
    assert cert_subject_cn(pem) == "acme"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "acme"
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert_not_after(pem) == NOW + timedelta(days=365)
    assert b"PRIVATE KEY" in key


def test_fingerprint_is_sha256_of_the_der(ca: tuple[bytes, bytes]) -> None:
    der = ssl.PEM_cert_to_DER_cert(ca[0].decode())
    assert cert_fingerprint(ca[0]) == "sha256:" + hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------------------- renewal


def test_renewal_reasons(ca: tuple[bytes, bytes]) -> None:
    pem, key = issue_server_cert(*ca, hosts=HOSTS, now=NOW)
    end = cert_not_after(pem)

    def reason(**changes: object) -> str | None:
        args: dict[str, object] = {"cert_pem": pem, "key_pem": key, "ca_cert_pem": ca[0]}
        args |= {"hosts": ["localhost"], "now": NOW} | changes
        return server_cert_renewal_reason(**args)  # type: ignore[arg-type]

    other_ca = create_ca("other", now=NOW)
    other_key = issue_server_cert(*ca, hosts=HOSTS, now=NOW)[1]
    assert reason() is None
    assert reason(now=end - timedelta(days=31)) is None
    assert reason(hosts=["localhost", "gw.example", "10.0.0.1"]) == (
        "it does not name gw.example, 10.0.0.1"
    )
    assert reason(now=end - timedelta(days=10)) == f"it ends on {end.isoformat()}"
    assert reason(now=end) == f"it ended on {end.isoformat()}"
    start = _load(pem).not_valid_before_utc
    assert reason(now=NOW - timedelta(hours=1)) == f"it is not valid before {start.isoformat()}"
    assert reason(cert_pem=b"junk") == "it is not a readable PEM certificate"
    assert reason(key_pem=other_key) == "it does not belong to the server key"
    assert reason(ca_cert_pem=other_ca[0]) == "it was not issued by the workspace CA"
    # Near the CA's own end a new certificate could last no longer: no churn.
    late, late_key = issue_server_cert(*ca, hosts=HOSTS, now=NOW + timedelta(days=3640))
    assert reason(cert_pem=late, key_pem=late_key, now=NOW + timedelta(days=3641)) is None


def test_a_client_certificate_is_not_a_server_certificate(ca: tuple[bytes, bytes]) -> None:
    pem, key = issue_client_cert(*ca, partner="localhost", now=NOW)
    reason = server_cert_renewal_reason(pem, key, ca[0], hosts=["localhost"], now=NOW)
    assert reason == "it is not a server certificate"


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "host",
    [
        "",
        "exa mple.com",
        "under_score.example",
        "-leading.example",
        "trailing-.example",
        "dot..example",
        "a" * 64 + ".example",
        "1.2.3.999",
        "bücher.example",
        "fe80::1%eth0",
        "[::1]",
        "*.example.com",
        "localhost\nX-Injected: 1",
    ],
)
def test_a_host_that_is_neither_dns_nor_ip_is_refused(ca: tuple[bytes, bytes], host: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        issue_server_cert(*ca, hosts=[host], now=NOW)
    assert "\n" not in caught.value.diagnostics()


def test_hosts_must_be_a_list(ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(InvalidInput, match="not one string"):
        issue_server_cert(*ca, hosts="localhost", now=NOW)
    with pytest.raises(InvalidInput, match="1 to 100"):
        issue_server_cert(*ca, hosts=[], now=NOW)


def test_a_key_that_is_not_the_cas_is_tampered(ca: tuple[bytes, bytes]) -> None:
    _, stranger = create_ca("other", now=NOW)
    with pytest.raises(Tampered, match="does not belong"):
        issue_server_cert(ca[0], stranger, hosts=HOSTS, now=NOW)
    with pytest.raises(Tampered):
        issue_client_cert(ca[0], stranger, partner="acme", now=NOW)


def test_an_end_entity_certificate_cannot_act_as_a_ca(ca: tuple[bytes, bytes]) -> None:
    leaf, leaf_key = issue_server_cert(*ca, hosts=HOSTS, now=NOW)
    with pytest.raises(InvalidInput, match="not a certificate authority"):
        issue_client_cert(leaf, leaf_key, partner="acme", now=NOW)


def test_an_expired_ca_issues_nothing(ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(Expired, match="CA ended"):
        issue_server_cert(*ca, hosts=HOSTS, now=NOW + timedelta(days=3651))


@pytest.mark.parametrize(
    "call",
    [
        lambda ca: cert_fingerprint(b"junk"),
        lambda ca: cert_subject_cn(b""),
        lambda ca: cert_not_after(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ),
        lambda ca: cert_hosts("not bytes"),  # type: ignore[arg-type]
        lambda ca: issue_server_cert(b"junk", ca[1], hosts=HOSTS, now=NOW),
        lambda ca: issue_server_cert(ca[0], b"junk", hosts=HOSTS, now=NOW),
        lambda ca: issue_server_cert(ca[0], ca[0], hosts=HOSTS, now=NOW),
        lambda ca: issue_server_cert(*ca, hosts=HOSTS, now=NOW, server_key_pem=b"junk"),
        lambda ca: issue_client_cert(*ca, partner="", now=NOW),
        lambda ca: issue_client_cert(*ca, partner="a" * 65, now=NOW),
        lambda ca: issue_client_cert(*ca, partner="acme\nroot", now=NOW),
        lambda ca: issue_client_cert(*ca, partner="acme", now=NOW, days=0),
        lambda ca: create_ca("x", now=datetime(2026, 3, 1)),  # naive: refused
        lambda ca: create_ca("", now=NOW),
        lambda ca: create_ca("x", now=NOW, days=True),
    ],
)
def test_unusable_input_is_one_line_invalid_input(
    ca: tuple[bytes, bytes], call: Callable[[tuple[bytes, bytes]], object]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        call(ca)
    assert "\n" not in caught.value.diagnostics()


def test_an_encrypted_or_non_p256_key_is_refused(ca: tuple[bytes, bytes]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    locked = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    edwards = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for key in (p384, locked, edwards):
        with pytest.raises(InvalidInput, match=r"P-256|unencrypted"):
            issue_server_cert(*ca, hosts=HOSTS, now=NOW, server_key_pem=key)


# ---------------------------------------------------------------------------- joint-run parties


def _party(folder: Path, ca: tuple[bytes, bytes], index: int, now: datetime) -> tuple[Path, Path]:
    request, key = party_request(index)
    cert = issue_party_cert(*ca, request, index=index, now=now)
    return _write(folder, f"party_{index}", cert, key)


def test_parties_authenticate_each_other_as_mpyc_does(tmp_path: Path) -> None:
    """Like MPyC: both sides present their certificate; the client checks the name
    ``MPyC party <i>`` of the party it dials; each one's certificate is server and client."""
    now = datetime.now(UTC)
    ca = create_ca("joint CA", now=now)
    (tmp_path / "ca.pem").write_bytes(ca[0])
    listener, dialer = _party(tmp_path, ca, 2, now), _party(tmp_path, ca, 1, now)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.pem")
    server.load_cert_chain(*listener)
    server.verify_mode = ssl.CERT_REQUIRED
    server.verify_flags |= ssl.VERIFY_X509_STRICT
    client = _client_context(tmp_path / "ca.pem", dialer)
    with tls_server(server) as (port, seen):
        assert _exchange(client, port, "MPyC party 2") == b"ok"
        assert _peer_cn(_served(seen)) == "MPyC party 1"
    with tls_server(server) as (port, seen), pytest.raises(ssl.SSLCertVerificationError):
        _exchange(client, port, "MPyC party 0")  # party 2's certificate is not party 0's


def test_a_party_certificate_is_issued_on_the_requests_key_and_name(
    ca: tuple[bytes, bytes],
) -> None:
    request, key = party_request(1)
    cert = x509.load_pem_x509_certificate(issue_party_cert(*ca, request, index=1, now=NOW))
    assert cert_subject_cn(cert.public_bytes(serialization.Encoding.PEM)) == "MPyC party 1"
    private = serialization.load_pem_private_key(key, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == private.public_key()  # the party's own key, kept by it
    usages = _ext(cert, x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=90, minutes=5)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert party_cert_index(pem, ca[0], now=NOW) == 1


def test_a_request_for_another_party_or_unsigned_is_refused(ca: tuple[bytes, bytes]) -> None:
    request, _ = party_request(1)
    with pytest.raises(InvalidInput, match="names 'MPyC party 1', not 'MPyC party 2'"):
        issue_party_cert(*ca, request, index=2, now=NOW)
    other = ec.generate_private_key(ec.SECP256R1())
    forged = x509.load_pem_x509_csr(request)
    swapped = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(forged.subject)
        .sign(other, hashes.SHA256())
    )
    body = swapped.public_bytes(serialization.Encoding.DER)
    tampered = bytearray(body)
    tampered[-5] ^= 0x01  # the signature no longer matches
    pem = x509.load_der_x509_csr(bytes(tampered)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(Tampered, match="signature does not verify"):
        issue_party_cert(*ca, pem, index=1, now=NOW)
    with pytest.raises(InvalidInput, match="not a PEM PKCS#10 request"):
        issue_party_cert(*ca, b"nonsense", index=1, now=NOW)
    for index in (-1, 10, True):
        with pytest.raises(InvalidInput, match="a party index is 0 to 9"):
            party_request(index)  # type: ignore[arg-type]


def test_a_party_certificate_is_checked_before_a_run(ca: tuple[bytes, bytes]) -> None:
    request, _ = party_request(0)
    pem = issue_party_cert(*ca, request, index=0, now=NOW, days=10)
    other = create_ca("another CA", now=NOW)
    with pytest.raises(Tampered, match="not issued by this CA"):
        party_cert_index(pem, other[0], now=NOW)
    with pytest.raises(Expired):
        party_cert_index(pem, ca[0], now=NOW + timedelta(days=11))
    server, _ = issue_server_cert(*ca, hosts=["localhost"], now=NOW)
    with pytest.raises(InvalidInput, match="'localhost', not an MPyC party"):
        party_cert_index(server, ca[0], now=NOW)
