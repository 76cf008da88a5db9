"""A private, real Postfix on a loopback port for integration tests.

The scripted server in ``tests.smtpd`` shows what the plugin does with
replies we invent; this one shows that it copes with a real MTA.  Everything
lives in one temporary directory (configuration, queue, data, maildirs, log),
so several instances can run side by side and the system instance in
/etc/postfix is neither read nor started.  Needs root, like Postfix itself.

What the instance does:

* ``postmaster@verbs.test`` and ``probe@verbs.test`` are virtual mailboxes
  (Maildir, read back with :meth:`PrivatePostfix.delivered`);
* ``nosuchuser@verbs.test`` (any unlisted user) gets 550 5.1.1 user unknown;
* ``tempfail@verbs.test`` gets 451 4.3.0 from a recipient access map;
* any other domain gets 554 5.7.1 relay access denied, because
  ``mynetworks`` does not contain loopback;
* nothing can leave: every non-local transport is ``error:``, and no DNS
  lookups are needed.

Two keyword arguments make the instances the refusal checks need:
``open_relay=True`` puts loopback into ``mynetworks``, so RCPT to any other
domain gets 250 (a deliberately broken server, still unable to send anything
anywhere: what it relays is discarded); ``ipv6=True`` listens on ``[::1]`` with
the same port as well, for checks of every address of a name.  ``name`` goes
into ``syslog_name`` so the log lines of several instances say whose they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DOMAIN = "verbs.test"
HOSTNAME = f"postfix.{DOMAIN}"
MAILBOX_USERS = ("postmaster", "probe")
TEMPFAIL_USER = "tempfail"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])

# chroot off everywhere ("n" in column 5): a chroot would need copies of
# /etc files inside the private queue directory.  tlsmgr is listed so that
# enabling STARTTLS later is a postconf() away.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixError(RuntimeError):
    """Postfix did not do what the fixture asked; the message carries its log."""


def find_postfix() -> str | None:
    """The postfix command, also when /usr/sbin is not on a user's PATH."""
    return shutil.which("postfix", path=SEARCH_PATH)


def _free_port(host: str) -> int:
    """A port that is free right now; start() retries if someone takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


IPV6_LOOPBACK = "::1"
OPEN_RELAY_NETWORKS = "127.0.0.0/8 [::1]/128"
"""Every loopback client may relay: the misconfiguration --relay-test exists to catch."""


def _backdate(config_dir: Path) -> None:
    """Make freshly written configuration look old.

    Postfix reads a main.cf or texthash map modified within the last second
    or so only after it has stopped changing, in 300 ms naps: that cost
    about 2 s on every start, reload and first use of a map.
    """
    long_ago = time.time() - 60
    for path in config_dir.iterdir():
        os.utime(path, (long_ago, long_ago))


def processes_with_environment(entry: str) -> list[int]:
    """Live (not zombie) processes whose environment holds ``entry`` (``NAME=value``).

    The way to find every process of a private daemon: children leave the
    master's process group and are re-parented when it exits, but keep its
    environment."""
    wanted = entry.encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if stat[stat.rindex(")") + 2] != "Z" and wanted in environ:
            found.append(int(proc.name))
    return found


def instance_processes(config_dir: Path) -> list[int]:
    """Live processes of one instance, by the MAIL_CONFIG Postfix exports to all of them."""
    return processes_with_environment(f"MAIL_CONFIG={config_dir}")


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait for processes to exit, woken by pidfds rather than by polling;
    returns those still alive at the deadline."""
    fds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            fds[os.pidfd_open(pid)] = pid
    try:
        pending = set(fds)
        deadline = time.monotonic() + timeout
        while pending:
            timeout_left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(list(pending), [], [], timeout_left)
            if not ready:
                break
            pending -= set(ready)
        return [fds[fd] for fd in pending]
    finally:
        for fd in fds:
            os.close(fd)


class PrivatePostfix:
    """One private Postfix instance; use as a context manager or start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        open_relay: bool = False,
        ipv6: bool = False,
        name: str = "postfix",
    ) -> None:
        postfix = find_postfix()
        if postfix is None:
            raise FileNotFoundError("postfix is not installed (apt-get install postfix)")
        self._postfix = postfix
        self._postconf = str(Path(postfix).with_name("postconf"))
        self.host = host
        self.port = 0
        self.domain = DOMAIN
        self.hostname = HOSTNAME
        self.base_dir: Path | None = None
        self._running = False
        self.open_relay = open_relay
        self.ipv6 = ipv6
        """Also listen on [::1] with the same port (``self.port``)."""
        self.name = name

    @property
    def config_dir(self) -> Path:
        return self._dir("etc")

    @property
    def mail_dir(self) -> Path:
        return self._dir("mail")

    @property
    def maillog_path(self) -> Path:
        return self._dir("maillog")

    def _dir(self, name: str) -> Path:
        if self.base_dir is None:
            raise RuntimeError("PrivatePostfix is not started")
        return self.base_dir / name

    def start(self) -> PrivatePostfix:
        if self.base_dir is not None:
            raise RuntimeError("PrivatePostfix already started")
        self.base_dir = Path(tempfile.mkdtemp(prefix="postfix-verbs-"))
        try:
            self._configure()
            for _attempt in range(3):
                self.port = _free_port(self.host)
                (self.config_dir / "master.cf").write_text(self._master_cf())
                _backdate(self.config_dir)
                log_start = len(self.maillog())
                result = self._command("start")
                if result.returncode == 0:
                    break
                if "Address already in use" not in self.maillog()[log_start:]:
                    raise self._error("postfix start failed", result)
            else:
                raise self._error("no free port for postfix", result)
            self._running = True
            self._wait_for_banner(timeout=20.0)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the master and make sure that none of its processes is left."""
        if self.base_dir is None:
            return
        if self._running:
            self._running = False
            self._command("stop")
        leftovers = _wait_gone(instance_processes(self.config_dir), timeout=10.0)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        still_alive = _wait_gone(leftovers, timeout=5.0)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        if still_alive:
            raise PostfixError(f"postfix processes survived SIGKILL: {still_alive}")

    def __enter__(self) -> PrivatePostfix:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def postconf(self, **params: str) -> None:
        """Change main.cf settings; call reload() for running daemons to see them."""
        settings = [f"{name}={value}" for name, value in params.items()]
        subprocess.run(
            [self._postconf, "-c", str(self.config_dir), "-e", *settings],
            check=True,
            capture_output=True,
        )
        _backdate(self.config_dir)

    def enable_starttls(self, cert_file: Path, key_file: Path) -> None:
        """Offer STARTTLS with this certificate (opportunistic, as on port 25) and reload."""
        self.postconf(
            smtpd_tls_cert_file=str(cert_file),
            smtpd_tls_key_file=str(key_file),
            smtpd_tls_security_level="may",
            smtpd_tls_loglevel="1",
        )
        self.reload()

    def enable_auth(self, users: dict[str, str]) -> None:
        """SMTP AUTH through Cyrus SASL with a private sasldb (PLAIN, LOGIN, CRAM-MD5),
        offered only after STARTTLS as on a submission port; then reload.

        Users are ``name`` in the realm ``verbs.test``.  Needs saslpasswd2 (sasl2-bin).
        Debian's Postfix looks for the SASL application file in
        ``$config_directory/sasl/`` (it ignores cyrus_sasl_config_path), which here is
        private to the instance.
        """
        saslpasswd2 = shutil.which("saslpasswd2", path=SEARCH_PATH)
        if saslpasswd2 is None:
            raise FileNotFoundError("saslpasswd2 is not installed (apt-get install sasl2-bin)")
        sasl_dir = self.config_dir / "sasl"
        sasl_dir.mkdir(mode=0o755, exist_ok=True)
        sasldb = sasl_dir / "sasldb2"
        for user, password in users.items():
            subprocess.run(
                [saslpasswd2, "-c", "-p", "-f", str(sasldb), "-u", DOMAIN, user],
                input=password.encode(),
                check=True,
                capture_output=True,
            )
        shutil.chown(sasldb, user="postfix")  # smtpd reads it after dropping privileges
        (sasl_dir / "smtpd.conf").write_text(
            "pwcheck_method: auxprop\n"
            "auxprop_plugin: sasldb\n"
            "mech_list: PLAIN LOGIN CRAM-MD5\n"
            f"sasldb_path: {sasldb}\n"
        )
        self.postconf(
            smtpd_sasl_auth_enable="yes",
            smtpd_sasl_type="cyrus",
            smtpd_sasl_path="smtpd",
            smtpd_sasl_local_domain=DOMAIN,
            smtpd_tls_auth_only="yes",
        )
        self.reload()

    def disable_auth(self) -> None:
        self.postconf(smtpd_sasl_auth_enable="no", smtpd_tls_auth_only="no")
        self.reload()

    def disable_starttls(self) -> None:
        """Back to the plaintext-only default, for the tests that follow."""
        self.postconf(
            smtpd_tls_security_level="none", smtpd_tls_cert_file="", smtpd_tls_key_file=""
        )
        self.reload()

    def deliver_over_lmtp(self, domain: str, host: str, port: int) -> None:
        """Accept mail for ``domain`` and hand it to the LMTP server at ``host:port`` (the
        private Dovecot of the round-trip tests), then reload.

        The domain becomes a relay domain with its own transport; every other domain
        keeps its routing.  Calling it again for the same domain changes nothing.
        """
        master_cf = self.config_dir / "master.cf"
        if not re.search(r"^lmtp\s", master_cf.read_text(), re.MULTILINE):
            with master_cf.open("a") as file:
                file.write("lmtp      unix  - - n -     - lmtp\n")
        transport = self.config_dir / "transport"
        routes = transport.read_text() if transport.exists() else ""
        route = f"{domain} lmtp:inet:{host}:{port}\n"
        if route not in routes:
            transport.write_text(routes + route)
        current = subprocess.run(  # -x: expanded, not the default's macro text
            [self._postconf, "-c", str(self.config_dir), "-hx", "relay_domains"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        relay_domains = [d for d in re.split(r"[\s,]+", current) if d]
        self.postconf(
            relay_domains=", ".join(dict.fromkeys([*relay_domains, domain])),
            transport_maps=f"texthash:{transport}",
        )
        self.reload()

    def stop_delivering_over_lmtp(self, domain: str) -> None:
        """Undo :meth:`deliver_over_lmtp` for ``domain`` (the session's instance is shared)."""
        transport = self.config_dir / "transport"
        if transport.exists():
            routes = transport.read_text().splitlines(keepends=True)
            transport.write_text("".join(r for r in routes if r.split()[:1] != [domain]))
        current = subprocess.run(
            [self._postconf, "-c", str(self.config_dir), "-hx", "relay_domains"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        kept = [d for d in re.split(r"[\s,]+", current) if d and d != domain]
        self.postconf(relay_domains=", ".join(kept))
        self.reload()

    def hold_incoming(self, hold: bool = True) -> None:
        """Put every message accepted from now on "on hold" (or stop doing so), and reload.

        A held message stays in the queue, undelivered, until :meth:`release_held`:
        the way to make delivery late, or never happen, on purpose.
        """
        self.postconf(
            smtpd_end_of_data_restrictions="check_client_access static:HOLD" if hold else ""
        )
        self.reload()

    def held(self) -> list[str]:
        """Queue IDs of the messages on hold (``postqueue -j``: one JSON object a line)."""
        postqueue = str(Path(self._postfix).with_name("postqueue"))
        listing = subprocess.run(
            [postqueue, "-c", str(self.config_dir), "-j"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        entries = [json.loads(line) for line in listing.splitlines() if line.strip()]
        return [entry["queue_id"] for entry in entries if entry.get("queue_name") == "hold"]

    def release_held(self) -> None:
        """Release every held message (``postsuper -H ALL``) and deliver it now."""
        postsuper = str(Path(self._postfix).with_name("postsuper"))
        postqueue = str(Path(self._postfix).with_name("postqueue"))
        subprocess.run(
            [postsuper, "-c", str(self.config_dir), "-H", "ALL"], check=True, capture_output=True
        )
        subprocess.run(
            [postqueue, "-c", str(self.config_dir), "-f"], check=True, capture_output=True
        )

    def setting(self, name: str) -> str:
        """A main.cf setting as Postfix sees it (defaults included)."""
        return subprocess.run(
            [self._postconf, "-c", str(self.config_dir), "-h", name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def reload(self) -> None:
        """Reload, returning only when no daemon with the old settings is left.

        New smtpd processes read main.cf when they start; old idle ones could
        still accept the next connection, so wait for those to exit (one that
        still serves an open connection keeps reload() waiting, up to 10 s).
        """
        old = instance_processes(self.config_dir)
        result = self._command("reload")
        if result.returncode != 0:
            raise self._error("postfix reload failed", result)
        master = self._master_pid()
        if _wait_gone([pid for pid in old if pid != master], timeout=10.0):
            raise self._error("old postfix daemons did not exit after reload")

    def maillog(self) -> str:
        """The instance's log so far (written by postlogd, so slightly behind)."""
        try:
            return self.maillog_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """First match of ``pattern`` in the log, waiting for postlogd to write it."""
        return self._poll(lambda: re.search(pattern, self.maillog()), timeout, repr(pattern))

    def delivered(self, user: str) -> list[bytes]:
        """Messages in ``user``'s Maildir (new/ and cur/), oldest first."""
        files = [
            path
            for sub in ("new", "cur")
            if (self.mail_dir / user / sub).is_dir()
            for path in (self.mail_dir / user / sub).iterdir()
        ]
        files.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
        return [path.read_bytes() for path in files]

    def wait_for_delivery(self, user: str, count: int = 1, timeout: float = 10.0) -> list[bytes]:
        """delivered(user) once it holds ``count`` messages: delivery is asynchronous."""

        def enough() -> list[bytes] | None:
            found = self.delivered(user)
            return found if len(found) >= count else None

        return self._poll(enough, timeout, f"{count} message(s) for {user}")

    def _poll(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        """Retry ``probe`` until it returns something.

        Only for facts that another process writes to disk (log, maildir),
        which offer nothing to wait on.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise self._error(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def _master_cf(self) -> str:
        """master.cf for this start attempt: the smtpd listener on ``host:port``, and with
        ``ipv6`` one more on ``[::1]`` with the same port, as one dual-stack MX would."""
        master_cf = MASTER_CF.format(listen=f"{self.host}:{self.port}")
        if self.ipv6:
            master_cf = f"[{IPV6_LOOPBACK}]:{self.port} inet n - n - - smtpd\n" + master_cf
        return master_cf

    def _instance_settings(self) -> dict[str, str]:
        """What the keyword arguments change in main.cf, on top of the MX defaults."""
        settings = {"syslog_name": self.name}
        if self.open_relay:
            # error: would not do here: smtpd refuses at RCPT a recipient whose transport
            # is error: ("550 5.1.1 ... Recipient address rejected"), so the relay would
            # not look open.  discard: accepts and drops: still nothing leaves.
            settings["mynetworks"] = OPEN_RELAY_NETWORKS
            settings["default_transport"] = "discard:open relay test instance"
            settings["relay_transport"] = "discard:open relay test instance"
        if self.ipv6:
            settings["inet_protocols"] = "all"
        return settings

    def _configure(self) -> None:
        assert self.base_dir is not None
        # The virtual delivery agent runs as nobody and needs to reach the maildirs.
        self.base_dir.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        for name in ("etc", "spool", "data", "mail"):
            self._dir(name).mkdir()
        shutil.chown(self._dir("data"), user="postfix")
        os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
        (self.config_dir / "vmailbox").write_text(
            "".join(f"{user}@{DOMAIN} {user}/\n" for user in MAILBOX_USERS)
        )
        (self.config_dir / "recipient_access").write_text(
            f"{TEMPFAIL_USER}@{DOMAIN} 451 4.3.0 Temporary failure for testing\n"
        )
        main_cf = {
            "compatibility_level": "3.6",
            "queue_directory": self._dir("spool"),
            "data_directory": self._dir("data"),
            "maillog_file": self.maillog_path,
            "maillog_file_prefixes": self.base_dir,
            "myhostname": HOSTNAME,
            "mydomain": DOMAIN,
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "192.0.2.1/32",
            "smtpd_peername_lookup": "no",
            # Flow control pauses MAIL FROM by 1 s once the message arrival rate outruns
            # deliveries; probes that stop at RCPT never deliver, so after about 100 of
            # them every MAIL FROM took a second (seen in the benchmarks).
            "in_flow_delay": "0s",
            "default_transport": "error:",
            "relay_transport": "error:",
            "local_transport": "error:",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_base": self.mail_dir,
            "virtual_mailbox_maps": f"texthash:{self.config_dir / 'vmailbox'}",
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": (
                f"check_recipient_access texthash:{self.config_dir / 'recipient_access'}"
            ),
        }
        main_cf.update(self._instance_settings())
        (self.config_dir / "main.cf").write_text(
            "".join(f"{name} = {value}\n" for name, value in main_cf.items())
        )

    def _command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._postfix, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def _master_pid(self) -> int | None:
        try:
            return int((self._dir("spool") / "pid" / "master.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _wait_for_banner(self, timeout: float) -> None:
        """Ready means a 220 greeting, not merely a listening socket.

        ``postfix start`` returns once the master has bound its sockets, so
        the first attempt normally succeeds; the retry is a safety net.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=timeout) as conn:
                    conn.settimeout(max(0.1, deadline - time.monotonic()))
                    if conn.recv(512).startswith(b"220"):
                        conn.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise self._error(f"no 220 banner on {self.host}:{self.port} within {timeout}s")
            time.sleep(0.1)

    def _error(
        self, message: str, result: subprocess.CompletedProcess[str] | None = None
    ) -> PostfixError:
        output = f"\n{result.stdout}{result.stderr}" if result is not None else ""
        return PostfixError(f"{message}{output}\n--- maillog ---\n{self.maillog()[-4000:]}")
