"""DNS for both programs: one resolver choice, one MX rule set, one error mapping.

The check's --mx and the notifier's MX delivery ask the same questions (which hosts
take mail for a domain, at which addresses) and must get the same answers: null MX
(RFC 7505) means no mail, no MX means the domain's own address (RFC 5321 5.1), a host
listed twice is one host at its best preference.  dnspython is imported by this
module only, and this module only by the paths that ask DNS.  Every query is bounded
by the caller's deadline.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any, NamedTuple

import dns.exception
import dns.name
import dns.resolver

from check_smtp_verbs.core.deadline import AddrInfo, Deadline, DeadlineExceeded, Resolve, clock


class MxHost(NamedTuple):
    name: str  # lower case, without the final dot
    preference: int | None  # None: no MX record, the domain itself (implicit MX)


class Lookup(NamedTuple):
    domain: str
    hosts: tuple[MxHost, ...]
    seconds: float
    state: str = "ok"  # "ok", "critical" (DNS says: no mail) or "unknown" (no answer)
    error: str | None = None

    @property
    def implicit(self) -> bool:
        return len(self.hosts) == 1 and self.hosts[0].preference is None


def make_resolver(server: tuple[str, int] | None) -> dns.resolver.Resolver:
    """The chosen DNS server (--resolver IP[:PORT]), else the system's configuration."""
    if server is None:
        return dns.resolver.Resolver()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server[0]]
    resolver.port = server[1]
    return resolver


def _server(resolver: dns.resolver.Resolver) -> str:
    servers = [str(s) for s in resolver.nameservers]
    shown = ", ".join(f"[{s}]" if ":" in s else s for s in servers) or "no DNS server"
    return f"{shown}:{resolver.port}" if len(servers) == 1 else shown


def _failure(exc: dns.resolver.NoNameservers) -> str:
    """ "SERVFAIL" or "REFUSED" from dnspython's list of per-server errors."""
    reasons = {str(error[3]) for error in exc.kwargs.get("errors", ()) if len(error) > 3}
    return "/".join(sorted(reasons)) or "no usable answer"


def _query(
    resolver: dns.resolver.Resolver, name: str, rdtype: str, deadline: Deadline
) -> list[Any]:
    """Records of one type; [] when the name has none.  Other answers raise."""
    try:
        answer = resolver.resolve(
            name, rdtype, lifetime=deadline.remaining(), search=False, raise_on_no_answer=False
        )
    except dns.exception.Timeout:
        raise DeadlineExceeded from None
    return list(answer.rrset) if answer.rrset is not None else []


def lookup(domain: str, family: int, resolver: dns.resolver.Resolver, deadline: Deadline) -> Lookup:
    """The hosts that receive mail for the domain, in preference order, or why none do."""
    started = clock()

    def failed(state: str, error: str) -> Lookup:
        return Lookup(domain, (), clock() - started, state, error)

    asking = f"the MX records of {domain} from {_server(resolver)}"
    try:
        records = _query(resolver, domain, "MX", deadline)
        if not records:
            families = _families(family)
            if not any(_query(resolver, domain, t, deadline) for t in families):
                return failed(
                    "critical",
                    f"{domain} has no MX and no {'/'.join(families)} record: "
                    "mail to it cannot be delivered",
                )
            return Lookup(domain, (MxHost(domain, None),), clock() - started)
    except DeadlineExceeded:
        return failed("unknown", f"timeout after {deadline.seconds:g}s waiting for {asking}")
    except dns.resolver.NXDOMAIN:
        return failed("critical", f"{domain} does not exist (NXDOMAIN)")
    except dns.resolver.NoNameservers as exc:
        return failed("unknown", f"cannot get {asking}: {_failure(exc)}")
    except dns.exception.DNSException as exc:
        return failed("unknown", f"cannot get {asking}: {exc}")
    best: dict[str, int] = {}  # a host listed twice is walked once, at its best preference
    for record in records:
        if record.exchange != dns.name.root:
            name = record.exchange.to_text(omit_final_dot=True).lower()
            best[name] = min(record.preference, best.get(name, record.preference))
    if not best:
        return failed(
            "critical", f"{domain} has a null MX (RFC 7505): it declares that it accepts no mail"
        )
    ordered = sorted((MxHost(n, p) for n, p in best.items()), key=lambda h: (h.preference, h.name))
    return Lookup(domain, tuple(ordered), clock() - started)


def _families(family: int) -> list[str]:
    """A before AAAA: a monitoring host with a broken IPv6 route should not hide IPv4."""
    if family == socket.AF_INET:
        return ["A"]
    if family == socket.AF_INET6:
        return ["AAAA"]
    return ["A", "AAAA"]


def resolve_with(resolver: dns.resolver.Resolver) -> Resolve:
    """deadline.resolve's signature through dnspython: a host's addresses from the same
    DNS server that named it, never from the system resolver."""

    def resolve(host: str, port: int, family: int, deadline: Deadline) -> list[AddrInfo]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            return socket.getaddrinfo(
                host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
            )
        found: list[AddrInfo] = []
        try:
            for rdtype in _families(family):
                for record in _query(resolver, host, rdtype, deadline):
                    if rdtype == "A":
                        found.append(
                            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (record.address, port))
                        )
                    else:
                        found.append(
                            (
                                socket.AF_INET6,
                                socket.SOCK_STREAM,
                                6,
                                "",
                                (record.address, port, 0, 0),
                            )
                        )
        except dns.resolver.NXDOMAIN:
            raise OSError("name does not exist (NXDOMAIN)") from None
        except dns.resolver.NoNameservers as exc:
            raise OSError(f"DNS server answered {_failure(exc)}") from None
        except dns.exception.DNSException as exc:
            raise OSError(str(exc)) from None
        if not found:
            raise OSError(f"no {'/'.join(_families(family))} record")
        return found

    return resolve


# ---------------------------------------------------------------------------------------
# DNSSEC-aware look-ups for DANE, MTA-STS and TLS-RPT (the DANE/MTA-STS feature's part).
#
# DANE is only as trustworthy as the DNS answers it starts from, and this program does
# not validate DNSSEC itself: it asks a validating resolver (--resolver, or the system's)
# and believes an answer only when the resolver sets the AD bit.  A SERVFAIL from a
# validating resolver is usually a bogus (badly signed) answer, which a validating sender
# treats as "do not deliver"; it is therefore kept apart from "no such record".
# ---------------------------------------------------------------------------------------


def validating(resolver: dns.resolver.Resolver) -> dns.resolver.Resolver:
    """Ask for DNSSEC: DO so a validating resolver validates and keeps signatures, AD so
    it tells us whether it did.  Without either a resolver may leave AD clear."""
    import dns.flags

    resolver.use_edns(0, dns.flags.DO, 1232)
    resolver.flags = dns.flags.RD | dns.flags.AD
    return resolver


class SecureAnswer(NamedTuple):
    """One question's answer and whether the resolver vouched for it."""

    name: str  # asked, lower case, no final dot
    records: tuple[Any, ...] = ()  # rdata objects; () for NXDOMAIN or no data
    authenticated: bool = False  # AD bit: the resolver validated every record or denial
    canonical: str = ""  # the name after CNAMEs ("" if unknown)
    state: str = "answer"  # "answer", "servfail" (bogus if the resolver validates), "error"
    exists: bool = True  # False for NXDOMAIN
    error: str | None = None

    @property
    def secure(self) -> bool:
        """An authenticated answer, with records or an authenticated denial."""
        return self.state == "answer" and self.authenticated


def _authenticated(response: Any) -> bool:
    import dns.flags

    return response is not None and bool(response.flags & dns.flags.AD)


_ACRONYMS = {"DNSSEC", "DNSKEY", "RRSIG", "NSEC", "DS", "NSEC3"}


def _extended_errors(responses: Any) -> str:
    """RFC 8914 extended errors ("DNSSEC Bogus") of the failed responses, if any."""
    texts: list[str] = []
    for response in responses:
        for option in getattr(response, "options", ()) or ():
            code = getattr(option, "code", None)
            if code is None or not hasattr(option, "text"):
                continue
            try:
                import dns.edns

                words = dns.edns.EDECode.to_text(code).split("_")
                name = " ".join(w if w in _ACRONYMS else w.capitalize() for w in words)
            except Exception:
                name = "extended error"
            text = f"EDE {int(code)} {name}"
            if option.text:  # unbound repeats the question: "validation failure <q>: why"
                text += f": {re.sub(r'^validation failure <[^>]*>: ', '', option.text)}"
            if text not in texts:
                texts.append(text)
    return "; ".join(texts)


def _name_text(name: Any) -> str:
    return name.to_text(omit_final_dot=True).lower() if name is not None else ""


def secure_query(
    resolver: dns.resolver.Resolver, name: str, rdtype: str, deadline: Deadline
) -> SecureAnswer:
    """Records of one type and their AD bit; never raises for a DNS answer, only
    DeadlineExceeded when time runs out.  The resolver should be :func:`validating`."""
    asked = name.lower().rstrip(".")
    try:
        answer = resolver.resolve(
            asked + ".",
            rdtype,
            lifetime=deadline.remaining(),
            search=False,
            raise_on_no_answer=False,
        )
    except dns.exception.Timeout:
        raise DeadlineExceeded from None
    except dns.resolver.NXDOMAIN as exc:
        responses = list(exc.responses().values())
        return SecureAnswer(
            asked,
            authenticated=bool(responses) and all(_authenticated(r) for r in responses),
            canonical=_name_text(getattr(exc, "canonical_name", None)),
            exists=False,
        )
    except dns.resolver.NoNameservers as exc:
        errors = exc.kwargs.get("errors", ())
        reason = _failure(exc)
        extended = _extended_errors(error[4] for error in errors if len(error) > 4)
        state = "servfail" if "SERVFAIL" in reason else "error"
        return SecureAnswer(
            asked,
            state=state,
            error=f"{reason} ({extended})" if extended else reason,
        )
    except dns.exception.DNSException as exc:
        return SecureAnswer(asked, state="error", error=str(exc) or type(exc).__name__)
    return SecureAnswer(
        asked,
        tuple(answer.rrset) if answer.rrset is not None else (),
        _authenticated(answer.response),
        _name_text(answer.canonical_name),
    )


class TlsaRecord(NamedTuple):
    """One TLSA record (RFC 6698): certificate usage, selector, matching type, data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"

    def short(self, digits: int = 12) -> str:
        """``3 1 1 0c72ac70b745…``: enough to tell records apart in one status line."""
        shown = self.data.hex()
        return (
            f"{self.usage} {self.selector} {self.mtype} "
            f"{shown[:digits]}{'…' if len(shown) > digits else ''}"
        )


class TlsaLookup(NamedTuple):
    """The TLSA records that apply to one MX host, found as RFC 7672 section 2.2 says.

    ``state``: "secure" (authenticated records at ``base``), "none" (authenticated:
    there are none), "insecure" (the host's addresses or records are not signed: DANE
    does not apply), "bogus" (the resolver refused a signature: a validating sender
    will not deliver), "error" (no usable answer, or the deadline ran out).
    """

    host: str
    port: int
    base: str  # the TLSA base domain: host, or its CNAME expansion
    state: str
    records: tuple[TlsaRecord, ...] = ()
    names: tuple[str, ...] = ()  # reference identifiers for DANE-TA name checks
    seconds: float = 0.0
    error: str | None = None

    @property
    def owner(self) -> str:
        return f"_{self.port}._tcp.{self.base}"


def tlsa(
    host: str,
    port: int,
    resolver: dns.resolver.Resolver,
    deadline: Deadline,
    family: int = socket.AF_UNSPEC,
) -> TlsaLookup:
    """TLSA records for an SMTP server at ``host``:``port`` (RFC 7672 section 2.2.2).

    DANE applies only to a host whose address records are signed; if they were reached
    through a signed CNAME chain, the TLSA base domain is first the expanded name, then
    the name itself.  Either way the name check of DANE-TA accepts both names.
    """
    started = clock()
    host = host.lower().rstrip(".")

    def result(state: str, base: str = host, **fields: Any) -> TlsaLookup:
        return TlsaLookup(host, port, base, state, seconds=clock() - started, **fields)

    try:
        address = SecureAnswer(host, exists=False)
        for rdtype in _families(family):
            address = secure_query(resolver, host, rdtype, deadline)
            if address.state != "answer" or address.records:
                break
        if address.state == "servfail":
            return result(
                "bogus",
                error=f"the addresses of {host} cannot be validated: {address.error}",
            )
        if address.state == "error":
            return result("error", error=f"cannot get the address of {host}: {address.error}")
        if not address.records:
            return result("error", error=f"{host} has no {'/'.join(_families(family))} record")
        if not address.authenticated:
            return result(
                "insecure",
                error=f"the address records of {host} are not DNSSEC-signed "
                "(or the resolver does not validate): DANE does not apply",
            )
        candidates = [host]
        if address.canonical and address.canonical != host:
            candidates.insert(0, address.canonical)
        names = tuple(candidates)
        for base in candidates:
            owner = f"_{port}._tcp.{base}"
            answer = secure_query(resolver, owner, "TLSA", deadline)
            if answer.state == "servfail":
                return result(
                    "bogus",
                    base,
                    names=names,
                    error=f"the TLSA records cannot be validated: {answer.error}",
                )
            if answer.state == "error":
                return result(
                    "error", base, names=names, error=f"cannot get TLSA {owner}: {answer.error}"
                )
            if base != candidates[-1] and not (answer.records and answer.authenticated):
                continue  # nothing usable at the expanded name: the name itself decides
            if answer.records:
                if not answer.authenticated:
                    return result(
                        "insecure",
                        base,
                        names=names,
                        error=f"the TLSA records at {owner} are not DNSSEC-signed: "
                        "DANE does not apply",
                    )
                records = tuple(
                    TlsaRecord(r.usage, r.selector, r.mtype, bytes(r.cert))
                    for r in answer.records
                    if hasattr(r, "usage")  # not the CNAME a TLSA name may point through
                )
                return result("secure", base, records=records, names=names)
            if not answer.authenticated:
                return result(
                    "insecure",
                    base,
                    names=names,
                    error=f"the absence of TLSA records at {owner} is not DNSSEC-signed: "
                    "DANE does not apply",
                )
        return result("none", host, names=names, error=f"no TLSA records at _{port}._tcp.{host}")
    except DeadlineExceeded:
        return result(
            "error",
            error=f"timeout after {deadline.seconds:g}s waiting for the TLSA records of {host}",
        )


def txt(resolver: dns.resolver.Resolver, name: str, deadline: Deadline) -> SecureAnswer:
    """TXT records as text, each record's strings joined as RFC 8461/8460 say; raises
    DeadlineExceeded only."""
    answer = secure_query(resolver, name, "TXT", deadline)
    texts = tuple(
        b"".join(record.strings).decode("utf-8", "replace")
        for record in answer.records
        if hasattr(record, "strings")
    )
    return answer._replace(records=texts)
