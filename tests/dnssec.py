"""An authoritative DNS server for tests that need DNSSEC: signed zones, bogus names.

DANE is only as good as the resolver's judgement of DNSSEC, so its tests need a real
validating resolver (Debian's unbound, tests/unbound.py) and something real for it to
validate.  This server is authoritative for a few zones on loopback (UDP and TCP, one
port); a zone given a key is signed on the fly with dnspython (ECDSA P-256, one
combined key, NSEC denial of existence), so a test can add a TLSA record made from a
certificate it just issued and the resolver will see it signed.  A zone without a key
is served unsigned: with no trust anchor above it, a validating resolver calls its
answers "insecure" (no AD bit), which is what an unsigned mail domain looks like.

Faults are per name: every signature over records at a name listed in ``bogus`` has
one byte flipped, so a validating resolver must answer SERVFAIL for it, which is what
a sender sees when a domain's DNSSEC is broken.
"""

from __future__ import annotations

import datetime
import socket
import struct
import threading
from collections.abc import Iterable

import dns.version

if dns.version.MAJOR == 2 and dns.version.MINOR >= 8:
    # dnspython 2.8+ refuses to sign unless cryptography is newer than the one Debian and
    # this machine have, although signing works with it; it must be told before
    # dns.dnssec is first imported.
    import dns._features

    if not dns._features.have("dnssec"):
        dns._features.force("dnssec", True)

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

TTL = 30
SOA = "ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 30"
"""Short TTLs and a 30 s negative TTL: a test that changes a name also flushes unbound."""


def _name(text: str | dns.name.Name) -> dns.name.Name:
    if isinstance(text, dns.name.Name):
        return text
    return dns.name.from_text(text.lower().rstrip(".") + ".")


class Zone:
    """One zone: records by (name, type), and a signing key unless it is unsigned."""

    def __init__(self, origin: str, *, signed: bool = True) -> None:
        self.origin = _name(origin)
        self.records: dict[tuple[dns.name.Name, int], dns.rdataset.Rdataset] = {}
        self.key: ec.EllipticCurvePrivateKey | None = None
        self.dnskey: dns.rdata.Rdata | None = None
        zone = self.origin.to_text(omit_final_dot=True)
        self.add(self.origin, "SOA", [SOA.format(zone=zone)])
        self.add(self.origin, "NS", [f"ns.{zone}."])
        self.add(f"ns.{zone}", "A", ["127.0.0.1"])
        if signed:
            self.key = ec.generate_private_key(ec.SECP256R1())
            self.dnskey = dns.dnssec.make_dnskey(
                self.key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257
            )
            self.add(self.origin, "DNSKEY", [self.dnskey.to_text()])

    @property
    def signed(self) -> bool:
        return self.key is not None

    @property
    def trust_anchor(self) -> str:
        """The line a validating resolver needs to trust this zone (unbound ``trust-anchor:``)."""
        assert self.dnskey is not None, "an unsigned zone has no trust anchor"
        return f"{self.origin} {TTL} IN DNSKEY {self.dnskey.to_text()}"

    def add(self, name: str | dns.name.Name, kind: str, texts: Iterable[str]) -> None:
        """Replace the records of one type at a name (``[]`` removes them)."""
        owner, rdtype = _name(name), dns.rdatatype.from_text(kind)
        if not owner.is_subdomain(self.origin):
            raise ValueError(f"{owner} is not in the zone {self.origin}")
        texts = list(texts)
        if not texts:
            self.records.pop((owner, rdtype), None)
            return
        self.records[(owner, rdtype)] = dns.rdataset.from_text_list(
            dns.rdataclass.IN, rdtype, TTL, texts, origin=self.origin, relativize=False
        )

    def remove(self, name: str) -> None:
        """Every record at a name: the name stops existing (unless below it some do)."""
        owner = _name(name)
        for key in [key for key in self.records if key[0] == owner]:
            del self.records[key]

    def names(self) -> list[dns.name.Name]:
        """Owner names in DNSSEC canonical order: the NSEC chain."""
        return sorted({owner for owner, _ in self.records})

    def exists(self, name: dns.name.Name) -> bool:
        """A name exists if it owns records or is an empty non-terminal above some."""
        return any(owner == name or owner.is_subdomain(name) for owner, _ in self.records)


class SignedDNSServer:
    """Authoritative answers for ``zones`` over UDP and TCP on one loopback port."""

    def __init__(self, zones: Iterable[Zone], host: str = "127.0.0.1") -> None:
        self.zones = {zone.origin: zone for zone in zones}
        self.bogus: set[dns.name.Name] = set()
        """Names whose signatures are broken on purpose (see :meth:`break_signatures`)."""
        self.queries: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []
        """Bugs in the server itself, so a test cannot pass on a broken server."""
        self._lock = threading.Lock()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for attempt in range(20):  # the same free port for both transports
            self._udp.bind((host, 0))
            try:
                self._tcp.bind(self._udp.getsockname())
                break
            except OSError:
                self._udp.close()
                self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                if attempt == 19:
                    raise
        self._tcp.listen(16)
        self.host, self.port = self._udp.getsockname()[:2]
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, name="dnssec-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, name="dnssec-tcp", daemon=True),
        ]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def zone(self, name: str) -> Zone:
        """The zone that holds a name (for ``add``/``remove``)."""
        found = self._zone_of(_name(name))
        if found is None:
            raise KeyError(f"no test zone holds {name}")
        return found

    def add(self, name: str, kind: str, texts: Iterable[str]) -> None:
        with self._lock:
            self.zone(name).add(name, kind, texts)

    def remove(self, name: str) -> None:
        with self._lock:
            self.zone(name).remove(name)

    def break_signatures(self, name: str) -> None:
        """From now on every RRSIG over records at ``name`` fails to verify."""
        with self._lock:
            self.bogus.add(_name(name))

    def start(self) -> SignedDNSServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", (self.host, self.port))
        with socket.create_connection((self.host, self.port), timeout=5):
            pass
        for thread in self._threads:
            thread.join(timeout=10)
        self._udp.close()
        self._tcp.close()

    def __enter__(self) -> SignedDNSServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- transports ---------------------------------------------------------------

    def _serve_udp(self) -> None:
        while not self._stopping.is_set():
            data, client = self._udp.recvfrom(65535)
            if self._stopping.is_set():
                return
            answer = self._handle(data, udp=True)
            if answer is not None:
                self._udp.sendto(answer, client)

    def _serve_tcp(self) -> None:
        while not self._stopping.is_set():
            connection, _ = self._tcp.accept()
            if self._stopping.is_set():
                connection.close()
                return
            threading.Thread(
                target=self._serve_connection,
                args=(connection,),
                name="dnssec-tcp-conn",
                daemon=True,
            ).start()

    def _serve_connection(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            try:
                while True:
                    head = self._read(connection, 2)
                    if head is None:
                        return
                    data = self._read(connection, struct.unpack("!H", head)[0])
                    if data is None:
                        return
                    answer = self._handle(data, udp=False)
                    if answer is not None:
                        connection.sendall(struct.pack("!H", len(answer)) + answer)
            except OSError:
                return

    @staticmethod
    def _read(connection: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _handle(self, data: bytes, *, udp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None  # not DNS: ignore, as a real server would
        try:
            question = query.question[0]
            self.queries.append(
                (question.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(question.rdtype))
            )
            with self._lock:
                response = self._answer(query, question.name, question.rdtype)
            limit = max(512, query.payload) if udp and query.edns >= 0 else 512
            wire = response.to_wire(max_size=65535)
            if udp and len(wire) > limit:  # too big for UDP: the resolver retries over TCP
                response.answer, response.authority, response.additional = [], [], []
                response.flags |= dns.flags.TC
                wire = response.to_wire(max_size=65535)
            return wire
        except Exception as error:
            self.errors.append(error)
            return None

    # -- answers ------------------------------------------------------------------

    def _zone_of(self, name: dns.name.Name) -> Zone | None:
        best = None
        for origin, zone in self.zones.items():
            if name.is_subdomain(origin) and (best is None or origin.is_subdomain(best.origin)):
                best = zone
        return best

    def _answer(
        self, query: dns.message.Message, qname: dns.name.Name, qtype: int
    ) -> dns.message.Message:
        response = dns.message.make_response(query)
        zone = self._zone_of(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        dnssec = zone.signed and bool(query.ednsflags & dns.flags.DO)
        name = qname.canonicalize()
        rdataset = zone.records.get((name, qtype))
        cname = zone.records.get((name, dns.rdatatype.CNAME))
        if rdataset is not None:
            self._put(response.answer, zone, qname, rdataset, dnssec)
        elif cname is not None:  # the resolver follows the alias itself
            self._put(response.answer, zone, qname, cname, dnssec)
        elif zone.exists(name):  # NODATA: the name is there, the type is not
            self._put_soa(response, zone, dnssec)
            if dnssec:
                self._put_nsec(response, zone, self._nsec_for(zone, name))
        else:  # NXDOMAIN: the name and the wildcard that could have made it are not there
            response.set_rcode(dns.rcode.NXDOMAIN)
            self._put_soa(response, zone, dnssec)
            if dnssec:
                encloser = name.parent()
                while not zone.exists(encloser):
                    encloser = encloser.parent()
                self._put_nsec(response, zone, self._nsec_for(zone, name))
                self._put_nsec(response, zone, self._nsec_for(zone, _wildcard(encloser)))
        return response

    def _put(
        self,
        section: list[dns.rrset.RRset],
        zone: Zone,
        owner: dns.name.Name,
        rdataset: dns.rdataset.Rdataset,
        dnssec: bool,
    ) -> None:
        rrset = dns.rrset.RRset(owner, rdataset.rdclass, rdataset.rdtype)
        rrset.update(rdataset)
        if rrset not in section:
            section.append(rrset)
        if dnssec:
            section.append(self._signature(zone, rrset))

    def _put_soa(self, response: dns.message.Message, zone: Zone, dnssec: bool) -> None:
        soa = zone.records[(zone.origin, dns.rdatatype.SOA)]
        self._put(response.authority, zone, zone.origin, soa, dnssec)

    def _put_nsec(self, response: dns.message.Message, zone: Zone, owner: dns.name.Name) -> None:
        names = zone.names()
        following = names[(names.index(owner) + 1) % len(names)]
        types = sorted(
            {kind for name, kind in zone.records if name == owner}
            | {dns.rdatatype.RRSIG, dns.rdatatype.NSEC}
        )
        nsec = dns.rdata.from_text(  # text, because Bitmap.from_rdtypes is dnspython 2.4+
            dns.rdataclass.IN,
            dns.rdatatype.NSEC,
            " ".join([following.to_text(), *(dns.rdatatype.to_text(t) for t in types)]),
        )
        rdataset = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC, ttl=TTL)
        rdataset.add(nsec)
        self._put(response.authority, zone, owner, rdataset, True)

    @staticmethod
    def _nsec_for(zone: Zone, name: dns.name.Name) -> dns.name.Name:
        """The NSEC owner that proves something about ``name``: the name itself if it
        owns records, else the last owner before it (an empty non-terminal or a missing
        name falls between that owner and the next)."""
        names = zone.names()
        before = [owner for owner in names if owner <= name]
        return before[-1] if before else names[-1]

    def _signature(self, zone: Zone, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        assert zone.key is not None and zone.dnskey is not None
        now = datetime.datetime.now(datetime.timezone.utc)
        rrsig = dns.dnssec.sign(
            rrset,
            zone.key,
            zone.origin,
            zone.dnskey,  # type: ignore[arg-type]
            inception=now - datetime.timedelta(hours=1),
            expiration=now + datetime.timedelta(days=7),
        )
        if rrset.name.canonicalize() in self.bogus:
            broken = bytearray(rrsig.signature)
            broken[len(broken) // 2] ^= 0xFF
            rrsig = rrsig.replace(signature=bytes(broken))
        signatures = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, dns.rdatatype.RRSIG)
        signatures.update(_single(rrsig, rrset.ttl))
        return signatures


def _wildcard(name: dns.name.Name) -> dns.name.Name:
    return dns.name.Name((b"*", *name.labels))


def _single(rdata: dns.rdata.Rdata, ttl: int) -> dns.rdataset.Rdataset:
    rdataset = dns.rdataset.Rdataset(rdata.rdclass, rdata.rdtype, ttl=ttl)
    rdataset.add(rdata)
    return rdataset
