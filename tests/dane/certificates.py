"""Certificates for DANE tests and the TLSA records that pin them.

The records are computed here with cryptography and hashlib the way an operator's
tools (``openssl x509 -pubkey | sha256sum``, ldns-dane, hash-slinger) compute them, so
a test can publish "the right record" or a stale one.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from pathlib import Path
from typing import NamedTuple

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def tlsa_text(der: bytes, usage: int, selector: int = 1, mtype: int = 1) -> str:
    """The TLSA record data (``3 1 1 abcd…``) that pins a DER certificate."""
    data = der
    if selector == 1:
        data = (
            x509.load_der_x509_certificate(der)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return f"{usage} {selector} {mtype} {data.hex()}"


class Chain(NamedTuple):
    """A leaf issued by an intermediate under a root, as DER and as a server context."""

    leaf: bytes
    intermediate: bytes
    root: bytes
    presented: list[bytes]  # what the server sends: leaf, intermediate (and root if asked)
    context: ssl.SSLContext
    chain_pem: bytes  # the same as files for servers that read files (Postfix)
    key_pem: bytes

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Certificate chain and key files; the key readable by its owner only."""
        chain, key = directory / "chain.pem", directory / "key.pem"
        chain.write_bytes(self.chain_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return chain, key


def issue_chain(
    *names: str,
    days_left: float = 90,
    send_root: bool = False,
    root: trustme.CA | None = None,
) -> Chain:
    """A fresh chain for ``names`` (a new root unless one is given)."""
    root = root or trustme.CA()
    intermediate = root.create_child_ca()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    leaf = intermediate.issue_cert(
        *names,
        not_before=now + datetime.timedelta(days=min(-1, days_left - 30)),
        not_after=now + datetime.timedelta(days=days_left),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    presented = [der_of(blob.bytes()) for blob in leaf.cert_chain_pems]
    chain_pem = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    if send_root:  # RFC 7671 5.2.2: a DANE-TA(2) server sends its trust anchor too
        chain_pem += root.cert_pem.bytes()
        context = _context_from(chain_pem, leaf.private_key_pem.bytes())
        presented.append(der_of(root.cert_pem.bytes()))
    return Chain(
        presented[0],
        der_of(intermediate.cert_pem.bytes()),
        der_of(root.cert_pem.bytes()),
        presented,
        context,
        chain_pem,
        leaf.private_key_pem.bytes(),
    )


def _context_from(chain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        cert, key = Path(directory) / "chain.pem", Path(directory) / "key.pem"
        cert.write_bytes(chain_pem)
        key.write_bytes(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    return context


def self_signed(name: str, days_left: float = 90) -> tuple[bytes, ssl.SSLContext]:
    """A self-signed leaf: what DANE-EE exists for (no CA anyone trusts)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=min(-1, days_left - 30)))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return der_of(pem), _context_from(pem, key_pem)
