"""Debian's unbound as a private validating resolver on a loopback port.

The plugin trusts a TLSA or MTA-STS answer only when the resolver says it validated
it (the AD bit), and reports a bogus answer (SERVFAIL) as a delivery failure.  Only a
real validating resolver shows what those look like, so the tests start unbound with
everything in one temporary directory: its own configuration, pid file and log, the
test zones' keys as trust anchors, and stub zones that send every question for them
to the authoritative test server (tests/dnssec.py).  Nothing else is asked: no root
hints are used, the system's unbound and /etc/unbound are never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.dnssec import SignedDNSServer

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])


def find_unbound() -> str | None:
    return shutil.which("unbound", path=SEARCH_PATH)


class UnboundError(RuntimeError):
    """unbound did not start; the message carries its log."""


def _free_port(host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (unbound binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError("no free port for unbound")


class PrivateUnbound:
    """A validating unbound for the zones of one :class:`SignedDNSServer`.

    ``address`` is what the plugin's ``--resolver`` gets.  Unbound caches: a test
    that changes records already asked for calls :meth:`flush`.
    """

    def __init__(self, authority: SignedDNSServer, host: str = "127.0.0.1") -> None:
        self.authority = authority
        self.host = host
        self.directory = Path(tempfile.mkdtemp(prefix="unbound-"))
        self.config = self.directory / "unbound.conf"
        self.log = self.directory / "unbound.log"
        self.control = self.directory / "control.sock"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _write_config(self) -> None:
        lines = [
            "server:",
            f"    interface: {self.host}",
            f"    port: {self.port}",
            "    do-ip6: no",
            "    do-daemonize: no",
            '    chroot: ""',
            '    username: ""',
            f'    directory: "{self.directory}"',
            f'    pidfile: "{self.directory}/unbound.pid"',
            f'    logfile: "{self.log}"',
            "    use-syslog: no",
            "    verbosity: 1",
            "    val-log-level: 2",  # the log says why an answer is bogus
            "    log-servfail: yes",
            "    access-control: 127.0.0.0/8 allow",
            "    do-not-query-localhost: no",  # the authoritative server is on loopback
            "    val-permissive-mode: no",
            '    module-config: "validator iterator"',
            "    qname-minimisation: no",
            "    ede: yes",  # extended DNS errors: SERVFAIL says "DNSSEC Bogus"
            "    val-bogus-ttl: 1",
            "    num-threads: 1",
            "    so-reuseport: no",
            '    local-zone: "test." nodefault',  # RFC 6761 blocks .test by default
        ]
        for origin, zone in self.authority.zones.items():
            if zone.signed:
                lines.append(f'    trust-anchor: "{zone.trust_anchor}"')
            else:
                lines.append(f'    domain-insecure: "{origin}"')
        for origin in self.authority.zones:
            lines += [
                "stub-zone:",
                f'    name: "{origin}"',
                f"    stub-addr: {self.authority.host}@{self.authority.port}",
            ]
        lines += [
            "remote-control:",
            "    control-enable: yes",
            f'    control-interface: "{self.control}"',
            "    control-use-cert: no",
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> PrivateUnbound:
        program = find_unbound()
        if program is None:
            raise UnboundError("unbound is not installed")
        self.port = _free_port(self.host)
        self._write_config()
        checker = shutil.which("unbound-checkconf", path=SEARCH_PATH)
        if checker is not None:
            checked = subprocess.run(
                [checker, str(self.config)], capture_output=True, text=True, check=False
            )
            if checked.returncode != 0:
                raise UnboundError(f"unbound-checkconf: {checked.stdout}{checked.stderr}")
        self._process = subprocess.Popen(
            [program, "-d", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_until_answering()
        return self

    def _wait_until_answering(self) -> None:
        """Until unbound answers over UDP: a query for the first zone's SOA."""
        import dns.exception
        import dns.message
        import dns.query

        origin = next(iter(self.authority.zones))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise UnboundError(f"unbound exited: {self.read_log()}")
            try:
                dns.query.udp(dns.message.make_query(origin, "SOA"), self.host, 0.5, self.port)
                return
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        raise UnboundError(f"unbound did not answer within 20 s: {self.read_log()}")

    def read_log(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        if self._process is not None and self._process.poll() is not None:
            assert self._process.stderr is not None
            text += self._process.stderr.read().decode(errors="replace")
        return text

    def flush(self) -> None:
        """Forget every cached answer for the test zones (after changing records)."""
        control = shutil.which("unbound-control", path=SEARCH_PATH)
        if control is None:
            raise UnboundError("unbound-control is not installed")
        for origin in self.authority.zones:
            subprocess.run(
                [control, "-c", str(self.config), "flush_zone", str(origin)],
                capture_output=True,
                check=True,
            )
        subprocess.run(
            [control, "-c", str(self.config), "flush_bogus"], capture_output=True, check=True
        )
        subprocess.run(
            [control, "-c", str(self.config), "flush_negative"], capture_output=True, check=True
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivateUnbound:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


SIGNED_ZONE = "example.test"
UNSIGNED_ZONE = "plain.test"


def start_world() -> tuple[SignedDNSServer, PrivateUnbound]:
    """The authoritative server for a signed and an unsigned zone, and unbound in front."""
    from tests.dnssec import Zone

    authority = SignedDNSServer([Zone(SIGNED_ZONE), Zone(UNSIGNED_ZONE, signed=False)]).start()
    try:
        resolver = PrivateUnbound(authority).__enter__()
    except BaseException:
        authority.stop()
        raise
    return authority, resolver


def unbound_fixture() -> Iterator[PrivateUnbound]:
    """Session fixture body: skipped without unbound, except in CI (see tests.plugin.need)."""
    from tests.plugin import need

    if find_unbound() is None:
        need("unbound is not installed (Debian package unbound, see .ci/install-system-packages)")
    authority, resolver = start_world()
    try:
        yield resolver
    finally:
        resolver.stop()
        authority.stop()
        if authority.errors:
            raise AssertionError(f"the DNSSEC test server itself failed: {authority.errors!r}")
