"""The round trip as the check runs it, synchronous and asynchronous, against a real Dovecot."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.roundtrip.connection import client_context
from check_smtp_verbs.roundtrip.trip import Mailbox, asynchronous, synchronous
from check_smtp_verbs.roundtrip.url import parse
from tests.dovecot import PROBE_USER, USERS, PrivateDovecot
from tests.test_roundtrip_mailbox import mailbox, probe_message  # noqa: F401 (fixture)

HOUR = 3600.0


def box(dovecot: PrivateDovecot, scheme: str = "imaps", password: str | None = None) -> Mailbox:
    return Mailbox(
        parse(dovecot.url(scheme), scheme.rstrip("s")),
        PROBE_USER,
        USERS[PROBE_USER] if password is None else password,
    )


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_synchronous_delivery_is_timed_from_the_end_of_data(mailbox, scheme):  # noqa: F811
    raw, message_id = probe_message()
    sent = clock()
    timer = threading.Timer(0.5, lambda: mailbox.deliver(raw))
    timer.start()
    trip = synchronous(
        box(mailbox, scheme),
        message_id,
        sent,
        Deadline(8),
        client_context(str(mailbox.ca_file)),
        Transcript(),
    )
    timer.join()
    assert trip.found and trip.error is None
    assert trip.delivery is not None and 0.5 < trip.delivery < 2.5
    assert trip.method == ("IDLE" if scheme == "imaps" else "polling")
    assert trip.waited >= trip.delivery


def test_synchronous_probe_that_never_comes_is_not_found_after_the_wait(mailbox):  # noqa: F811
    _, message_id = probe_message()
    sent = clock()
    trip = synchronous(
        box(mailbox),
        message_id,
        sent,
        Deadline(1.5),
        client_context(str(mailbox.ca_file)),
        Transcript(),
    )
    assert not trip.found and trip.error is None and trip.delivery is None
    assert 1.0 < trip.waited < 1.5


def test_synchronous_login_failure_is_the_mailbox_error_not_an_exception(mailbox):  # noqa: F811
    transcript = Transcript()
    trip = synchronous(
        box(mailbox, password="not-it"),
        "<x@y>",
        clock(),
        Deadline(5),
        client_context(str(mailbox.ca_file)),
        transcript,
    )
    assert trip.error is not None and trip.error.stage == "login"
    assert not trip.found


def test_asynchronous_runs_count_pending_found_and_lost_probes(mailbox, tmp_path):  # noqa: F811
    """One story over five runs and two hours of (told) time."""
    state = tmp_path / "roundtrip.json"
    context = client_context(str(mailbox.ca_file))
    start = float(int(time.time()))

    def run(message_id, sent, now):
        return asynchronous(
            box(mailbox), state, HOUR, message_id, sent, Deadline(5), context, Transcript(), now
        )

    a, b, c, d = (probe_message() for _ in range(4))
    first = run(a[1], start, start)
    assert (first.pending, first.lost, first.delivery, first.found) == (1, 0, None, False)

    mailbox.deliver(a[0])
    second = run(b[1], start + 1, start + 2)
    assert (second.pending, second.lost) == (1, 0)  # a found, b pending
    assert second.delivery is not None and second.delivery < 3  # whole seconds

    third = run(c[1], start + 3650, start + 3700)  # b was sent over an hour ago
    assert (third.pending, third.lost) == (1, 1)

    mailbox.deliver(b[0])
    fourth = run(d[1], start + 3700, start + 3710)
    assert fourth.late == (b[1],)
    assert (fourth.pending, fourth.lost) == (2, 1)  # late, but lost all the same

    fifth = run(probe_message()[1], start + 7300, start + 7301)  # an hour after b was lost
    assert (fifth.pending, fifth.lost) == (1, 2)  # b forgotten; c and d lost now
    assert mailbox.maildir_messages() == []  # every probe that came was deleted


def test_asynchronous_with_a_corrupt_state_file_says_so_and_goes_on(mailbox, tmp_path):  # noqa: F811
    state = tmp_path / "roundtrip.json"
    state.write_text("{garbage")
    _, message_id = probe_message()
    trip = asynchronous(
        box(mailbox),
        state,
        HOUR,
        message_id,
        time.time(),
        Deadline(5),
        client_context(str(mailbox.ca_file)),
        Transcript(),
    )
    assert trip.store_problem is not None and "is corrupt" in trip.store_problem
    assert trip.pending == 1 and trip.lost == 0


def test_asynchronous_with_the_mailbox_down_still_counts_the_probes(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    mailbox_down = Mailbox(parse(f"imaps://127.0.0.1:{port}", "imap"), "u", "p")
    state = tmp_path / "roundtrip.json"
    now = time.time()
    for offset in (0, 1):
        trip = asynchronous(
            mailbox_down,
            state,
            HOUR,
            f"<{offset}@x>",
            now + offset,
            Deadline(5),
            client_context(),
            Transcript(),
            now + offset,
        )
    assert trip.error is not None and trip.error.stage == "connect"
    assert trip.pending == 2
