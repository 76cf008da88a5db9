"""SMTP delivery straight to the gateway: servers in order, or the recipient's MX hosts.

The alert must not depend on the local mail relay, so this is a tiny MTA on the
same core as the check (core/: one client, one deadline, TLS, AUTH, DNS): it talks
to the configured servers one after the other (or the MX hosts of the recipient's
domain in preference order, each of their addresses in turn) until one accepts the
message.  One deadline bounds everything, DNS included; each server still left gets
an equal share of the remaining time, so one that hangs cannot starve the fallback.
Every refusal is kept so the final error says what each server answered.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import NamedTuple

from check_smtp_verbs.core.client import (
    Client,
    ConnectionClosed,
    InvalidReply,
    OutOfSync,
    Reply,
)
from check_smtp_verbs.core.deadline import (
    AddrInfo,
    Deadline,
    DeadlineExceeded,
    connect,
    resolve,
)
from check_smtp_verbs.notify.settings import Auth, Server, TlsPolicy


class Delivered(NamedTuple):
    server: str  # 127.0.0.1:2525, or mx1.example.net[192.0.2.1]:25
    reply: str  # the server's answer to the final dot ("2.0.0 Ok: queued as ...")
    tls: bool


class Letter(NamedTuple):
    """What is delivered and how, the same for every server tried."""

    message: EmailMessage
    sender: str
    recipient: str
    helo: str
    policy: TlsPolicy
    auth: Auth | None


class DeliveryFailed(Exception):
    """No server accepted the message; the message is one line with every reason."""


class _Refused(Exception):
    """This server did not take the message; try the next one."""


class _TlsFailed(_Refused):
    """The TLS handshake itself failed, so the connection is gone."""


class _Session:
    """One attempt at one server: the client and the stage it is waiting for."""

    def __init__(self, letter: Letter, deadline: Deadline) -> None:
        self.letter = letter
        self.deadline = deadline
        self.client = Client(None)
        self.stage = "the connection"

    def expect(self, what: str, reply: Reply, *codes: int) -> Reply:
        if reply.code not in codes:
            raise _Refused(f"{what} answered {_reply(reply)}")
        return reply

    def open(self, server: Server, address: AddrInfo | None) -> None:
        if address is not None:
            self.client.sock = connect(address, self.deadline)
            return
        error: OSError | None = None
        for candidate in resolve(server.host, server.port, 0, self.deadline):
            try:
                self.client.sock = connect(candidate, self.deadline)
                return
            except OSError as exc:
                error = exc
        raise error or OSError(f"no address for {server.host}")

    def deliver(self, server: Server, address: AddrInfo | None) -> Delivered:
        letter, client = self.letter, self.client
        self.open(server, address)
        self.stage = "the banner"
        banner = client.read_reply()
        if banner.code != 220:
            raise _Refused(f"banner {_reply(banner)}")
        self.stage = "the EHLO reply"
        ehlo = client.greeting(letter.helo)
        if ehlo.code in (500, 502):  # an old gateway without ESMTP: HELO, and no STARTTLS
            self.stage = "the HELO reply"
            self.expect("HELO", client.helo(letter.helo), 250)
        elif ehlo.code != 250:
            raise _Refused(f"EHLO answered {_reply(ehlo)}")
        tls = self.starttls(server) if not letter.policy.disable else False
        if letter.auth is not None:
            self.authenticate(letter.auth, tls)
        self.stage = "the MAIL reply"
        self.expect("MAIL FROM", client.mail(letter.sender), 250, 251)
        self.stage = "the RCPT reply"
        self.expect("RCPT TO", client.rcpt(letter.recipient), 250, 251)
        self.stage = "the DATA reply"
        self.expect("DATA", client.command("DATA"), 354)
        self.stage = "the reply to the message"
        message = letter.message
        wire = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        accepted = self.expect("the message", client.message(wire, "[message]"), 250)
        return Delivered(str(server), _text(accepted), tls)

    def starttls(self, server: Server) -> bool:
        """STARTTLS when offered (or required); False when the session stays plain."""
        client, policy = self.client, self.letter.policy
        if not client.has_extension("starttls"):
            if policy.require:
                raise _Refused("STARTTLS not offered (--require-tls)")
            return False
        self.stage = "the STARTTLS reply"
        reply = client.command("STARTTLS")
        if reply.code != 220:
            if policy.require:
                raise _Refused(f"STARTTLS answered {_reply(reply)}")
            return False  # refused before any TLS byte: go on in plain text, as MTAs do
        self.stage = "the STARTTLS handshake"
        if client.waiting():  # bytes injected before TLS began would be read as TLS data
            raise _Refused("the server sent data after its STARTTLS reply")
        from check_smtp_verbs.core import tls  # only deliveries that use TLS pay for ssl

        # Opportunistic TLS as MTAs do it: encrypt against eavesdroppers, accept any
        # certificate, because refusing would mean sending the alert in clear text.
        context = tls.client_context(policy.cafile, verify=policy.require, own_date_check=False)
        try:
            sock = tls.handshake(client.sock, context, server.host, self.deadline)
        except tls.TlsError as exc:
            client.sock = None
            if policy.require:
                raise _Refused(f"{exc} at {self.stage}") from None
            raise _TlsFailed(f"{exc} at {self.stage}") from None
        client.attach(sock)
        self.stage = "the EHLO reply after STARTTLS"
        self.expect("EHLO after STARTTLS", client.greeting(self.letter.helo), 250)
        return True

    def authenticate(self, auth: Auth, tls: bool) -> None:
        """One attempt with the best mechanism offered: smtplib's habit of trying every
        mechanism after a refusal turns one wrong password into several (and a lock-out)."""
        from check_smtp_verbs.core import auth as core_auth

        if not tls:
            raise _Refused("will not send the password: no TLS")
        if not self.client.has_extension("auth"):
            raise _Refused("AUTH not offered")
        offered = core_auth.offered(self.client)
        mechanism = next((m for m in core_auth.PREFERENCE if m in offered), None)
        if mechanism is None:
            raise _Refused(f"no AUTH mechanism this program knows: {' '.join(offered) or 'none'}")
        self.stage = "the AUTH reply"
        reply = core_auth.exchange(self.client, mechanism, auth.user, auth.password)
        if reply.code not in (235, 503):  # 503: already authenticated
            raise _Refused(f"AUTH answered {_reply(reply)}")

    def quit(self, polite: bool) -> None:
        """QUIT after success; after a failure just hang up - the reason is known."""
        try:
            if polite and self.client.sock is not None:
                self.client.command("QUIT")
        except (DeadlineExceeded, OSError, ConnectionClosed, InvalidReply, OutOfSync):
            pass
        finally:
            self.client.close()


def _text(reply: Reply) -> str:
    return " ".join(reply.lines)[:200]


def _reply(reply: Reply) -> str:
    return f"{reply.code} {_text(reply)}"[:200]


def try_server(
    server: Server, address: AddrInfo | None, letter: Letter, deadline: Deadline
) -> Delivered:
    """Deliver to one server; raise _Refused with the reason when it did not accept.

    With opportunistic TLS a failed handshake is followed by a second connection
    without STARTTLS (what Postfix does at its "may" level): an alert in clear text
    beats no alert.  With --require-tls (or AUTH) it is the end for this server.
    """
    try:
        return _attempt(server, address, letter, deadline)
    except _TlsFailed as failed:
        plain = letter._replace(policy=letter.policy._replace(disable=True))
        try:
            return _attempt(server, address, plain, deadline)
        except _Refused as again:
            raise _Refused(f"{failed}; again without TLS: {again}") from None


def _attempt(
    server: Server, address: AddrInfo | None, letter: Letter, deadline: Deadline
) -> Delivered:
    session = _Session(letter, deadline)
    accepted = False
    try:
        delivered = session.deliver(server, address)
        accepted = True
        return delivered
    except DeadlineExceeded:
        raise _Refused(
            f"timeout after {round(deadline.seconds, 1):g}s waiting for {session.stage}"
        ) from None
    except ConnectionClosed:
        raise _Refused(f"connection closed while waiting for {session.stage}") from None
    except InvalidReply as exc:  # a truncated final reply, then a close: not delivered
        raise _Refused(f"invalid reply at {session.stage}: {exc}") from None
    except OutOfSync as exc:
        raise _Refused(f"out of sync at {session.stage}: {exc}") from None
    except OSError as exc:  # refused, unreachable, reset
        why = exc.strerror or str(exc)
        if session.stage == "the connection":
            raise _Refused(f"cannot connect: {why}") from None
        raise _Refused(f"{why} at {session.stage}") from None
    finally:
        session.quit(accepted)


def deliver_to_servers(servers: list[Server], letter: Letter, deadline: Deadline) -> Delivered:
    """Try ``servers`` in order until one accepts."""
    reasons: list[str] = []
    for index, server in enumerate(servers):
        share = _share(deadline, len(servers) - index)
        if share is None:
            reasons.append(f"{server}: not tried, no time left")
            break
        try:
            return try_server(server, None, letter, share)
        except _Refused as exc:
            reasons.append(f"{server}: {exc}")
    raise DeliveryFailed("; ".join(reasons))


def _share(deadline: Deadline, left: int) -> Deadline | None:
    try:
        return deadline.within(deadline.remaining() / max(left, 1))
    except DeadlineExceeded:
        return None


def deliver_to_mx(
    recipient_domain: str,
    port: int,
    resolver_address: tuple[str, int] | None,
    letter: Letter,
    deadline: Deadline,
) -> Delivered:
    """Deliver to the MX hosts of the recipient's domain, falling through on refusal.

    The MX rules (null MX, no MX means the domain itself, duplicates) and their error
    wording are core/dns.py's, the same as the check's --mx.
    """
    from check_smtp_verbs.core import dns  # dnspython: only MX delivery pays for it

    resolver = dns.make_resolver(resolver_address)
    found = dns.lookup(recipient_domain, 0, resolver, deadline)
    if found.error is not None:
        raise DeliveryFailed(found.error)
    resolve_host = dns.resolve_with(resolver)
    reasons: list[str] = []
    for index, host in enumerate(found.hosts):
        share = _share(deadline, len(found.hosts) - index)
        if share is None:
            reasons.append(f"{host.name}: not tried, no time left")
            break
        try:
            addresses = resolve_host(host.name, port, 0, share)
        except DeadlineExceeded:
            reasons.append(f"{host.name}: timeout looking up its address")
            continue
        except OSError as exc:
            reasons.append(f"{host.name}: {exc}")
            continue
        for address in addresses:
            ip = address[4][0]
            try:
                delivered = try_server(Server(host.name, port), address, letter, share)
                return delivered._replace(server=f"{host.name}[{ip}]:{port}")
            except _Refused as exc:
                reasons.append(f"{host.name}[{ip}]:{port}: {exc}")
    raise DeliveryFailed("; ".join(reasons) or f"no MX host for {recipient_domain}")
