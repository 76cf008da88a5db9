"""Test certificates, made on the fly with trustme: never written into the repository.

One private CA signs everything the plugin should trust; a second one stands for
"a CA you never heard of" (what a self-signed gateway looks like to a client).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import trustme

from tests.smtpd import HOSTNAME

NAMES = (HOSTNAME, "localhost", "127.0.0.1", "::1")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


class TestCertificates:
    """A trusted CA (its PEM file is ``ca_file``) and server contexts of every kind."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.stranger = trustme.CA()
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def context(
        self,
        *names: str,
        days_left: float = 90,
        valid_from_days: float | None = None,
        ca: trustme.CA | None = None,
        maximum_version: ssl.TLSVersion | None = None,
        organization: str | None = None,
    ) -> ssl.SSLContext:
        """A server context with a fresh certificate for ``names`` (default: NAMES).

        ``days_left`` below 0 makes an expired certificate, ``valid_from_days`` above 0
        one that is not valid yet.
        """
        now = _now()
        if valid_from_days is None:
            valid_from_days = min(-1, days_left - 30)
        cert = (ca or self.ca).issue_cert(
            *(names or NAMES),
            not_before=now + datetime.timedelta(days=valid_from_days),
            not_after=now + datetime.timedelta(days=days_left),
            organization_name=organization,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        if maximum_version is not None:
            context.maximum_version = maximum_version
        return context

    def write_pair(self, directory: Path, *names: str, days_left: float = 90) -> tuple[Path, Path]:
        """Certificate chain and key as files, for servers that read files (Postfix)."""
        now = _now()
        cert = self.ca.issue_cert(
            *(names or NAMES),
            not_before=now - datetime.timedelta(days=1),
            not_after=now + datetime.timedelta(days=days_left),
        )
        chain, key = directory / "cert.pem", directory / "key.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        return chain, key

    def context_with_expired_intermediate(self, directory: Path) -> ssl.SSLContext:
        """Leaf valid, its intermediate CA expired yesterday, root trusted: the chain
        that broke clients when an intermediate ran out although every leaf was fine.

        trustme cannot date a child CA, so this chain is built with cryptography.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = _now()
        day = datetime.timedelta(days=1)
        root_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        root = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())

        def build(subject, issuer, key, signer, start, end, ca):
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start)
                .not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if not ca:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [x509.DNSName(HOSTNAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                    ),
                    critical=False,
                )
            return builder.sign(signer, hashes.SHA256())

        middle_key = ec.generate_private_key(ec.SECP256R1())
        middle_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Expired Intermediate")])
        middle = build(
            middle_name, root.subject, middle_key, root_key, now - 60 * day, now - day, True
        )
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME)])
        leaf = build(
            leaf_name, middle_name, leaf_key, middle_key, now - 30 * day, now + 60 * day, False
        )
        chain = directory / "expired-intermediate.pem"
        key = directory / "expired-intermediate.key"
        pem = serialization.Encoding.PEM
        chain.write_bytes(leaf.public_bytes(pem) + middle.public_bytes(pem))
        key.write_bytes(
            leaf_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        return context
