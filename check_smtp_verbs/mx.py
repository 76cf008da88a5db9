"""--mx: every MX host of a domain, walked concurrently, each under its own deadline.

A domain's mail is only as good as its worst MX: senders fall back to the second host
exactly when the first is down, so a broken backup goes unnoticed until the day it is
needed.  This module asks DNS (dnspython, imported only here) for the MX records, falls
back to the domain's own address records when there are none (RFC 5321 5.1), refuses a
null MX (RFC 7505), and then runs the ordinary walk against every host at once.  Host
addresses come from the same DNS server as the MX records (--resolver), never from the
system resolver, so what is checked is what that server tells senders.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any, NamedTuple

import dns.exception
import dns.name
import dns.resolver

from check_smtp_verbs.deadline import AddrInfo, Deadline, DeadlineExceeded, clock
from check_smtp_verbs.probe import Resolve, walk
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Step, StepResult, Walk
from check_smtp_verbs.transcript import Transcript


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


class HostWalk(NamedTuple):
    host: MxHost
    walk: Walk


class MxRun(NamedTuple):
    lookup: Lookup
    walks: tuple[HostWalk, ...]
    total: float


def make_resolver(settings: Settings) -> dns.resolver.Resolver:
    """The chosen DNS server (--resolver), else the system's configuration."""
    if settings.resolver is None:
        return dns.resolver.Resolver()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [settings.resolver[0]]
    resolver.port = settings.resolver[1]
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


def lookup(settings: Settings, resolver: dns.resolver.Resolver, deadline: Deadline) -> Lookup:
    """The hosts that receive mail for the domain, in preference order, or why none do."""
    domain = settings.host
    started = clock()

    def failed(state: str, error: str) -> Lookup:
        return Lookup(domain, (), clock() - started, state, error)

    asking = f"the MX records of {domain} from {_server(resolver)}"
    try:
        records = _query(resolver, domain, "MX", deadline)
        if not records:
            families = _families(settings.family)
            if not any(_query(resolver, domain, t, deadline) for t in families):
                return failed(
                    "critical",
                    f"{domain} has no MX and no {'/'.join(families)} record: "
                    "mail to it cannot be delivered",
                )
            return Lookup(domain, (MxHost(domain, None),), clock() - started)
    except DeadlineExceeded:
        return failed("unknown", f"timeout after {settings.timeout:g}s waiting for {asking}")
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
    """probe.Resolve through dnspython: the host's addresses from the same DNS server."""

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


def walk_all(settings: Settings) -> MxRun:
    """Look up the MX hosts, then walk them all at once; each walk ends by the deadline."""
    started = clock()
    deadline = Deadline(settings.timeout, start=started)
    resolver = make_resolver(settings)
    found = lookup(settings, resolver, deadline)
    resolve = resolve_with(resolver)
    walks: list[HostWalk | None] = [None] * len(found.hosts)

    def run(index: int, host: MxHost) -> None:
        own = deadline.within(settings.timeout)  # its own clock, never past the run's end
        walks[index] = HostWalk(host, walk(settings._replace(host=host.name), own, resolve))

    threads = [
        threading.Thread(target=run, args=(n, host), name=f"mx {host.name}", daemon=True)
        for n, host in enumerate(found.hosts)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Every walk is bounded by its deadline; the slack only covers thread start-up.
        thread.join(max(0.0, deadline.end - clock()) + 1.0)
    done = tuple(
        w if w is not None else HostWalk(host, _unfinished(settings, host))
        for w, host in zip(walks, found.hosts)
    )
    return MxRun(found, done, clock() - started)


def _unfinished(settings: Settings, host: MxHost) -> Walk:
    """A walk whose thread outlived the deadline (it cannot: every call is bounded), shown
    as a timeout rather than silently left out of the count."""
    step = Step("connect", "connect", f"connect to {host.name}:{settings.port}", "", None)
    error = f"timeout after {settings.timeout:g}s: the walk of {host.name} did not finish"
    result = StepResult(step, error=error, timed_out=True)
    return Walk(host.name, settings.port, None, (result,), settings.timeout, Transcript())
