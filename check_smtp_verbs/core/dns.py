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
