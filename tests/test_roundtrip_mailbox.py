"""The mailbox side of the round trip, against a real Dovecot over loopback TCP.

Messages are put into the mailbox over Dovecot's LMTP, as an MTA would (the chain
through Postfix is in test_roundtrip_postfix.py); what the check deleted or left is
read from the Maildir on disk, not through the client under test.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.message import build
from check_smtp_verbs.roundtrip import imap, pop3
from check_smtp_verbs.roundtrip.connection import MailboxFailed, Report, client_context
from check_smtp_verbs.roundtrip.url import parse
from tests.dovecot import (
    NO_IDLE_HOST,
    NO_TLS_HOST,
    NO_UIDPLUS_HOST,
    OTHER_USER,
    PROBE_USER,
    UNICODE_SECRET,
    UNICODE_USER,
    USERS,
    PrivateDovecot,
)

ALL_SCHEMES = ["imap", "imaps", "pop3", "pop3s"]


def probe_message(recipient: str = PROBE_USER) -> tuple[bytes, str]:
    """A probe exactly as the check sends it (message.build), as the mailbox stores it."""
    probe = build("probe@verbs.test", (recipient,), "check_smtp_verbs probe", "client.test")
    raw = probe.data[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
    return raw, probe.message_id


def plain_message(message_id: str, probe_header: bool = False) -> bytes:
    return (
        f"From: someone@example.net\r\nSubject: not a probe\r\nMessage-ID: {message_id}\r\n"
        + ("X-Check-SMTP-Verbs: probe\r\n" if probe_header else "")
        + "\r\nKeep me.\r\n"
    ).encode()


@pytest.fixture
def mailbox(dovecot: PrivateDovecot) -> Iterator[PrivateDovecot]:
    """The session's Dovecot with empty mailboxes before and after the test."""
    for user in USERS:
        dovecot.empty(user)
    yield dovecot
    for user in USERS:
        dovecot.empty(user)


def visit(
    dovecot: PrivateDovecot,
    scheme: str,
    wanted: set[str],
    *,
    seconds: float = 5.0,
    host: str | None = None,
    user: str = PROBE_USER,
    password: str | None = None,
    context: ssl.SSLContext | None = None,
    transcript: Transcript | None = None,
    **options: object,
) -> Report:
    url = parse(dovecot.url(scheme, host), scheme.rstrip("s"))
    client = imap if url.protocol == "imap" else pop3
    return client.visit(
        url,
        user,
        USERS[user] if password is None else password,
        wanted,
        Deadline(seconds),
        transcript if transcript is not None else Transcript(),
        context or client_context(str(dovecot.ca_file)),
        **options,  # type: ignore[arg-type]
    )


def later(seconds: float, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in ``seconds`` from now, while the check waits."""
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_a_probe_already_in_the_mailbox_is_found_and_deleted(mailbox, scheme):
    raw, message_id = probe_message()
    mailbox.deliver(raw)
    report = visit(mailbox, scheme, {message_id})
    assert list(report.found) == [message_id]
    assert report.found[message_id].deleted
    assert mailbox.maildir_messages() == []


@pytest.mark.parametrize("scheme", ["imap", "imaps"])
def test_imap_waits_with_idle_and_sees_the_probe_when_the_server_announces_it(mailbox, scheme):
    raw, message_id = probe_message()
    transcript = Transcript()
    started = clock()
    timer = later(0.5, lambda: mailbox.deliver(raw))
    report = visit(mailbox, scheme, {message_id}, transcript=transcript)
    timer.join()
    assert report.method == "IDLE"
    seen = report.found[message_id].seen - started
    # Dovecot batches its IDLE notifications for half a second; no polling interval adds to it
    assert 0.5 < seen < 1.6
    sent = [entry.text.split(" ", 1)[-1] for entry in transcript.entries if entry.direction == "C"]
    assert "IDLE" in sent and "DONE" in sent
    assert "NOOP" not in sent
    assert mailbox.maildir_messages() == []


def test_imap_without_idle_is_polled_with_back_off(mailbox):
    raw, message_id = probe_message()
    transcript = Transcript()
    started = clock()
    timer = later(1.0, lambda: mailbox.deliver(raw))
    report = visit(mailbox, "imap", {message_id}, host=NO_IDLE_HOST, transcript=transcript)
    timer.join()
    assert report.method == "polling"
    sent = [entry.text.split(" ", 1)[-1] for entry in transcript.entries if entry.direction == "C"]
    assert "IDLE" not in sent
    # looks at 0, 0.25, 0.75, 1.75 s: found at the first look after delivery, not later
    assert sent.count("NOOP") == 3
    assert 1.0 < report.found[message_id].seen - started < 2.5
    assert mailbox.maildir_messages() == []


@pytest.mark.parametrize("scheme", ["pop3", "pop3s"])
def test_pop3_looks_again_in_new_sessions_until_the_probe_arrives(mailbox, scheme):
    raw, message_id = probe_message()
    transcript = Transcript()
    started = clock()
    timer = later(1.0, lambda: mailbox.deliver(raw))
    report = visit(mailbox, scheme, {message_id}, transcript=transcript)
    timer.join()
    assert report.method == "polling"
    sessions = [entry for entry in transcript.entries if entry.text.startswith("USER ")]
    assert len(sessions) == 4  # looks at 0, 0.25, 0.75 and 1.75 s
    assert 1.0 < report.found[message_id].seen - started < 2.5
    assert mailbox.maildir_messages() == []


@pytest.mark.parametrize(
    ("scheme", "host"),
    [("imap", None), ("imap", NO_IDLE_HOST), ("imap", NO_UIDPLUS_HOST), ("pop3", None)],
    ids=["imap-idle", "imap-polling", "imap-without-uidplus", "pop3"],
)
def test_look_alike_messages_are_never_touched(mailbox, scheme, host):
    raw, message_id = probe_message()
    same_id_without_header = plain_message(message_id)
    header_with_another_id = plain_message("<someone-elses-probe@example.net>", probe_header=True)
    mailbox.deliver(same_id_without_header)
    mailbox.deliver(header_with_another_id)
    mailbox.deliver(raw)
    report = visit(mailbox, scheme, {message_id}, host=host)
    assert list(report.found) == [message_id]
    assert report.notes == ()
    left = mailbox.maildir_messages()
    assert len(left) == 2
    assert any(message_id.encode() in message and b"Keep me." in message for message in left)
    assert any(b"someone-elses-probe" in message for message in left)
    assert not any(b"It can be discarded." in message for message in left)  # the probe's body


def test_without_uidplus_a_message_another_client_flagged_deleted_is_not_expunged(mailbox):
    """A plain EXPUNGE would remove it with the probe: the probe is only flagged."""
    flagged = plain_message("<flagged-by-someone-else@example.net>")
    mailbox.deliver(flagged)
    other = imaplib.IMAP4_SSL(  # another mail client, not the check
        mailbox.host,
        mailbox.ports.imaps,
        ssl_context=ssl.create_default_context(cafile=mailbox.ca_file),
    )
    other.login(PROBE_USER, USERS[PROBE_USER])
    other.select("INBOX")
    other.store("1", "+FLAGS", r"(\Deleted)")
    raw, message_id = probe_message()
    mailbox.deliver(raw)
    report = visit(mailbox, "imap", {message_id}, host=NO_UIDPLUS_HOST)
    other.logout()
    assert list(report.found) == [message_id]
    assert not report.found[message_id].deleted
    assert "left flagged \\Deleted" in report.notes[0]
    assert len(mailbox.maildir_messages()) == 2  # nothing expunged


def test_several_probes_are_collected_in_one_look_without_waiting(mailbox):
    """The asynchronous mode: earlier probes are picked up, the missing one not waited for."""
    first, first_id = probe_message()
    second, second_id = probe_message()
    _, never_id = probe_message()
    mailbox.deliver(first)
    mailbox.deliver(second)
    started = clock()
    report = visit(mailbox, "imaps", {first_id, second_id, never_id}, wait=False)
    assert clock() - started < 1.0
    assert set(report.found) == {first_id, second_id}
    assert report.method == "no wait"
    arrived = report.found[first_id].arrived
    assert arrived is not None and abs(arrived - time.time()) < 5  # INTERNALDATE, whole seconds
    assert mailbox.maildir_messages() == []


def test_pop3_takes_the_arrival_time_from_the_last_received_field(mailbox):
    raw, message_id = probe_message()
    mailbox.deliver(raw)
    report = visit(mailbox, "pop3s", {message_id}, wait=False)
    arrived = report.found[message_id].arrived
    assert arrived is not None and abs(arrived - time.time()) < 5


@pytest.mark.parametrize(
    ("scheme", "host"),
    [("imaps", None), ("imap", NO_IDLE_HOST), ("pop3s", None)],
    ids=["idle", "polling", "pop3"],
)
def test_a_probe_that_never_comes_is_missing_once_the_deadline_is_near(mailbox, scheme, host):
    _, message_id = probe_message()
    started = clock()
    report = visit(mailbox, scheme, {message_id}, seconds=2.0, host=host)
    elapsed = clock() - started
    assert report.found == {}
    assert 1.5 < elapsed < 2.0  # stopped waiting in time to log out within the deadline


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_a_wrong_password_is_a_login_failure_that_never_shows_the_password(mailbox, scheme):
    transcript = Transcript()
    wrong = "Wrong-Pass\u20ac-42"
    with pytest.raises(MailboxFailed) as failure:
        visit(mailbox, scheme, {"<x@y>"}, password=wrong, transcript=transcript)
    assert failure.value.stage == "login"
    assert str(failure.value).startswith(f"mailbox login failed for {PROBE_USER}: ")
    assert "Authentication failed" in str(failure.value)
    lines = [entry.text for entry in transcript.entries]
    assert not any(wrong in line for line in lines)


@pytest.mark.parametrize("scheme", ["imap", "imaps", "pop3", "pop3s"])
def test_no_transcript_line_holds_the_password_in_any_encoding(mailbox, scheme):
    import base64

    transcript = Transcript()
    raw, message_id = probe_message(UNICODE_USER)
    mailbox.deliver(raw, user=UNICODE_USER)
    report = visit(mailbox, scheme, {message_id}, user=UNICODE_USER, transcript=transcript)
    assert message_id in report.found
    text = "\n".join(entry.text for entry in transcript.entries)
    secret = UNICODE_SECRET.encode()
    assert UNICODE_SECRET not in text
    pieces = {secret[i : i + 4] for i in range(len(secret) - 3)}
    for word in text.replace("\n", " ").split():
        for start in range(4):
            chunk = word[start:].rstrip("=")
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                decoded = base64.b64decode(chunk, validate=True)
            except ValueError:
                continue
            assert not any(piece in decoded for piece in pieces), word
    assert "<redacted>" in text


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_a_mailbox_server_that_is_down_is_a_connect_failure(scheme):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = parse(f"{scheme}://127.0.0.1:{port}", scheme.rstrip("s"))
    client = imap if url.protocol == "imap" else pop3
    with pytest.raises(MailboxFailed) as failure:
        client.visit(url, "u", "p", {"<x@y>"}, Deadline(5), Transcript(), client_context())
    assert failure.value.stage == "connect"
    assert str(failure.value) == f"cannot connect to the mailbox {url}: Connection refused"


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_a_silent_server_costs_no_more_than_the_deadline(scheme):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = parse(f"{scheme}://127.0.0.1:{silent.getsockname()[1]}", scheme.rstrip("s"))
        client = imap if url.protocol == "imap" else pop3
        started = clock()
        with pytest.raises(MailboxFailed) as failure:
            client.visit(url, "u", "p", {"<x@y>"}, Deadline(1.0), Transcript(), client_context())
        assert clock() - started < 1.3
    assert failure.value.timed_out


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_a_certificate_from_an_unknown_ca_is_a_tls_failure(mailbox, certs, scheme, tmp_path):
    stranger = tmp_path / "stranger.pem"
    certs.stranger.cert_pem.write_to_path(str(stranger))
    with pytest.raises(MailboxFailed) as failure:
        visit(mailbox, scheme, {"<x@y>"}, context=client_context(str(stranger)))
    assert failure.value.stage == "tls"
    assert "mailbox certificate verify failed: unable to get local issuer certificate" in str(
        failure.value
    )


def test_the_certificate_must_name_the_mailbox_host(mailbox):
    with pytest.raises(MailboxFailed) as failure:
        visit(mailbox, "imaps", {"<x@y>"}, server_name="imap.elsewhere.test")
    assert str(failure.value) == (
        "mailbox certificate verify failed: name mismatch: "
        "the certificate is not valid for imap.elsewhere.test"
    )


def test_insecure_accepts_any_certificate(mailbox, tmp_path):
    raw, message_id = probe_message()
    mailbox.deliver(raw)
    report = visit(mailbox, "imaps", {message_id}, context=client_context(insecure=True))
    assert message_id in report.found


def test_a_folder_that_does_not_exist_is_a_folder_failure(mailbox):
    with pytest.raises(MailboxFailed) as failure:
        visit(mailbox, "imaps", {"<x@y>"}, folder="Probes")
    assert failure.value.stage == "folder"
    assert str(failure.value).startswith("cannot select the folder Probes: ")


def test_another_users_mailbox_is_not_looked_at(mailbox):
    raw, message_id = probe_message(OTHER_USER)
    mailbox.deliver(raw, user=OTHER_USER)
    report = visit(mailbox, "imaps", {message_id}, wait=False)
    assert report.found == {}
    assert len(mailbox.maildir_messages(OTHER_USER)) == 1


@pytest.mark.parametrize(
    ("folder", "wire"),
    [
        ("INBOX", '"INBOX"'),
        ("Probes/Round trip", '"Probes/Round trip"'),
        ('say "hi" \\', '"say \\"hi\\" \\\\"'),
        ("Entwürfe", '"Entw&APw-rfe"'),
        ("A&B", '"A&-B"'),
        ("日本語", '"&ZeVnLIqe-"'),
    ],
)
def test_folder_names_go_on_the_wire_quoted_in_modified_utf7(folder, wire):
    assert imap.mailbox_name(folder) == wire


@pytest.mark.parametrize("scheme", ["imap", "pop3"])
def test_a_server_without_starttls_gets_no_password_unless_told_tls_is_optional(mailbox, scheme):
    transcript = Transcript()
    with pytest.raises(MailboxFailed) as failure:
        visit(mailbox, scheme, {"<x@y>"}, host=NO_TLS_HOST, transcript=transcript)
    assert failure.value.stage == "tls"
    assert "does not offer " in str(failure.value)
    assert not any(
        entry.text.startswith(("USER", "PASS"))
        or " LOGIN " in entry.text
        or "AUTHENTICATE" in entry.text
        for entry in transcript.entries
    )
    raw, message_id = probe_message()
    mailbox.deliver(raw)
    report = visit(mailbox, scheme, {message_id}, host=NO_TLS_HOST, starttls="optional")
    assert message_id in report.found


@pytest.mark.parametrize("scheme", ["imap", "pop3"])
def test_an_smtp_server_where_the_mailbox_should_be_is_a_one_line_failure(smtp_server, scheme):
    server = smtp_server()
    url = parse(f"{scheme}://{server.host}:{server.port}", scheme)
    client = imap if scheme == "imap" else pop3
    with pytest.raises(MailboxFailed) as failure:
        client.visit(url, "u", "p", {"<x@y>"}, Deadline(5), Transcript(), client_context())
    assert failure.value.stage == "connect"
    assert str(failure.value) == (
        f"no {scheme.upper()} greeting from {url}: 220 smtpd.test ESMTP test server"
    )


def test_the_header_looked_for_is_the_one_the_probe_carries():
    from check_smtp_verbs import message
    from check_smtp_verbs.roundtrip import waiting

    assert waiting.PROBE_HEADER == message.PROBE_HEADER
    raw, message_id = probe_message()
    assert waiting.probe_id(raw, {message_id}) == message_id


class LoginOnlyImapServer:
    """A scripted IMAP server on loopback that offers LOGIN and no AUTH=PLAIN (as some
    servers do), records what it received, and accepts one password.  It advertises
    IDLE but answers it BAD, as a server behind a proxy that does not pass IDLE does."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.received: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection, connection.makefile("rwb") as stream:
            stream.write(b"* OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] scripted ready\r\n")
            stream.flush()
            for line in stream:
                self.received.append(line)
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                command = rest.split(b" ", 1)[0].upper()
                if command == b"CAPABILITY":
                    reply = b"* CAPABILITY IMAP4rev1 IDLE UIDPLUS\r\n" + tag + b" OK done\r\n"
                elif command == b"LOGIN":
                    quoted = '"' + self.password.replace("\\", "\\\\").replace('"', '\\"') + '"'
                    ok = rest.endswith(b" " + quoted.encode())
                    reply = tag + (
                        b" OK logged in\r\n" if ok else b" NO [AUTHENTICATIONFAILED] no\r\n"
                    )
                elif command == b"SELECT":
                    reply = b"* 0 EXISTS\r\n" + tag + b" OK [READ-WRITE] selected\r\n"
                elif command == b"UID":
                    reply = b"* SEARCH\r\n" + tag + b" OK searched\r\n"
                elif command == b"NOOP":
                    reply = tag + b" OK noop\r\n"
                elif command == b"LOGOUT":
                    stream.write(b"* BYE bye\r\n" + tag + b" OK logged out\r\n")
                    stream.flush()
                    return
                else:
                    reply = tag + b" BAD unknown\r\n"
                stream.write(reply)
                stream.flush()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.mark.parametrize("accepted", [True, False], ids=["accepted", "refused"])
def test_login_without_auth_plain_is_quoted_and_never_recorded(accepted):
    password = 'p"a\\ss-w0rd'
    server = LoginOnlyImapServer(password)
    transcript = Transcript()
    url = parse(f"imap://127.0.0.1:{server.port}", "imap")
    try:
        if accepted:
            report = imap.visit(
                url,
                "probe user",
                password,
                {"<x@y>"},
                Deadline(5),
                transcript,
                client_context(),
                starttls="optional",
                wait=False,
            )
            assert report.found == {}
        else:
            with pytest.raises(MailboxFailed) as failure:
                imap.visit(
                    url,
                    "probe user",
                    password + "x",
                    {"<x@y>"},
                    Deadline(5),
                    transcript,
                    client_context(),
                    starttls="optional",
                    wait=False,
                )
            assert failure.value.stage == "login"
    finally:
        server.close()
    logins = [line for line in server.received if b" LOGIN " in line]
    assert logins and logins[0].split(b" ", 2)[2].startswith(b'"probe user" "p\\"a\\\\ss')
    recorded = [entry.text for entry in transcript.entries if " LOGIN " in entry.text]
    assert recorded == [recorded[0].split(" LOGIN ")[0] + ' LOGIN "probe user" <redacted>']
    text = "\n".join(entry.text for entry in transcript.entries)
    assert "a\\\\ss" not in text and 'p"a' not in text and "w0rd" not in text


def test_login_cannot_carry_a_non_ascii_password_and_says_so():
    server = LoginOnlyImapServer("x")
    url = parse(f"imap://127.0.0.1:{server.port}", "imap")
    try:
        with pytest.raises(MailboxFailed) as failure:
            imap.visit(
                url,
                "probe",
                UNICODE_SECRET,
                {"<x@y>"},
                Deadline(5),
                Transcript(),
                client_context(),
                starttls="optional",
                wait=False,
            )
    finally:
        server.close()
    assert str(failure.value) == (
        "the IMAP server offers only LOGIN, which cannot carry a non-ASCII user name or password"
    )


def test_an_idle_advertised_then_refused_falls_back_to_polling_until_the_deadline():
    server = LoginOnlyImapServer("secret")
    url = parse(f"imap://127.0.0.1:{server.port}", "imap")
    try:
        report = imap.visit(
            url,
            "probe user",
            "secret",
            {"<never@example.net>"},
            Deadline(1.5),
            Transcript(),
            client_context(),
            starttls="optional",
        )
    finally:
        server.close()
    assert report.found == {}
    assert report.method == "polling"
    assert any("IDLE refused" in note for note in report.notes)
    sent = [line.split()[1].upper() for line in server.received if b" " in line]
    assert b"IDLE" in sent and b"NOOP" in sent  # tried IDLE once, then polled
