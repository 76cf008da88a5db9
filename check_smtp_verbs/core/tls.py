"""TLS for both programs: the client context, the deadline-bounded handshake, the facts.

Imported only when a run uses TLS, so a plaintext check pays neither for the ssl
module nor for loading a CA store.  Certificates are read from the dicts OpenSSL
decodes anyway; only an unverified session (--insecure, or the notifier's
opportunistic TLS), where Python hands out nothing but the DER bytes, loads a parser
(see parse_certificate).

Verification is OpenSSL's, in the handshake: chain against the system store or a CA
file, and the host name.  One part is taken out of OpenSSL's hands on purpose: the
validity dates.  OpenSSL rejects an expired chain with "certificate has expired" and
no date, and after a failed handshake Python gives out no certificate to read one
from; yet the date is what the admin needs.  So the check's handshake runs with
X509_V_FLAG_NO_CHECK_TIME and the dates of *every* certificate of the verified chain
are checked here (an expired intermediate breaks mail as surely as an expired leaf).
Where the interpreter cannot hand out the verified chain (Python < 3.10), OpenSSL
keeps checking the dates itself.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
from typing import Any, NamedTuple

from check_smtp_verbs.core.deadline import Deadline, DeadlineBound, DeadlineExceeded

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME; Python's VerifyFlags does not name it.
_NO_CHECK_TIME = 0x200000
_VERSIONS = {"SSLv3": 0.3, "TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}


def _verified_chain(sock: ssl.SSLSocket) -> list[Certificate] | None:
    """The verified chain, leaf first, or None if the interpreter does not give it out.

    The C-level SSL object has handed out the verified chain since Python 3.10 (3.13
    made it public on SSLSocket, as DER bytes); its certificate objects carry the same
    decoded dict as getpeercert(), so no parser has to be loaded.  Looked up by name so
    that a missing method means "let OpenSSL check the dates", never an AttributeError.
    """
    getter = getattr(getattr(sock, "_sslobj", None), "get_verified_chain", None)
    if getter is not None:
        chain = []
        for cert in getter():
            info = getattr(cert, "get_info", None)
            chain.append(
                _from_info(info())
                if info is not None
                else parse_certificate(cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
            )
        return chain
    public = getattr(sock, "get_verified_chain", None)
    if public is not None:
        return [parse_certificate(bytes(der)) for der in public()]
    return None


CHAIN_AVAILABLE = hasattr(ssl.SSLSocket, "get_verified_chain") or hasattr(
    getattr(getattr(ssl, "_ssl", None), "_SSLSocket", None), "get_verified_chain"
)


class DeadlineSSLSocket(DeadlineBound, ssl.SSLSocket):
    """A TLS socket whose reads and writes are bounded like the plain one's.

    CPython's TLS read, write and handshake treat the socket timeout as a deadline
    for the whole call (not per underlying read), so setting it to the time left
    before each call is enough to keep a dribbling server within --timeout.
    """


class TlsError(Exception):
    """The handshake failed or what it showed cannot be read; the message says why."""


class Certificate(NamedTuple):
    subject: str
    issuer: str
    names: tuple[str, ...]  # subjectAltName entries, "DNS:mx.example.net", "IP:192.0.2.1"
    not_before: datetime.datetime  # UTC
    not_after: datetime.datetime  # UTC


class TlsFacts(NamedTuple):
    version: str  # "TLSv1.3"
    cipher: str
    bits: int | None
    verified: bool  # chain and name verified (not --insecure)
    server_name: str  # the name verified and sent as SNI
    leaf: Certificate | None
    expiring: Certificate | None  # the certificate whose end comes first (the leaf if unverified)
    chain_length: int


def client_context(
    ca_file: str | None = None, verify: bool = True, own_date_check: bool = True
) -> ssl.SSLContext:
    """A client context that verifies chain and name (``ca_file`` replaces the system
    store), or, with ``verify=False``, encrypts without verifying anything.

    ``own_date_check``: the caller checks the chain's dates itself with date_problem()
    (the check, to name the date); otherwise OpenSSL refuses an expired chain.
    """
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=ca_file)
        if CHAIN_AVAILABLE and own_date_check:
            context.verify_flags |= _NO_CHECK_TIME  # type: ignore[assignment]
    context.sslsocket_class = DeadlineSSLSocket
    return context


def handshake(
    raw: Any, context: ssl.SSLContext, server_name: str, deadline: Deadline
) -> DeadlineSSLSocket:
    """Wrap a connected socket in TLS within the deadline; the TLS socket, or TlsError
    with the reason, or DeadlineExceeded.  ``raw`` belongs to the TLS socket from here
    on: closing one closes the other."""
    try:
        sock = context.wrap_socket(raw, server_hostname=server_name, do_handshake_on_connect=False)
    except (ValueError, ssl.SSLError) as exc:
        raise TlsError(f"TLS set-up failed: {_ssl_reason(exc)}") from None
    assert isinstance(sock, DeadlineSSLSocket)
    sock.deadline = deadline
    try:
        sock.settimeout(deadline.remaining())
        sock.do_handshake()
    except socket.timeout:
        sock.close()
        raise DeadlineExceeded from None
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise TlsError(f"certificate verify failed: {_verify_reason(exc, server_name)}") from None
    except ConnectionResetError:
        sock.close()
        raise TlsError("connection reset by the server during the TLS handshake") from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError, EOFError):
        sock.close()
        raise TlsError("connection closed by the server during the TLS handshake") from None
    except ssl.SSLError as exc:
        sock.close()
        raise TlsError(f"TLS handshake failed: {_ssl_reason(exc)}") from None
    except OSError as exc:
        sock.close()
        raise TlsError(f"TLS handshake failed: {exc.strerror or exc}") from None
    except DeadlineExceeded:
        sock.close()
        raise
    return sock


def version_number(version: str) -> float:
    """``TLSv1.2`` -> 1.2, for comparing with --tls-min-version; 0 when unknown."""
    return _VERSIONS.get(version, 0)


def facts(sock: ssl.SSLSocket, verified: bool, server_name: str) -> TlsFacts:
    """What the session showed.  ImportError (no cryptography for an unverified
    session) and ValueError (an unparsable certificate) are the caller's to word."""
    cipher, _, bits = sock.cipher() or ("unknown", None, None)
    version = sock.version() or "unknown"
    chain: list[Certificate] = []
    if verified:
        info = sock.getpeercert()
        leaf = _from_info(info) if info else None
        if CHAIN_AVAILABLE:
            found = _verified_chain(sock)
            if not found:  # promised by CHAIN_AVAILABLE: never trust dates nobody checked
                raise TlsError("cannot read the verified certificate chain to check its dates")
            chain = found
    else:  # with CERT_NONE, getpeercert() is empty: only the DER form is there
        der = sock.getpeercert(binary_form=True)
        leaf = parse_certificate(der) if der else None
    candidates = chain or ([leaf] if leaf else [])
    expiring = min(candidates, key=lambda c: c.not_after) if candidates else None
    not_yet = [c for c in candidates if c.not_before > now()]
    if not_yet:
        expiring = not_yet[0]
    return TlsFacts(
        version, cipher, bits, verified, server_name, leaf, expiring, len(chain) or int(bool(leaf))
    )


# Short names as RFC 4514 writes them, for the attributes certificates use.
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


_SPECIAL = re.compile(r'([,+;=\\"<>])')


def _escape(value: str) -> str:
    return _SPECIAL.sub(lambda m: "\\" + m.group(1), value)


def _name(rdns: Any) -> str:
    """ssl's decoded name (tuple of RDNs) as an RFC 4514 string, most specific first."""
    return ",".join(
        "+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
        for rdn in reversed(rdns or ())
    )


def _from_info(info: dict[str, Any]) -> Certificate:
    """A Certificate from the dict that getpeercert() and the chain objects decode to."""
    names = []
    for kind, value in info.get("subjectAltName", ()):
        if kind == "DNS":
            names.append(f"DNS:{value}")
        elif kind == "IP Address":
            try:
                names.append(f"IP:{ipaddress.ip_address(value.strip())}")
            except ValueError:
                names.append(f"IP:{value.strip()}")
    return Certificate(
        _name(info.get("subject")),
        _name(info.get("issuer")),
        tuple(names),
        _when(info["notBefore"]),
        _when(info["notAfter"]),
    )


def _when(text: str) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(text), datetime.timezone.utc)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def days_left(certificate: Certificate) -> float:
    return (certificate.not_after - now()).total_seconds() / 86400


def when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def date_problem(facts: TlsFacts) -> str:
    """Why the verified chain is not valid right now, or "" if it is."""
    cert = facts.expiring
    if cert is None:
        return ""
    who = "" if cert == facts.leaf else f" (chain certificate {cert.subject})"
    if cert.not_before > now():
        return f"certificate not valid before {when(cert.not_before)}{who}"
    if cert.not_after < now():
        return f"certificate expired on {when(cert.not_after)}{who}"
    return ""


def parse_certificate(der: bytes) -> Certificate:
    """Read the facts of one DER certificate, for --insecure.

    With verification off (CERT_NONE) ``getpeercert()`` returns an empty dict: the
    DER form is all there is, and the standard library's own DER decoder is private.
    So the ``cryptography`` package parses it, imported here and only here: a
    verified check (the common case) reads the dicts OpenSSL already decoded and
    does not pay the ~50 ms its import costs.
    """
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(
            [f"DNS:{n}" for n in extension.value.get_values_for_type(x509.DNSName)]
            + [f"IP:{n}" for n in extension.value.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    return Certificate(
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        names,
        _utc(cert, "not_valid_before"),
        _utc(cert, "not_valid_after"),
    )


def _utc(cert: Any, name: str) -> datetime.datetime:
    aware = getattr(cert, f"{name}_utc", None)  # cryptography >= 42
    if aware is not None:
        return aware
    return getattr(cert, name).replace(tzinfo=datetime.timezone.utc)


_SSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


def _ssl_reason(exc: BaseException) -> str:
    """``[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)`` -> the words."""
    text = getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, ssl.SSLError) and exc.args and isinstance(exc.args[-1], str):
        text = exc.args[-1]
    return _SSL_NOISE.sub("", text).strip() or type(exc).__name__


def _verify_reason(exc: ssl.SSLCertVerificationError, server_name: str) -> str:
    code = getattr(exc, "verify_code", None)
    message = getattr(exc, "verify_message", None) or _ssl_reason(exc)
    if code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        return f"name mismatch: the certificate is not valid for {server_name}"
    return message
