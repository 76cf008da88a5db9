"""--all-addresses: every address of a host, IPv4 and IPv6, walked at once under one deadline.

A name with A and AAAA records is reached by whichever address a sender tries first.
When one family breaks (a firewall rule, a listener bound to 0.0.0.0 only), senders
that prefer it queue and retry while a check that connects to "the host" stays green,
because it falls back to the other family just as quietly.  So each family is looked
up on its own (a hung or failing AAAA query must not hide the IPv4 result), and every
address found is walked in its own thread with the ordinary walk, told to connect to
that one address only.  Nothing here waits except on the deadline.

Perfdata labels get a per-address prefix (see :func:`label_prefix`) so that one
run's metrics of two addresses never collide and stay the same from run to run.
"""

from __future__ import annotations

import _socket  # the C module under socket: see core/deadline.py
import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import nagiosplugin
from nagiosplugin.state import ServiceState

from check_smtp_verbs.core.deadline import (
    AddrInfo,
    Deadline,
    DeadlineExceeded,
    Resolve,
    clock,
)
from check_smtp_verbs.core.deadline import resolve as system_resolve
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Run, Step, StepResult, Target, TargetWalk, Walk

FAMILIES: dict[int, str] = {_socket.AF_INET: "IPv4", _socket.AF_INET6: "IPv6"}
"""Every family there is to check, in the order they are shown: IPv4 first."""

WalkFunction = Callable[[Settings, Deadline, Resolve], Walk]


def label_prefix(address: str) -> str:
    """The perfdata label prefix of one address: ``192_0_2_25_``, ``2001_db8__25_``.

    Every character that is not a letter or digit becomes ``_``, so a label is a plain
    ``\\w+`` word: nagiosplugin leaves it unquoted, and graphing back-ends that take a
    dot as a path separator (Graphite) or a colon as a field separator see one name.
    The address is written in its shortest standard form (RFC 5952 for IPv6, which
    ipaddress produces, hex only: ``::ffff:c000:219``, never the dotted tail), so the
    same address always gives the same prefix, and two addresses never give one: IPv6
    forms have at least two ``_`` in a row or eight groups, IPv4 forms exactly four
    groups.  The port is not part of it: every address of one run uses the same port.
    """
    parsed = ipaddress.ip_address(address.strip("[]").partition("%")[0])
    text = _hex_only(parsed) if isinstance(parsed, ipaddress.IPv6Address) else str(parsed)
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in text) + "_"


def _groups(address: ipaddress.IPv6Address) -> list[int]:
    packed = address.packed
    return [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]


def _hex_only(address: ipaddress.IPv6Address) -> str:
    """RFC 5952 text of an IPv6 address, but an IPv4-mapped tail in hex, as
    ``ipaddress`` itself writes it up to Python 3.12 (3.13 writes ``::ffff:1.2.3.4``)."""
    text = address.compressed
    if "." not in text:
        return text
    groups = _groups(address)
    # the longest run of zero groups (of at least two) becomes "::", the first one on a tie
    best_start, best_length, start = -1, 0, None
    for index, group in enumerate([*groups, 1]):
        if group == 0 and start is None:
            start = index
        elif group != 0 and start is not None:
            if index - start > best_length:
                best_start, best_length = start, index - start
            start = None
    hexes = [f"{group:x}" for group in groups]
    if best_length < 2:
        return ":".join(hexes)
    head = ":".join(hexes[:best_start])
    tail = ":".join(hexes[best_start + best_length :])
    return f"{head}::{tail}"


def family_name(family: int) -> str:
    return FAMILIES.get(family, "IP")


def family_of(address: str) -> int:
    """AF_INET or AF_INET6 of an address as text."""
    return _socket.AF_INET6 if ":" in address else _socket.AF_INET


def families_of(family: int) -> list[int]:
    """The families -4/-6 leave to look up: AF_UNSPEC means both, IPv4 first."""
    return [family] if family in FAMILIES else list(FAMILIES)


class AddressWalk(NamedTuple):
    address: str  # "2001:db8::25", as resolved (no brackets, no port)
    family: int
    walk: Walk

    @property
    def family_name(self) -> str:
        return family_name(self.family)

    @property
    def prefix(self) -> str:
        return label_prefix(self.address)

    @property
    def shown(self) -> str:
        """How the status line names it: ``2001:db8::25 (IPv6)``."""
        return f"{self.address} ({self.family_name})"


class FamilyLookup(NamedTuple):
    family: int
    addresses: tuple[str, ...]
    seconds: float
    error: str | None = None  # why there is no address: "no AAAA record", a timeout, ...

    @property
    def name(self) -> str:
        return family_name(self.family)


class AddressRun(NamedTuple):
    host: str
    lookups: tuple[FamilyLookup, ...]  # one per family looked up, IPv4 first
    walks: tuple[AddressWalk, ...]  # IPv4 addresses first, then IPv6, each in address order
    total: float
    prefix: str = ""  # the host's label prefix under --mx ("mx1.example.net_"), else ""

    @property
    def error(self) -> str | None:
        """Why nothing could be walked at all (no address in any family), else None."""
        if self.walks:
            return None
        reasons = [f"{lookup.name}: {lookup.error}" for lookup in self.lookups if lookup.error]
        return f"no address for {self.host}" + (f" ({'; '.join(reasons)})" if reasons else "")

    def missing(self, required: Iterable[int]) -> list[str]:
        """Names of the required families (--require-ipv4/-ipv6) without any address."""
        found = {walk.family for walk in self.walks}
        return [
            family_name(family) for family in FAMILIES if family in required and family not in found
        ]


def _sort_key(info: AddrInfo) -> tuple[int, int]:
    return (list(FAMILIES).index(info[0]), int(ipaddress.ip_address(info[4][0].partition("%")[0])))


def look_up(
    host: str, port: int, family: int, deadline: Deadline, resolve: Resolve
) -> tuple[FamilyLookup, list[AddrInfo]]:
    """One family's addresses of ``host``, each once, in address order; never raises."""
    started = clock()
    wanted = family_name(family)
    try:
        found = [info for info in resolve(host, port, family, deadline) if info[0] == family]
    except DeadlineExceeded:
        error = f"timeout after {deadline.seconds:g}s waiting for the {wanted} address"
        return FamilyLookup(family, (), clock() - started, error), []
    except OSError as exc:
        return FamilyLookup(family, (), clock() - started, _lookup_reason(exc, family)), []
    unique = {info[4][0]: info for info in sorted(found, key=_sort_key)}
    infos = list(unique.values())
    seconds = clock() - started
    if not infos:
        return FamilyLookup(family, (), seconds, _no_record(family)), []
    return FamilyLookup(family, tuple(unique), seconds), infos


def _no_record(family: int) -> str:
    return "no A record" if family == _socket.AF_INET else "no AAAA record"


_NO_ADDRESS = {
    getattr(_socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY")
    if hasattr(_socket, name)
}
"""getaddrinfo's ways of saying that the name has no address of this family."""


def _lookup_reason(exc: OSError, family: int) -> str:
    """What went wrong, short; core.dns.resolve_with already words its errors so."""
    if isinstance(exc, _socket.gaierror):
        if exc.errno in _NO_ADDRESS:
            return _no_record(family)
        text = exc.strerror or str(exc)
    else:
        text = str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def only(info: AddrInfo) -> Resolve:
    """A resolve() that returns exactly this one address, whatever it is asked: how the
    ordinary walk is told to connect to one address and to no other."""

    def resolve(host: str, port: int, family: int, deadline: Deadline) -> list[AddrInfo]:
        return [info]

    return resolve


def walk_every_address(
    settings: Settings,
    deadline: Deadline,
    resolve: Resolve,
    walk: WalkFunction | None = None,
) -> AddressRun:
    """Look up each family of ``settings.host`` and walk each address found, all at once.

    A family's walks start as soon as its own look-up is answered, so a hung AAAA
    query delays nothing of IPv4.  Every walk shares ``deadline``: the run ends by it.
    ``walk`` is probe.walk unless a caller (--mx, a test) brings its own.
    """
    if walk is None:
        from check_smtp_verbs.probe import walk as probe_walk

        walk = probe_walk
    started = clock()
    families = families_of(settings.family)
    lookups: dict[int, FamilyLookup] = {}
    found: dict[str, AddressWalk] = {}
    lock = threading.Lock()
    threads: list[threading.Thread] = []

    def walk_one(family: int, info: AddrInfo) -> None:
        one = walk(settings._replace(family=family), deadline, only(info))
        with lock:
            found[info[4][0]] = AddressWalk(info[4][0], family, one)

    def family_thread(family: int) -> None:
        lookup, infos = look_up(settings.host, settings.port, family, deadline, resolve)
        children = [
            threading.Thread(
                target=walk_one, args=(family, info), name=f"walk {info[4][0]}", daemon=True
            )
            for info in infos
        ]
        with lock:
            lookups[family] = lookup
            threads.extend(children)
        for child in children:
            child.start()

    looking = [
        threading.Thread(target=family_thread, args=(f,), name=f"resolve {f}", daemon=True)
        for f in families
    ]
    for thread in looking:
        thread.start()
    for thread in looking:  # then every walk they started is in ``threads``
        thread.join(_left(deadline))
    with lock:
        pending = list(threads)
    for thread in pending:
        thread.join(_left(deadline))
    with lock:
        done_lookups = tuple(
            lookups.get(f, FamilyLookup(f, (), clock() - started, _late(settings, f)))
            for f in families
        )
        walks = [
            found.get(address)
            or AddressWalk(address, lookup.family, _unfinished(settings, address))
            for lookup in done_lookups
            for address in lookup.addresses
        ]
    return AddressRun(settings.host, done_lookups, tuple(walks), clock() - started)


def _left(deadline: Deadline) -> float:
    """How long to wait for a thread: every call in it is bounded by the deadline, the
    second of slack only covers thread start-up and the last reply's parsing."""
    return max(0.0, deadline.end - clock()) + 1.0


def _late(settings: Settings, family: int) -> str:
    return f"timeout after {settings.timeout:g}s waiting for the {family_name(family)} address"


def _unfinished(settings: Settings, address: str) -> Walk:
    """A walk whose thread outlived the deadline (every call in it is bounded, so it
    cannot), shown as a timeout rather than silently left out of the count."""
    shown = f"[{address}]" if ":" in address else address
    step = Step("connect", "connect", f"connect to {shown}:{settings.port}", "", None)
    error = f"timeout after {settings.timeout:g}s: the walk of {shown} did not finish"
    result = StepResult(step, error=error, timed_out=True)
    return Walk(settings.host, settings.port, None, (result,), settings.timeout, Transcript())


def target_walks(
    run: AddressRun, host_prefix: str = "", preference: int | None = None, named: bool = False
) -> list[TargetWalk]:
    """Each address's walk as a target of its own: labels ``{host_prefix}{address}_rcpt``;
    ``named`` puts the host name before the address (--mx, where there are several)."""
    return [
        TargetWalk(
            Target(
                f"{run.host} {w.shown}" if named else w.shown,
                host_prefix + w.prefix,
                preference,
                w.address,
            ),
            w.walk,
        )
        for w in run.walks
    ]


def run_every_address(settings: Settings) -> Run:
    """-H NAME --all-addresses as a Run; the name is looked up through --resolver when
    given (as -H and --mx do), else through the system's resolver."""
    started = clock()
    deadline = Deadline(settings.timeout, start=started)
    resolve: Resolve = system_resolve
    if settings.resolver is not None:
        from check_smtp_verbs.core import dns

        resolve = dns.resolve_with(dns.make_resolver(settings.resolver))
    found = walk_every_address(settings, deadline, resolve)
    return Run(tuple(target_walks(found)), clock() - started, addresses=(found,))


class AddressesContext(nagiosplugin.Context):
    """The look-ups of one host: no address at all is CRITICAL (nothing could be walked),
    a family that --require-ipv4/--require-ipv6 asks for and the host lacks gets the
    state given there (WARNING by default); a family nobody asked for may be missing."""

    def __init__(self, required: Mapping[int, ServiceState]) -> None:
        super().__init__("addresses")
        self.required = required

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        run: AddressRun = metric.value
        if run.error is not None:
            return nagiosplugin.Result(nagiosplugin.Critical, run.error, metric)
        missing = [lookup for lookup in run.lookups if lookup.family not in _found(run)]
        wanted = [lookup for lookup in missing if lookup.family in self.required]
        if not wanted:
            return nagiosplugin.Result(nagiosplugin.Ok, None, metric)
        state = max(self.required[lookup.family] for lookup in wanted)
        reasons = "; ".join(f"{lookup.name}: {lookup.error}" for lookup in wanted)
        names = " and ".join(f"no {lookup.name} address" for lookup in wanted)
        return nagiosplugin.Result(state, f"{run.host} has {names} ({reasons})", metric)


def _found(run: AddressRun) -> set[int]:
    return {walk.family for walk in run.walks}
