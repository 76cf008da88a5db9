"""A private, real Dovecot (IMAP, POP3, LMTP) on loopback ports for the round-trip tests.

The round trip ends in a mailbox, so the tests need a real mailbox server: Debian's
Dovecot, started as ``dovecot -F -c FILE`` with everything it writes (runtime sockets,
state, log, maildirs) in one temporary directory.  The system instance and
/etc/dovecot are neither read nor started.  Needs root, like Dovecot itself.

What the instance offers:

* users ``probe@``, ``other@`` and ``unicode@roundtrip.test`` (passwords in
  :data:`USERS`) in a passwd-file, with Maildirs under the temporary directory;
* on 127.0.0.1: IMAP (STARTTLS), IMAPS, POP3 (STARTTLS, which POP3 calls STLS),
  POP3S and LMTP, each on its own high port, TLS from the test CA (tests/certs.py);
* on 127.0.0.2: IMAP whose capabilities lack IDLE, for the polling path;
* on 127.0.0.3: IMAP whose capabilities lack UIDPLUS, for deletion without UID EXPUNGE;
* on 127.0.0.4: IMAP and POP3 without TLS (no STARTTLS offered), and plaintext login
  allowed, for the check's refusal to log in without TLS.

The last two are the same server, told by a ``local`` block to advertise a different
CAPABILITY to connections on that address: a client that believes the list behaves as
it would with a server that lacks the extension.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from tests.certs import TestCertificates
from tests.postfix import SEARCH_PATH, _free_port, _wait_gone, processes_with_environment

DOMAIN = "roundtrip.test"
HOSTNAME = f"mailbox.{DOMAIN}"
PROBE_USER = f"probe@{DOMAIN}"
OTHER_USER = f"other@{DOMAIN}"
UNICODE_USER = f"unicode@{DOMAIN}"
# A password outside ASCII, with a quote and a backslash: what IMAP LOGIN cannot carry
# and what must be redacted in every encoding the clients send.
UNICODE_SECRET = 'Zq9€kx-7"Yv!\\wT'
USERS = {PROBE_USER: "probe-secret", OTHER_USER: "other-secret", UNICODE_USER: UNICODE_SECRET}
NO_IDLE_HOST = "127.0.0.2"
NO_UIDPLUS_HOST = "127.0.0.3"
NO_TLS_HOST = "127.0.0.4"
MARKER = "CHECK_SMTP_VERBS_DOVECOT"
"""Exported to Dovecot and imported by it into every child (import_environment), so
teardown finds every process of this instance and no other."""

# Dovecot 2.3's own post-login capability list, so the ``local`` blocks can advertise it
# minus one extension.  Dovecot appends STARTTLS, AUTH= and LOGINDISABLED itself before login.
_DOVECOT_CAPABILITY = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)
CAPABILITIES = _DOVECOT_CAPABILITY.split()


class DovecotError(RuntimeError):
    """Dovecot did not do what the fixture asked; the message carries its log."""


class Ports(NamedTuple):
    imap: int
    imaps: int
    pop3: int
    pop3s: int
    lmtp: int
    imap_no_idle: int
    imap_no_uidplus: int
    imap_no_tls: int
    pop3_no_tls: int


def find_dovecot() -> str | None:
    return shutil.which("dovecot", path=SEARCH_PATH)


def _without(name: str) -> str:
    return " ".join(capability for capability in CAPABILITIES if capability != name)


def _listener(name: str, address: str, port: int, ssl: bool = False) -> str:
    return (
        f"  inet_listener {name} {{\n    address = {address}\n    port = {port}\n"
        + ("    ssl = yes\n" if ssl else "")
        + "  }\n"
    )


class PrivateDovecot:
    """One private Dovecot; use as a context manager or start()/stop()."""

    def __init__(self, certs: TestCertificates, host: str = "127.0.0.1") -> None:
        dovecot = find_dovecot()
        if dovecot is None:
            raise FileNotFoundError("dovecot is not installed (apt-get install dovecot-imapd)")
        self._dovecot = dovecot
        self._certs = certs
        self.host = host
        self.domain = DOMAIN
        self.hostname = HOSTNAME
        self.users = dict(USERS)
        self.ca_file = certs.ca_file
        self.ports = Ports(0, 0, 0, 0, 0, 0, 0, 0, 0)
        self.base_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self._dir("dovecot.log")

    @property
    def config_path(self) -> Path:
        return self._dir("dovecot.conf")

    def _dir(self, name: str) -> Path:
        if self.base_dir is None:
            raise RuntimeError("PrivateDovecot is not started")
        return self.base_dir / name

    def start(self) -> PrivateDovecot:
        if self.base_dir is not None:
            raise RuntimeError("PrivateDovecot already started")
        self.base_dir = Path(tempfile.mkdtemp(prefix="dovecot-verbs-"))
        try:
            for _attempt in range(3):
                self._configure()
                self._process = subprocess.Popen(
                    [self._dovecot, "-F", "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env={
                        "PATH": SEARCH_PATH,
                        MARKER: str(self.base_dir),
                    },
                )
                if self._wait_until_listening(timeout=20.0):
                    return self
                output = self._process.communicate(timeout=10)[0].decode(errors="replace")
                self._process = None
                if "Address already in use" not in output + self.log():
                    raise DovecotError(f"dovecot did not start:\n{output}\n{self.log()}")
            raise DovecotError(f"no free ports for dovecot:\n{self.log()}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the master (it stops its children) and make sure none of them is left."""
        if self.base_dir is None:
            return
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                self._process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.communicate()
            self._process = None
        entry = f"{MARKER}={self.base_dir}"
        leftovers = _wait_gone(processes_with_environment(entry), timeout=5.0)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        still_alive = _wait_gone(leftovers, timeout=5.0)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        if still_alive:
            raise DovecotError(f"dovecot processes survived SIGKILL: {still_alive}")

    def __enter__(self) -> PrivateDovecot:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, scheme: str = "imap", host: str | None = None) -> str:
        """``imaps://127.0.0.1:PORT`` and the like, as a user would write it for --imap/--pop3."""
        port = {
            "imap": self.ports.imap,
            "imaps": self.ports.imaps,
            "pop3": self.ports.pop3,
            "pop3s": self.ports.pop3s,
        }[scheme]
        if host == NO_IDLE_HOST:
            port = self.ports.imap_no_idle
        elif host == NO_UIDPLUS_HOST:
            port = self.ports.imap_no_uidplus
        elif host == NO_TLS_HOST:
            port = self.ports.imap_no_tls if scheme == "imap" else self.ports.pop3_no_tls
        return f"{scheme}://{host or self.host}:{port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def deliver(
        self, raw: bytes, user: str = PROBE_USER, sender: str = "sender@example.net"
    ) -> None:
        """Put one message into ``user``'s INBOX over LMTP, as an MTA would.

        LMTP answers after the message is saved, so it is in the mailbox on return.
        """
        with smtplib.LMTP(self.host, self.ports.lmtp, local_hostname="tests.invalid") as lmtp:
            refused = lmtp.sendmail(sender, [user], raw)
        if refused:
            raise DovecotError(f"LMTP refused {refused!r}\n{self.log()[-4000:]}")

    def maildir_messages(self, user: str = PROBE_USER) -> list[bytes]:
        """Every message in ``user``'s INBOX as stored on disk (new/ and cur/), oldest first.

        Read from disk rather than over IMAP, so that a test of what the check deleted
        does not depend on the client under test."""
        maildir = self._dir("mail") / user / "Maildir"
        files = [
            path
            for sub in ("new", "cur")
            if (maildir / sub).is_dir()
            for path in (maildir / sub).iterdir()
        ]
        files.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
        return [path.read_bytes() for path in files]

    def empty(self, user: str = PROBE_USER) -> None:
        """Remove every message of ``user`` (doveadm, so that Dovecot's index agrees)."""
        doveadm = shutil.which("doveadm", path=SEARCH_PATH)
        if doveadm is None:
            raise FileNotFoundError("doveadm is not installed (dovecot-core)")
        subprocess.run(
            [doveadm, "-c", str(self.config_path), "expunge", "-u", user, "mailbox", "*", "all"],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def _configure(self) -> None:
        assert self.base_dir is not None
        self.base_dir.chmod(0o755)
        for name in ("run", "state", "mail"):
            self._dir(name).mkdir(exist_ok=True)
        shutil.chown(self._dir("mail"), user="nobody")
        cert, key = self._certs.write_pair(
            self.base_dir, HOSTNAME, "localhost", self.host, NO_IDLE_HOST, NO_UIDPLUS_HOST
        )
        # Mail is stored as nobody: Dovecot refuses to run a mail process as root.
        entry = pwd.getpwnam("nobody")
        nobody = f"{entry.pw_uid}:{entry.pw_gid}"
        users = "".join(
            f"{user}:{{PLAIN}}{password}:{nobody}::{self._dir('mail') / user}::\n"
            for user, password in self.users.items()
        )
        self._dir("users").write_text(users, encoding="utf-8")
        self._dir("users").chmod(0o600)
        shutil.chown(self._dir("users"), user="dovecot")  # the auth process reads it
        ports = Ports(
            *(_free_port(self.host) for _ in range(5)),
            imap_no_idle=_free_port(NO_IDLE_HOST),
            imap_no_uidplus=_free_port(NO_UIDPLUS_HOST),
            imap_no_tls=_free_port(NO_TLS_HOST),
            pop3_no_tls=_free_port(NO_TLS_HOST),
        )
        self.ports = ports
        h = self.host
        config = (
            f"base_dir = {self._dir('run')}\n"
            f"state_dir = {self._dir('state')}\n"
            f"log_path = {self.log_path}\n"
            f"instance_name = dovecot-verbs-{ports.imap}\n"
            f"import_environment = TZ {MARKER}\n"
            "protocols = imap pop3 lmtp\n"
            f"listen = {h}, {NO_IDLE_HOST}, {NO_UIDPLUS_HOST}, {NO_TLS_HOST}\n"
            "ssl = required\n"
            f"ssl_cert = <{cert}\n"
            f"ssl_key = <{key}\n"
            # Plaintext logins on loopback are allowed by Dovecot (it trusts a connection
            # whose two ends are the same address); the check must refuse them itself.
            "auth_mechanisms = plain login\n"
            # Failed logins are answered at once: the tests fail logins on purpose, and
            # Dovecot's 2 s delay (more with the anvil penalty for an address that keeps
            # failing; a socket mode of 0 switches it off) would only slow them down.
            "auth_failure_delay = 0\n"
            "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
            f"passdb {{\n  driver = passwd-file\n  args = {self._dir('users')}\n}}\n"
            f"userdb {{\n  driver = passwd-file\n  args = {self._dir('users')}\n}}\n"
            "mail_location = maildir:~/Maildir\n"
            "lmtp_save_to_detail_mailbox = no\n"
            f"postmaster_address = postmaster@{DOMAIN}\n"
            f"hostname = {HOSTNAME}\n"
            "service imap-login {\n"
            + _listener("imap", h, ports.imap)
            + _listener("imaps", h, ports.imaps, ssl=True)
            + _listener("imap_no_idle", NO_IDLE_HOST, ports.imap_no_idle)
            + _listener("imap_no_uidplus", NO_UIDPLUS_HOST, ports.imap_no_uidplus)
            + _listener("imap_no_tls", NO_TLS_HOST, ports.imap_no_tls)
            + "}\n"
            "service pop3-login {\n"
            + _listener("pop3", h, ports.pop3)
            + _listener("pop3s", h, ports.pop3s, ssl=True)
            + _listener("pop3_no_tls", NO_TLS_HOST, ports.pop3_no_tls)
            + "}\n"
            "service lmtp {\n" + _listener("lmtp", h, ports.lmtp) + "}\n"
            f"local {NO_IDLE_HOST} {{\n  protocol imap {{\n"
            f"    imap_capability = {_without('IDLE')}\n  }}\n}}\n"
            f"local {NO_UIDPLUS_HOST} {{\n  protocol imap {{\n"
            f"    imap_capability = {_without('UIDPLUS')}\n  }}\n}}\n"
            f"local {NO_TLS_HOST} {{\n  ssl = no\n  disable_plaintext_auth = no\n}}\n"
        )
        self.config_path.write_text(config)

    def _wait_until_listening(self, timeout: float) -> bool:
        """True once every listener answers; False if Dovecot exited (a port was taken).

        ``dovecot -F`` binds every listener before it forks a single child, so the
        first connection normally works; the retry only covers a slow start.
        """
        assert self._process is not None
        addresses = [
            (self.host, self.ports.imap),
            (self.host, self.ports.imaps),
            (self.host, self.ports.pop3),
            (self.host, self.ports.pop3s),
            (self.host, self.ports.lmtp),
            (NO_IDLE_HOST, self.ports.imap_no_idle),
            (NO_UIDPLUS_HOST, self.ports.imap_no_uidplus),
            (NO_TLS_HOST, self.ports.imap_no_tls),
            (NO_TLS_HOST, self.ports.pop3_no_tls),
        ]
        deadline = time.monotonic() + timeout
        while addresses:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(addresses[0], timeout=1):
                    addresses.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise DovecotError(f"dovecot is not listening on {addresses[0]}\n{self.log()}")
            time.sleep(0.05)
        return True
