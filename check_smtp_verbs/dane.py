"""DANE for SMTP (RFC 7672): does the certificate chain an MX host presents match its
TLSA records?

Senders that validate DANE refuse to deliver to an MX host whose chain matches none of
its usable TLSA records: the classic outage is a certificate renewed without the TLSA
records being updated.  The rules here are SMTP's, which differ from the web's:

* only DANE-EE(3) and DANE-TA(2) are usable; PKIX-TA(0) and PKIX-EE(1) records are
  "unusable" for SMTP (RFC 7672 section 3.1.3), as are unknown selectors and matching
  types and digests of the wrong length;
* DANE-EE matches the leaf certificate (whole certificate or its public key) and
  ignores names and dates: the record *is* the trust;
* DANE-TA matches a CA certificate the server presented; the chain from the leaf up to
  it must verify, be in date, and the leaf must carry the MX host name (or, after a
  signed CNAME, the expanded name) (RFC 7672 section 3.2.3).

cryptography is imported by this module only, and this module only when --dane is
asked for.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from check_smtp_verbs.core.dns import TlsaRecord

USAGES = {0: "PKIX-TA", 1: "PKIX-EE", 2: "DANE-TA", 3: "DANE-EE"}
_DIGEST_SIZES = {1: 32, 2: 64}  # SHA2-256, SHA2-512
MAX_DEPTH = 10  # certificates followed up from the leaf; real chains have 2 to 4


class RecordVerdict(NamedTuple):
    """What became of one TLSA record: for -v and JSON."""

    record: TlsaRecord
    state: str  # "match", "mismatch", "unusable"
    reason: str  # why, in a few words
    depth: int | None = None  # which certificate matched (0 = leaf)


class DaneResult(NamedTuple):
    """The verdict for one presented chain against one host's TLSA records."""

    state: str  # "match", "mismatch" (usable records, none matched), "unusable" (none usable)
    matched: TlsaRecord | None
    verdicts: tuple[RecordVerdict, ...]

    @property
    def ok(self) -> bool:
        return self.state == "match"

    def summary(self) -> str:
        """One phrase for the status line."""
        if self.matched is not None:
            found = next(v for v in self.verdicts if v.record == self.matched)
            return f"TLSA {self.matched.short()} matches ({found.reason})"
        if self.state == "unusable":
            return (
                f"none of the {len(self.verdicts)} TLSA record(s) is usable for SMTP "
                f"({'; '.join(_unique(v.reason for v in self.verdicts))})"
            )
        usable = [v for v in self.verdicts if v.state == "mismatch"]
        return (
            f"the certificate matches none of the {len(usable)} usable TLSA record(s) "
            f"({'; '.join(_unique(v.reason for v in usable))})"
        )


def _unique(texts: Any) -> list[str]:
    seen: list[str] = []
    for text in texts:
        if text not in seen:
            seen.append(text)
    return seen


def usable_problem(record: TlsaRecord) -> str | None:
    """Why a record cannot be used for SMTP, or None if it can."""
    if record.usage in (0, 1):
        return f"{USAGES[record.usage]}({record.usage}) is not for SMTP (RFC 7672 3.1.3)"
    if record.usage not in (2, 3):
        return f"unknown certificate usage {record.usage}"
    if record.selector not in (0, 1):
        return f"unknown selector {record.selector}"
    if record.mtype not in (0, 1, 2):
        return f"unknown matching type {record.mtype}"
    size = _DIGEST_SIZES.get(record.mtype)
    if size is not None and len(record.data) != size:
        return f"a SHA2-{256 if record.mtype == 1 else 512} digest of {len(record.data)} bytes"
    if record.mtype == 0 and not record.data:
        return "empty certificate data"
    return None


def _selected(certificate: Any, der: bytes, selector: int) -> bytes:
    if selector == 0:
        return der
    from cryptography.hazmat.primitives import serialization

    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _matches(record: TlsaRecord, certificate: Any, der: bytes) -> bool:
    data = _selected(certificate, der, record.selector)
    if record.mtype == 1:
        data = hashlib.sha256(data).digest()
    elif record.mtype == 2:
        data = hashlib.sha512(data).digest()
    return data == record.data


def match(
    records: Sequence[TlsaRecord],
    chain: Sequence[bytes],
    names: Sequence[str],
    now: datetime.datetime | None = None,
) -> DaneResult:
    """Match a presented chain (DER certificates, leaf first, as sent) against TLSA
    records; ``names`` are the reference identifiers for DANE-TA (the MX host name and
    its CNAME expansion).  The first matching record wins, DANE-EE before DANE-TA."""
    from cryptography import x509

    when = now or datetime.datetime.now(datetime.timezone.utc)
    certificates = [x509.load_der_x509_certificate(der) for der in chain]
    verdicts: list[RecordVerdict] = []
    for record in sorted(records, key=lambda r: (-r.usage, r.selector, r.mtype)):
        problem = usable_problem(record)
        if problem is not None:
            verdicts.append(RecordVerdict(record, "unusable", problem))
        elif not certificates:
            verdicts.append(RecordVerdict(record, "mismatch", "no certificate was presented"))
        elif record.usage == 3:
            verdicts.append(_dane_ee(record, certificates[0], chain[0]))
        else:
            verdicts.append(_dane_ta(record, certificates, chain, names, when))
    ordered = tuple(sorted(verdicts, key=lambda v: records.index(v.record)))
    matched = next((v.record for v in verdicts if v.state == "match"), None)
    if matched is not None:
        state = "match"
    elif all(v.state == "unusable" for v in verdicts):
        state = "unusable"
    else:
        state = "mismatch"
    return DaneResult(state, matched, ordered)


def _dane_ee(record: TlsaRecord, leaf: Any, der: bytes) -> RecordVerdict:
    what = "certificate" if record.selector == 0 else "public key"
    if _matches(record, leaf, der):
        return RecordVerdict(record, "match", f"DANE-EE: the server's {what}", 0)
    return RecordVerdict(record, "mismatch", f"DANE-EE: not the server's {what}")


def _dane_ta(
    record: TlsaRecord,
    certificates: list[Any],
    chain: Sequence[bytes],
    names: Sequence[str],
    now: datetime.datetime,
) -> RecordVerdict:
    anchors = [
        depth
        for depth in range(1, len(certificates))
        if _matches(record, certificates[depth], chain[depth])
    ]
    if not anchors:
        return RecordVerdict(record, "mismatch", "DANE-TA: no presented CA certificate matches")
    anchor = certificates[anchors[0]]
    path = _path_to(certificates, anchor)
    if path is None:
        return RecordVerdict(
            record, "mismatch", f"DANE-TA: the chain does not lead to {_subject(anchor)}"
        )
    for certificate in path if record.selector == 0 else path[:-1]:
        problem = _out_of_date(certificate, now)
        if problem is not None:
            return RecordVerdict(record, "mismatch", f"DANE-TA: {problem}")
    for certificate in path[1:]:
        if not _may_sign(certificate):
            return RecordVerdict(
                record, "mismatch", f"DANE-TA: {_subject(certificate)} is not a CA"
            )
    if not any(certificate_matches_name(path[0], name) for name in names):
        return RecordVerdict(
            record,
            "mismatch",
            f"DANE-TA: the certificate is not for {' or '.join(names) or 'the MX host'}",
        )
    return RecordVerdict(record, "match", f"DANE-TA: issued under {_subject(anchor)}", anchors[0])


def _path_to(certificates: list[Any], anchor: Any) -> list[Any] | None:
    """The chain from the leaf to ``anchor`` through presented certificates, each signed
    by the next; None if there is none.  Servers may send extra or misordered
    certificates, so issuers are found by name and signature, not by position."""
    path = [certificates[0]]
    while len(path) <= MAX_DEPTH:
        current = path[-1]
        if current == anchor:
            return path
        issuer = next(
            (
                candidate
                for candidate in certificates
                if candidate not in path and _issued_by(current, candidate)
            ),
            None,
        )
        if issuer is None:
            return None
        path.append(issuer)
    return None


def _issued_by(certificate: Any, issuer: Any) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    verify = getattr(certificate, "verify_directly_issued_by", None)
    try:
        if verify is not None:  # cryptography >= 40
            verify(issuer)
        else:
            _verify_signature(certificate, issuer.public_key())
    except Exception:  # InvalidSignature, or a key or algorithm we cannot check
        return False
    return True


def _verify_signature(certificate: Any, key: Any) -> None:
    """The signature check for cryptography before 40 (Debian 12 has 38)."""
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    hash_algorithm = certificate.signature_hash_algorithm
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            padding.PKCS1v15(),
            hash_algorithm,
        )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(
            certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(hash_algorithm)
        )
    else:  # Ed25519 / Ed448 take no hash
        key.verify(certificate.signature, certificate.tbs_certificate_bytes)


def _validity(certificate: Any) -> tuple[datetime.datetime, datetime.datetime]:
    start = getattr(certificate, "not_valid_before_utc", None)
    end = getattr(certificate, "not_valid_after_utc", None)
    if start is None or end is None:  # cryptography < 42: naive UTC
        start = certificate.not_valid_before.replace(tzinfo=datetime.timezone.utc)
        end = certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return start, end


def _out_of_date(certificate: Any, now: datetime.datetime) -> str | None:
    start, end = _validity(certificate)
    if now > end:
        return f"{_subject(certificate)} expired on {end:%Y-%m-%d %H:%M} UTC"
    if now < start:
        return f"{_subject(certificate)} is not valid before {start:%Y-%m-%d %H:%M} UTC"
    return None


def _may_sign(certificate: Any) -> bool:
    """A certificate that signs others must be a CA when it says what it is at all."""
    from cryptography import x509

    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return True  # a version 1 certificate: no way to say
    return bool(constraints.value.ca)


def _subject(certificate: Any) -> str:
    from cryptography.x509.oid import NameOID

    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return f"CN={names[0].value}"
    return certificate.subject.rfc4514_string() or "a certificate with an empty subject"


def certificate_names(certificate: Any) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName dNSNames, else its
    subject CNs (RFC 7672 3.2.3 and RFC 6125 6.4.4)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = alternative.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return [name.lower().rstrip(".") for name in names]


def name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching as RFC 7672 allows it: a wildcard only as the whole left-most
    label, standing for exactly one label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = name.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:] and "." in rest
    return "*" not in pattern and pattern == name


def certificate_matches_name(certificate: Any, name: str) -> bool:
    return any(name_matches(pattern, name) for pattern in certificate_names(certificate))


def presented_chain(sock: Any) -> list[bytes]:
    """The certificates the server sent, leaf first, as DER, whether or not the TLS
    layer verified them: DANE-TA needs the CA certificates, which getpeercert() hides.

    Python 3.13 has SSLSocket.get_unverified_chain(); 3.10 to 3.12 have it on the
    internal _sslobj; older versions give the leaf only.
    """
    getter = getattr(sock, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        chain = getter() or []
        return [_der(certificate) for certificate in chain]
    leaf = sock.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _der(certificate: Any) -> bytes:
    if isinstance(certificate, (bytes, bytearray)):
        return bytes(certificate)
    import _ssl

    return certificate.public_bytes(_ssl.ENCODING_DER)  # type: ignore[no-any-return]


# -- the verdict for one MX host ----------------------------------------------------------

NOT_DELIVERED = "senders that validate will not deliver"


class Verdict(NamedTuple):
    """A state ("ok", "warning", "critical", "unknown") and the words that justify it;
    ``result`` holds the per-record detail for -v and JSON when records were matched."""

    state: str
    text: str
    result: DaneResult | None = None


def judge(
    found: Any,
    chain: Sequence[bytes] | None,
    *,
    required: bool = False,
    tls_error: str | None = None,
) -> Verdict:
    """The issue's outcomes for one host: ``found`` is core.dns.TlsaLookup, ``chain``
    the presented certificates (None if no TLS session was established, then
    ``tls_error`` says why)."""
    if found.state == "error":
        return Verdict("unknown", f"DANE: {found.error}")
    if found.state == "bogus":
        return Verdict("critical", f"DANE: {found.error}: {NOT_DELIVERED}")
    if found.state in ("none", "insecure"):
        if required:
            return Verdict("critical", f"DANE: {found.error} (--dane=required)")
        return Verdict("ok", f"DANE: {found.error}")
    if chain is None:
        reason = tls_error or "no TLS session"
        return Verdict(
            "critical",
            f"DANE: TLSA published at {found.owner} but {reason}: {NOT_DELIVERED}",
        )
    result = match(found.records, chain, found.names)
    if result.ok:
        return Verdict("ok", f"DANE: {result.summary()}", result)
    return Verdict("critical", f"DANE: {result.summary()}: {NOT_DELIVERED}", result)


# -- the check's DANE steps ------------------------------------------------------------------


class DaneReport(NamedTuple):
    """What a walk learnt about DANE: the TLSA look-up and the verdict on the chain."""

    lookup: Any  # core.dns.TlsaLookup
    verdict: Verdict


def lookup_step(conversation: Any) -> tuple[str, ...]:
    """The TLSA look-up, before STARTTLS: its answer decides whether the handshake may
    skip PKIX verification (DANE authenticates the server instead)."""
    from check_smtp_verbs.core.dns import make_resolver, tlsa, validating

    settings = conversation.settings
    resolver = validating(make_resolver(settings.resolver))
    found = tlsa(settings.host, settings.port, resolver, conversation.deadline, settings.family)
    conversation.dane_lookup = found
    return (lookup_line(found),)


def lookup_line(found: Any) -> str:
    """The look-up in a few words, for the step line of -v."""
    if found.state == "secure":
        count = len(found.records)
        return f"{count} signed TLSA record{'' if count == 1 else 's'}"
    return {
        "none": "no TLSA record",
        "insecure": "not DNSSEC-signed: DANE does not apply",
        "bogus": "DNSSEC-bogus (SERVFAIL)",
    }.get(found.state, "no answer")


def authenticates(conversation: Any) -> bool:
    """Whether the handshake may skip PKIX: DANE records are there to judge the chain,
    and no --mta-sts needs PKIX for the host (RFC 7672 3: that is DANE's point)."""
    found = getattr(conversation, "dane_lookup", None)
    return found is not None and found.state == "secure" and conversation.settings.mta_sts is None


def after_handshake(conversation: Any, sock: Any) -> None:
    found = getattr(conversation, "dane_lookup", None)
    if found is None:
        return
    required = conversation.settings.dane == "required"
    conversation.dane = DaneReport(found, judge(found, presented_chain(sock), required=required))


def after_walk(conversation: Any, results: Sequence[Any]) -> DaneReport | None:
    """The verdict of a walk that never finished a handshake: why there was no TLS."""
    found = getattr(conversation, "dane_lookup", None)
    if found is None:
        return None
    if conversation.dane is not None:
        return conversation.dane  # type: ignore[no-any-return]
    reason = "the walk ended before STARTTLS"
    for result in results:
        if result.step.verb in ("starttls", "tls"):
            if result.error is not None:
                reason = result.error
            elif result.lines:
                reason = result.lines[0].split(",")[0]  # "STARTTLS not offered, ..."
    required = conversation.settings.dane == "required"
    return DaneReport(found, judge(found, None, required=required, tls_error=reason))
