"""A loopback DNS server for tests that look up MX records.

This machine's /etc/resolv.conf points off-machine, and no test may send a query
there.  Tests that need DNS start this server on 127.0.0.1 (a free UDP port) and
point the program at it (``--resolver 127.0.0.1:PORT``).  dnspython parses each
query and builds the answer; the zone is a plain dict the test may change.

Faults a resolver must survive are per name: ``servfail`` and ``refused`` answer
with that rcode, ``unanswered`` never answers (``silent`` never answers anything).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = dict[tuple[str, str], list[str]]
"""(name, type) -> record texts, e.g. ``("example.net", "MX"): ["10 mx1.example.net."]``."""


def _name(text: str) -> str:
    return text.lower().rstrip(".")


def zone_of(records: dict[str, dict[str, list[str]]]) -> Zone:
    """``{"example.net": {"MX": [...], "A": [...]}}`` as a :data:`Zone`; a name with
    ``{}`` exists (NOERROR, no data) without records."""
    zone: Zone = {}
    for name, types in records.items():
        zone[(_name(name), "")] = []  # the name exists even with no record of a type
        for kind, texts in types.items():
            zone[(_name(name), kind.upper())] = list(texts)
    return zone


class DNSTestServer:
    """Answers from ``zone`` over UDP: NXDOMAIN for unknown names, NOERROR/no data for
    known names without records of the asked type."""

    def __init__(
        self,
        zone: Zone | None = None,
        host: str = "127.0.0.1",
        *,
        servfail: Iterable[str] = (),
        refused: Iterable[str] = (),
        unanswered: Iterable[str] = (),
    ) -> None:
        self.zone: Zone = dict(zone or {})
        self.queries: list[tuple[str, str]] = []
        self.silent = False
        """Receive queries but never answer (a DNS server that hangs)."""
        self.servfail = {_name(n) for n in servfail}
        self.refused = {_name(n) for n in refused}
        self.unanswered = {_name(n) for n in unanswered}
        self.errors: list[BaseException] = []
        """Bugs in the server itself, so a test cannot pass on a broken server."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self.host, self.port = self._sock.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, name="dnsd", daemon=True)
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add(self, name: str, kind: str, records: Iterable[str]) -> None:
        self.zone[(_name(name), kind.upper())] = list(records)

    def start(self) -> DNSTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        # Wake the blocking recvfrom with a datagram of our own.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", (self.host, self.port))
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> DNSTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            data, client = self._sock.recvfrom(65535)
            if self._stopping.is_set():
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue  # not DNS: ignore, as a real server would
            try:
                question = query.question[0]
                name = _name(question.name.to_text())
                kind = dns.rdatatype.to_text(question.rdtype)
                self.queries.append((name, kind))
                if self.silent or name in self.unanswered:
                    continue
                self._sock.sendto(self._answer(query, name, kind).to_wire(), client)
            except Exception as error:
                self.errors.append(error)

    def _answer(self, query: dns.message.Message, name: str, kind: str) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail or name in self.refused:
            response.set_rcode(dns.rcode.SERVFAIL if name in self.servfail else dns.rcode.REFUSED)
            return response
        known = {known_name for known_name, _ in self.zone}
        if name not in known:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        records = self.zone.get((name, kind), [])
        if records:
            response.answer.append(
                dns.rrset.from_text_list(
                    query.question[0].name, 60, dns.rdataclass.IN, kind, records
                )
            )
        return response
