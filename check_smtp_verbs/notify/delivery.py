"""SMTP delivery straight to the gateway: servers in order, or the recipient's MX hosts.

The alert must not depend on the local mail relay, so this is a tiny MTA: it talks
to the configured servers one after the other (or the MX hosts of the recipient's
domain in preference order, each of their addresses in turn) until one accepts the
message.  One deadline bounds everything, DNS included; each server still left gets
an equal share of the remaining time, so one that hangs cannot starve the fallback.
Every refusal is kept so the final error says what each server answered.
"""

from __future__ import annotations

import re
import smtplib
import socket
from email.message import EmailMessage
from typing import Any, NamedTuple

from check_smtp_verbs.core.deadline import (
    Deadline,
    DeadlineExceeded,
    DeadlineSocket,
    clock,
    connect,
    resolve,
)
from check_smtp_verbs.notify.settings import Auth, Server, TlsPolicy

_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


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


class _Client(smtplib.SMTP):
    """smtplib on deadline-bounded sockets, plain and TLS alike."""

    def __init__(self, helo: str, deadline: Deadline, address: tuple[Any, ...] | None) -> None:
        super().__init__(local_hostname=helo)  # no getfqdn(): it can hang on DNS
        self.deadline = deadline
        self.address = address  # an already resolved address (MX), or None to resolve
        self.stage = "the connection"

    def _get_socket(self, host: str, port: int, timeout: object) -> DeadlineSocket:
        sock = self._connect(host, port)
        self.stage = "the banner"
        return sock

    def _connect(self, host: str, port: int) -> DeadlineSocket:
        if self.address is not None:
            return connect(self.address, self.deadline)
        error: OSError | None = None
        for address in resolve(host, port, 0, self.deadline):
            try:
                return connect(address, self.deadline)
            except OSError as exc:
                error = exc
        raise error or OSError(f"no address for {host}")

    def _before_io(self) -> None:
        # After STARTTLS self.sock is an SSLSocket, which does not use DeadlineSocket's
        # bounded recv; bound its every operation here instead.
        if self.sock is not None and not isinstance(self.sock, DeadlineSocket):
            self.sock.settimeout(self.deadline.remaining())

    def send(self, s: Any) -> None:
        self._before_io()
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        self._before_io()
        try:
            return super().getreply()
        except socket.timeout:
            raise DeadlineExceeded from None
        except smtplib.SMTPServerDisconnected:
            # smtplib reports a read timeout as a disconnect; say which it was.
            if self.deadline.end - clock() < 0.05:
                raise DeadlineExceeded from None
            raise


def _login(client: _Client, auth: Auth) -> None:
    """One attempt with the best mechanism offered.

    smtplib's login() tries every mechanism in turn after a refusal, which turns one
    wrong password into several failed logins (and a lockout sooner).
    """
    offered = client.esmtp_features.get("auth", "").upper().split()
    client.user, client.password = auth.user, auth.password
    for mechanism, method in (
        ("PLAIN", client.auth_plain),
        ("LOGIN", client.auth_login),
        ("CRAM-MD5", client.auth_cram_md5),
    ):
        if mechanism in offered:
            try:
                code, text = client.auth(mechanism, method)
            except smtplib.SMTPAuthenticationError as exc:
                raise _Refused(f"AUTH answered {_reply(exc.smtp_code, exc.smtp_error)}") from None
            if code not in (235, 503):
                raise _Refused(f"AUTH answered {_reply(code, text)}")
            return
    raise _Refused(f"no AUTH mechanism this program knows: {' '.join(offered) or 'none'}")


def _reply(code: int, message: bytes) -> str:
    text = message.decode("utf-8", "backslashreplace").replace("\n", " ")
    return f"{code} {text}"[:200]


def _expect(stage: str, result: tuple[int, bytes], ok: range) -> str:
    code, message = result
    if code not in ok:
        raise _Refused(f"{stage} answered {_reply(code, message)}")
    return _reply(code, message)


def _tls_context(policy: TlsPolicy) -> Any:
    import ssl  # only deliveries that use TLS pay for the import

    if policy.require:
        return ssl.create_default_context(cafile=policy.cafile)
    # Opportunistic TLS as MTAs do it: encrypt against eavesdroppers, accept any
    # certificate, because refusing would mean sending the alert in clear text instead.
    context = ssl.create_default_context(cafile=policy.cafile)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _session(client: _Client, server: Server, letter: Letter) -> Delivered:
    message, sender, recipient, _, policy, auth = letter
    client._host = server.host  # STARTTLS checks the certificate against this name
    client.stage = "the connection"
    code, banner = client.connect(server.host, server.port)
    if code != 220:
        raise _Refused(f"banner {_reply(code, banner)}")
    client.stage = "the EHLO reply"
    code, text = client.ehlo()
    if code in (500, 502):  # an old gateway without ESMTP: HELO, and no STARTTLS
        client.stage = "the HELO reply"
        _expect("HELO", client.helo(), range(250, 251))
    elif code != 250:
        raise _Refused(f"EHLO answered {_reply(code, text)}")
    tls = False
    if not policy.disable and client.has_extn("starttls"):
        client.stage = "the STARTTLS handshake"
        try:
            client.starttls(context=_tls_context(policy))
            tls = True
        except smtplib.SMTPResponseException as exc:
            if policy.require:
                raise _Refused(
                    f"STARTTLS answered {_reply(exc.smtp_code, exc.smtp_error)}"
                ) from None
            # Refused before any TLS byte: the session goes on in plain text, as MTAs do.
        if tls:
            client.stage = "the EHLO reply after STARTTLS"
            _expect("EHLO after STARTTLS", client.ehlo(), range(250, 251))
    elif policy.require:
        raise _Refused("STARTTLS not offered (--require-tls)")
    if auth is not None:
        if not tls:
            raise _Refused("will not send the password: no TLS")
        if not client.has_extn("auth"):
            raise _Refused("AUTH not offered")
        client.stage = "the AUTH reply"
        _login(client, auth)
    client.stage = "the MAIL reply"
    _expect("MAIL FROM", client.mail(sender), range(250, 252))
    client.stage = "the RCPT reply"
    _expect("RCPT TO", client.rcpt(recipient), range(250, 252))
    client.stage = "the DATA reply"
    code, text = client.docmd("DATA")
    if code != 354:
        raise _Refused(f"DATA answered {_reply(code, text)}")
    client.stage = "the reply to the message"
    wire = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    data = _LEADING_DOT.sub(b"..", wire)  # RFC 5321 4.5.2 dot-stuffing
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    client.send(data + b".\r\n")
    accepted = _expect("the message", client.getreply(), range(250, 251))
    return Delivered(str(server), accepted.partition(" ")[2], tls)


class _TlsFailed(_Refused):
    """The TLS handshake itself failed, so the connection is gone."""


def try_server(
    server: Server, address: tuple[Any, ...] | None, letter: Letter, deadline: Deadline
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
    server: Server, address: tuple[Any, ...] | None, letter: Letter, deadline: Deadline
) -> Delivered:
    client = _Client(letter.helo, deadline, address)
    accepted = False
    try:
        delivered = _session(client, server, letter)
        accepted = True
        return delivered
    except DeadlineExceeded:
        raise _Refused(
            f"timeout after {round(deadline.seconds, 1):g}s waiting for {client.stage}"
        ) from None
    except smtplib.SMTPServerDisconnected:
        raise _Refused(f"connection closed while waiting for {client.stage}") from None
    except smtplib.SMTPException as exc:
        raise _Refused(f"SMTP error at {client.stage}: {exc}") from None
    except OSError as exc:  # refused, unreachable, reset, TLS failures (ssl.SSLError)
        why = exc.strerror or str(exc)
        if client.stage == "the connection":
            raise _Refused(f"cannot connect: {why}") from None
        if client.stage == "the STARTTLS handshake" and not letter.policy.require:
            raise _TlsFailed(f"{why} at {client.stage}") from None
        raise _Refused(f"{why} at {client.stage}") from None
    finally:
        _quit(client, accepted)


def _quit(client: _Client, polite: bool) -> None:
    """QUIT after success; after a failure just hang up - the reason is already known."""
    try:
        if polite and client.sock is not None:
            client.docmd("QUIT")
    except (DeadlineExceeded, OSError, smtplib.SMTPException):
        pass
    finally:
        client.close()


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


class MxHost(NamedTuple):
    preference: int
    name: str
    addresses: tuple[str, ...]


def mx_hosts(
    domain: str, resolver_address: tuple[str, int] | None, deadline: Deadline
) -> list[MxHost]:
    """The MX hosts of ``domain`` in preference order, with their addresses.

    Without MX records the domain itself is the mail host (RFC 5321 5.1); a null
    MX (RFC 7505) means the domain takes no mail.  dnspython is imported here only.
    """
    import dns.exception
    import dns.resolver

    if resolver_address is None:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [resolver_address[0]]
        resolver.port = resolver_address[1]

    def query(name: str, kind: str) -> list[Any]:
        try:
            answer = resolver.resolve(name, kind, lifetime=deadline.remaining(), search=False)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            if kind == "MX":
                raise
            return []
        return list(answer)

    try:
        try:
            records = query(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise DeliveryFailed(f"the recipient domain {domain} does not exist in DNS") from None
        except dns.resolver.NoAnswer:
            records = []
        if not records:
            hosts = [(0, domain)]
        else:
            hosts = sorted(
                (int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in records
            )
            if len(hosts) == 1 and hosts[0][1] in ("", "."):
                raise DeliveryFailed(f"{domain} publishes a null MX: it accepts no mail")
        result = []
        for preference, name in hosts:
            found = [r.address for kind in ("A", "AAAA") for r in query(name, kind)]
            result.append(MxHost(preference, name, tuple(found)))
        return result
    except DeadlineExceeded:
        raise DeliveryFailed(
            f"timeout after {round(deadline.seconds, 1):g}s looking up the MX of {domain}"
        ) from None
    except dns.exception.Timeout:
        raise DeliveryFailed(f"DNS timeout looking up the MX of {domain}") from None
    except dns.exception.DNSException as exc:
        raise DeliveryFailed(f"DNS error looking up the MX of {domain}: {exc}") from None


def deliver_to_mx(
    recipient_domain: str,
    port: int,
    resolver_address: tuple[str, int] | None,
    letter: Letter,
    deadline: Deadline,
) -> Delivered:
    """Deliver to the MX hosts of the recipient's domain, falling through on refusal."""
    hosts = mx_hosts(recipient_domain, resolver_address, deadline)
    reasons: list[str] = []
    for index, host in enumerate(hosts):
        if not host.addresses:
            reasons.append(f"{host.name}: no address in DNS")
            continue
        for ip in host.addresses:
            share = _share(deadline, len(hosts) - index)
            if share is None:
                reasons.append(f"{host.name}: not tried, no time left")
                raise DeliveryFailed("; ".join(reasons))
            address = _sockaddr(ip, port)
            server = Server(host.name, port)
            try:
                delivered = try_server(server, address, letter, share)
                return delivered._replace(server=f"{host.name}[{ip}]:{port}")
            except _Refused as exc:
                reasons.append(f"{host.name}[{ip}]:{port}: {exc}")
    raise DeliveryFailed("; ".join(reasons) or f"no MX host for {recipient_domain}")


def _sockaddr(ip: str, port: int) -> tuple[Any, ...]:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sockaddr: tuple[Any, ...] = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)
