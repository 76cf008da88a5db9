"""SMTP TLS reporting (RFC 8460): where senders report the TLS failures they met.

A domain that publishes DANE or MTA-STS usually also asks senders to report failures
to it, with a TXT record at ``_smtp._tls.DOMAIN``.  A malformed record silently turns
those reports off (senders must then assume no reporting, RFC 8460 section 3), so the
domain goes blind exactly when its DANE or MTA-STS breaks: that is worth a WARNING.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from check_smtp_verbs.core.deadline import Deadline, DeadlineExceeded

VERSION = "v=TLSRPTv1"
_MAILTO = re.compile(r"mailto:[^@\s,;]+@[^@\s,;]+", re.IGNORECASE)
_HTTPS = re.compile(r"https://[^/\s,;]+(/[^\s,;]*)?", re.IGNORECASE)


class TlsRpt(NamedTuple):
    """``state``: "present" (reports go to ``rua``), "absent", "malformed" (senders
    send no reports), "unknown" (DNS gave no answer)."""

    domain: str
    state: str
    rua: tuple[str, ...] = ()
    error: str | None = None
    record: str | None = None


def parse(domain: str, texts: Sequence[str]) -> TlsRpt:
    """The TLS-RPT record among the TXT records at ``_smtp._tls.DOMAIN``."""
    candidates = [text for text in texts if text.startswith(VERSION)]
    if not candidates:
        return TlsRpt(domain, "absent", error=f"no TLS-RPT record at _smtp._tls.{domain}")
    if len(candidates) > 1:
        return TlsRpt(
            domain,
            "malformed",
            error=f"{len(candidates)} TXT records at _smtp._tls.{domain} start with "
            f"{VERSION}; senders then send no reports (RFC 8460 3)",
        )
    record = candidates[0]

    def malformed(reason: str) -> TlsRpt:
        return TlsRpt(domain, "malformed", error=f"TLS-RPT record: {reason}", record=record)

    fields = [field.strip(" \t") for field in record.split(";")]
    if fields and fields[-1] == "":
        fields.pop()  # a trailing ";" is allowed
    if fields[0] != VERSION:
        return malformed(f"it does not start with {VERSION};")
    rua: tuple[str, ...] | None = None
    for field in fields[1:]:
        name, equals, value = field.partition("=")
        if not equals or not name:
            return malformed(f"{field!r} is not name=value")
        if name == "rua" and rua is None:
            uris = tuple(uri.strip(" \t") for uri in value.split(","))
            bad = [uri for uri in uris if not (_MAILTO.fullmatch(uri) or _HTTPS.fullmatch(uri))]
            if bad:
                return malformed(f"rua {bad[0]!r} is not a mailto: or https: URI")
            rua = uris
    if not rua:
        return malformed("it has no rua= destination")
    return TlsRpt(domain, "present", rua, record=record)


def lookup(domain: str, resolver: Any, deadline: Deadline) -> TlsRpt:
    """The TLS-RPT record of ``domain`` through ``resolver`` (dnspython)."""
    from check_smtp_verbs.core.dns import txt

    name = f"_smtp._tls.{domain}"
    try:
        answer = txt(resolver, name, deadline)
    except DeadlineExceeded:
        return TlsRpt(
            domain, "unknown", error=f"timeout after {deadline.seconds:g}s waiting for TXT {name}"
        )
    if answer.state != "answer":
        return TlsRpt(domain, "unknown", error=f"cannot get TXT {name}: {answer.error}")
    return parse(domain, answer.records)


def judge(found: TlsRpt) -> tuple[str, str]:
    """A malformed record is WARNING: the domain would hear of no TLS failure.  No
    record is fine: reporting is optional."""
    if found.state == "present":
        return "ok", f"TLS-RPT {found.domain}: reports to {', '.join(found.rua)}"
    if found.state == "malformed":
        return "warning", f"TLS-RPT {found.domain}: {found.error}"
    if found.state == "unknown":
        return "unknown", f"TLS-RPT {found.domain}: {found.error}"
    return "ok", f"TLS-RPT {found.domain}: {found.error}"
