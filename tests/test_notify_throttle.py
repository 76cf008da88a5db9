"""The throttle's rules, with the clock in the test's hand.

The decision logic is tested in-process (any clock, no waiting); the same rules are
then proven end to end through the real command with the test-only clock variable:
20 services failing at once through a slow gateway, 50 processes racing for one key,
and the key lock held by the test itself to show who waits for whom.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from check_smtp_verbs.notify.macros import Notification
from check_smtp_verbs.notify.throttle import (
    Entry,
    StateFile,
    decide,
    key_for,
    record_sent,
    record_suppressed,
)
from tests.notifier import (
    ADDRESSED,
    T0,
    gateway,
    notify_env,
    parsed,
    problem,
    recovery,
    run_notify,
    sms_text,
    start_notify,
)

HOUR = 3600.0
TYPES = frozenset({"PROBLEM", "RECOVERY"})
PROBLEM = Notification("PROBLEM", "mx1", "smtp-verbs", "CRITICAL", "RCPT answered 451")
RECOVERY = Notification("RECOVERY", "mx1", "smtp-verbs", "OK", "all verbs fine")


def _sent(entry: Entry, notification: Notification, now: float) -> Entry:
    decision = decide(entry, notification, "k", now, HOUR, TYPES)
    assert decision.send, decision.reason
    return record_sent(entry, notification, now)


# --- the rules, in-process ---------------------------------------------------------


def test_first_problem_is_sent():
    decision = decide(Entry(), PROBLEM, "mx1/smtp-verbs", T0, HOUR, TYPES)
    assert decision.send
    assert decision.reason == "first PROBLEM for mx1/smtp-verbs"
    assert decision.note == ""


def test_problem_within_the_window_is_suppressed_and_counted():
    entry = _sent(Entry(), PROBLEM, T0)
    decision = decide(entry, PROBLEM, "mx1/smtp-verbs", T0 + HOUR - 1, HOUR, TYPES)
    assert not decision.send
    assert decision.reason.startswith("throttled: a PROBLEM for mx1/smtp-verbs was sent at 08:00")
    entry = record_suppressed(entry, PROBLEM, T0 + 600)
    entry = record_suppressed(entry, PROBLEM, T0 + 1200)
    assert (entry.suppressed, entry.suppressed_since) == (2, T0 + 600)


def test_problem_after_the_window_is_sent_and_says_how_many_were_suppressed_since_when():
    entry = _sent(Entry(), PROBLEM, T0)
    for minutes in (10, 20, 30):
        entry = record_suppressed(entry, PROBLEM, T0 + minutes * 60)
    decision = decide(entry, PROBLEM, "k", T0 + HOUR, HOUR, TYPES)
    assert decision.send
    assert decision.note == "3 suppressed since 08:10"
    after = record_sent(entry, PROBLEM, T0 + HOUR)
    assert (after.suppressed, after.suppressed_since, after.last_problem) == (0, None, T0 + HOUR)


def test_recovery_is_sent_only_after_a_delivered_problem():
    decision = decide(Entry(), RECOVERY, "mx1/smtp-verbs", T0, HOUR, TYPES)
    assert not decision.send
    assert "no PROBLEM was sent since the last recovery" in decision.reason
    entry = _sent(Entry(), PROBLEM, T0)
    assert decide(entry, RECOVERY, "k", T0 + 60, HOUR, TYPES).send  # not throttled
    entry = record_sent(entry, RECOVERY, T0 + 60)
    assert not decide(entry, RECOVERY, "k", T0 + 120, HOUR, TYPES).send  # no second all-clear


def test_recovery_carries_the_suppressed_count():
    entry = record_suppressed(_sent(Entry(), PROBLEM, T0), PROBLEM, T0 + 300)
    assert decide(entry, RECOVERY, "k", T0 + 900, HOUR, TYPES).note == "1 suppressed since 08:05"


def test_a_problem_after_a_delivered_recovery_is_sent_even_within_the_window():
    """Otherwise the phone's last word would be a stale all-clear."""
    entry = record_sent(_sent(Entry(), PROBLEM, T0), RECOVERY, T0 + 60)
    assert decide(entry, PROBLEM, "k", T0 + 120, HOUR, TYPES).send


def test_other_types_follow_types_and_are_not_throttled():
    ack = Notification("ACKNOWLEDGEMENT", "mx1", "smtp-verbs", "CRITICAL")
    entry = _sent(Entry(), PROBLEM, T0)
    assert not decide(entry, ack, "k", T0 + 1, HOUR, TYPES).send
    with_ack = TYPES | {"ACKNOWLEDGEMENT"}
    assert decide(entry, ack, "k", T0 + 1, HOUR, with_ack).send
    assert record_sent(entry, ack, T0 + 1) == entry
    downtime = Notification("DOWNTIMEEND", "mx1", "", "UP")
    assert decide(Entry(), downtime, "k", T0, HOUR, TYPES | {"DOWNTIME"}).send


def test_throttle_zero_sends_every_problem():
    entry = _sent(Entry(), PROBLEM, T0)
    assert decide(entry, PROBLEM, "k", T0 + 1, 0, TYPES).send


def test_a_clock_that_went_backwards_does_not_silence_alerts():
    entry = _sent(Entry(), PROBLEM, T0)
    assert decide(entry, PROBLEM, "k", T0 - 86400, HOUR, TYPES).send


def test_keys_per_service_per_host_and_global():
    other = PROBLEM._replace(service="imap")
    assert key_for(PROBLEM, "service") == "mx1/smtp-verbs"
    assert key_for(other, "service") == "mx1/imap"
    assert key_for(PROBLEM, "host") == key_for(other, "host") == "mx1"
    assert key_for(PROBLEM, "global") == key_for(other._replace(host="mx2"), "global")
    assert key_for(PROBLEM._replace(service=""), "service") == "mx1"


# --- escalation (issue 11 item 13) --------------------------------------------------

WARNING = PROBLEM._replace(state="WARNING")


def test_a_warning_that_becomes_critical_inside_the_window_is_sent_once():
    entry = _sent(Entry(), WARNING, T0)
    worse = decide(entry, PROBLEM, "mx1/smtp-verbs", T0 + 600, HOUR, TYPES)
    assert worse.send
    assert worse.reason == (
        "escalation: CRITICAL for mx1/smtp-verbs after the WARNING sent at 08:00, within 1h"
    )
    entry = record_sent(entry, PROBLEM, T0 + 600)
    assert entry.problem_state == "CRITICAL"
    assert not decide(entry, PROBLEM, "k", T0 + 900, HOUR, TYPES).send
    calmer = record_suppressed(entry, WARNING, T0 + 1000)  # back to WARNING: throttled
    assert not decide(entry, WARNING, "k", T0 + 1000, HOUR, TYPES).send
    assert not decide(calmer, PROBLEM, "k", T0 + 1200, HOUR, TYPES).send  # and again: no


def test_escalation_carries_the_suppressed_count():
    entry = record_suppressed(_sent(Entry(), WARNING, T0), WARNING, T0 + 300)
    assert decide(entry, PROBLEM, "k", T0 + 600, HOUR, TYPES).note == "1 suppressed since 08:05"


def test_no_escalation_throttles_a_worse_problem_like_any_other():
    entry = _sent(Entry(), WARNING, T0)
    decision = decide(entry, PROBLEM, "k", T0 + 600, HOUR, TYPES, escalation=False)
    assert not decision.send
    assert decision.reason.startswith("throttled: ")


@pytest.mark.parametrize(
    ("before", "after", "escalates"),
    [
        ("WARNING", "CRITICAL", True),
        ("UNKNOWN", "CRITICAL", True),
        ("UNREACHABLE", "DOWN", True),
        ("CRITICAL", "WARNING", False),
        ("CRITICAL", "CRITICAL", False),
        ("WARNING", "UNKNOWN", False),
        ("DOWN", "DOWN", False),
        ("", "CRITICAL", False),  # a PROBLEM without a state: nothing to compare
        ("WARNING", "WEIRD", False),  # a state this program does not rank
    ],
)
def test_which_state_changes_escalate(before, after, escalates):
    entry = _sent(Entry(), PROBLEM._replace(state=before), T0)
    assert decide(entry, PROBLEM._replace(state=after), "k", T0 + 60, HOUR, TYPES).send is escalates


def test_a_state_file_written_before_escalation_existed_does_not_escalate():
    """Its entries have no problem_state: which state was sent is unknown."""
    entry = Entry.from_json({"last_problem": T0, "problem_open": True})
    assert not decide(entry, PROBLEM, "k", T0 + 60, HOUR, TYPES).send


# --- the state file ----------------------------------------------------------------


def test_state_file_round_trips_and_is_created_with_its_directory(tmp_path: Path):
    store = StateFile(tmp_path / "new" / "dir" / "state.json")
    with store.locked(5):
        assert store.load() == ({}, "")
        store.save({"mx1/smtp-verbs": Entry(last_problem=T0, problem_open=True)})
    entries, problem_text = store.load()
    assert problem_text == ""
    assert entries == {"mx1/smtp-verbs": Entry(last_problem=T0, problem_open=True)}
    document = json.loads(store.path.read_text())
    assert document["version"] == 1
    assert document["keys"]["mx1/smtp-verbs"]["last_problem"] == T0


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"\xff\xfe", b"[]", b'{"keys": {"a": {"suppressed": -1}}}', b"{}"],
)
def test_a_corrupt_state_file_reads_as_empty_with_a_one_line_problem(tmp_path: Path, content):
    store = StateFile(tmp_path / "state.json")
    store.path.write_bytes(content)
    entries, problem_text = store.load()
    assert entries == {}
    assert problem_text.startswith(f"state file {store.path} is ")
    assert "starting afresh" in problem_text
    assert "\n" not in problem_text


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from check_smtp_verbs.notify.throttle import Entry, StateFile

    store = StateFile(Path(sys.argv[1]))
    entries = {f"host{n}/service": Entry(suppressed=n + 1) for n in range(3000)}
    while True:
        store.save(entries)
        print("saved", flush=True)
    """
)


def test_a_write_interrupted_by_sigkill_never_leaves_a_truncated_file(tmp_path: Path):
    path = tmp_path / "state.json"
    root = Path(__file__).resolve().parent.parent
    for saves in range(1, 6):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=root
        )
        assert writer.stdout is not None
        for _ in range(saves):
            assert writer.stdout.readline() == "saved\n"
        # The writer went straight on to the next save: this kill lands in it.
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        entries, problem_text = StateFile(path).load()
        assert problem_text == ""
        assert len(entries) == 3000
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".state.json.")]
    assert len(leftovers) <= 5  # a killed writer may leave its temp file, never a bad state file


# --- the same rules through the real command ---------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def _notify(server, home: Path, now: float, *macros: str, extra: tuple[str, ...] = ()):
    return run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(home / "s.json"),
        *extra,
        *macros,
        env=notify_env(home, now),
    )


def test_window_suppressed_count_and_recovery_end_to_end(smtp_server, home):
    server = smtp_server()
    first = _notify(server, home, T0, *problem())
    assert first.returncode == 0, first.stderr
    for minutes in (15, 30):
        again = _notify(server, home, T0 + minutes * 60, *problem())
        assert again.returncode == 0
        assert again.stdout.startswith("notify_sms_mail: not sent: throttled: a PROBLEM for ")
    assert len(server.messages) == 1
    later = _notify(server, home, T0 + HOUR + 1, *problem(output="still broken"))
    assert later.returncode == 0, later.stderr
    assert sms_text(server.messages[1]) == (
        "PROBLEM mx1/smtp-verbs CRITICAL (2 suppressed since 08:15): still broken"
    )
    fixed = _notify(server, home, T0 + HOUR + 120, *recovery())
    assert fixed.returncode == 0
    assert sms_text(server.messages[2]) == "RECOVERY mx1/smtp-verbs OK: SMTP_VERBS OK - all verbs"
    orphan = _notify(server, home, T0 + HOUR + 180, *recovery())
    assert orphan.returncode == 0
    assert "no RECOVERY needed" in orphan.stdout
    assert len(server.messages) == 3


def test_keys_are_separate_per_service_unless_told_otherwise(smtp_server, home):
    server = smtp_server()
    assert _notify(server, home, T0, *problem(service="smtp-verbs")).returncode == 0
    assert _notify(server, home, T0 + 1, *problem(service="imap")).returncode == 0
    assert _notify(server, home, T0 + 2, *problem(host="mx2")).returncode == 0
    assert len(server.messages) == 3
    host_key = ("--throttle-key", "host")
    global_key = ("--throttle-key", "global")
    assert _notify(server, home, T0, *problem(service="a"), extra=host_key).returncode == 0
    assert (
        "throttled" in _notify(server, home, T0 + 1, *problem(service="b"), extra=host_key).stdout
    )
    assert len(server.messages) == 4
    assert _notify(server, home, T0, *problem(host="h1"), extra=global_key).returncode == 0
    assert (
        "throttled" in _notify(server, home, T0 + 1, *problem(host="h2"), extra=global_key).stdout
    )
    assert len(server.messages) == 5


def test_twenty_services_failing_at_once_all_send_through_a_gateway_that_takes_seconds(
    smtp_server, home
):
    """A mass outage (issue 11 item 1): with one lock held across delivery, these
    queued 2 s each behind each other and half gave up waiting for the lock."""
    server = smtp_server(delays={"DOT": 2.0})
    args = [*ADDRESSED, *gateway(server), "--state-file", str(home / "s.json"), "-t", "8"]
    runs = [
        start_notify(*args, *problem(service=f"service{n}"), env=notify_env(home))
        for n in range(20)
    ]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0] * 20, results
    assert len(server.messages) == 20
    assert {sms_text(m).split()[1] for m in server.messages} == {
        f"mx1/service{n}" for n in range(20)
    }
    entries, problem_text = StateFile(home / "s.json").load()
    assert problem_text == ""
    assert sorted(entries) == sorted(f"mx1/service{n}" for n in range(20))


def test_fifty_concurrent_notifications_for_one_key_deliver_exactly_one(smtp_server, home):
    """The gateway takes a second, so the others arrive while the first is sending."""
    server = smtp_server(delays={"DOT": 1.0})
    args = [*ADDRESSED, *gateway(server), "--state-file", str(home / "s.json")]
    runs = [start_notify(*args, *problem(), env=notify_env(home)) for _ in range(50)]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0] * 50, results
    sent = [out for _, out, _ in results if "sent PROBLEM" in out and "not sent" not in out]
    assert len(sent) == 1
    assert len(server.messages) == 1
    entries, _ = StateFile(home / "s.json").load()
    assert entries["mx1/smtp-verbs"].suppressed == 49


def _blocked_on(lock_path: Path) -> bool:
    """Whether some process waits for the flock on ``lock_path`` (a "->" line in
    /proc/locks names the waiter and the file's inode)."""
    inode = f":{lock_path.stat().st_ino} "
    return any(
        "->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
    )


def test_a_run_that_waited_for_the_lock_sees_what_the_holder_sent_meanwhile(smtp_server, home):
    """A storm of notifications: this run is waiting for the lock while another one
    sends and records.  Its "now" is read under the lock, so the fresh record is
    inside the window (read before the lock, the record was "in the future" and
    a second message went out: 2 of 3 storms of 50 in the benchmarks)."""
    server = smtp_server()
    store = StateFile(home / "s.json")
    args = [*ADDRESSED, *gateway(server), "--state-file", str(store.path)]
    with store.locked(5):  # the other run, mid-send
        waiting = start_notify(*args, *problem(), env=notify_env(home))
        while not _blocked_on(store.lock_path):  # readiness: it is queued for the lock
            assert waiting.poll() is None, waiting.communicate()
        other = Entry(last_problem=time.time(), problem_open=True)
        store.save({"mx1/smtp-verbs": other})  # ... sent just now, and recorded
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "throttled" in out
    assert server.connections == 0


def test_a_run_for_another_key_does_not_wait_while_one_key_is_sending(smtp_server, home):
    server = smtp_server()
    store = StateFile(home / "s.json")
    with store, store.key_locked("mx1/smtp-verbs", 5):  # another run, mid-send for this key
        other = _notify(server, home, T0, *problem(host="mx2"), extra=("-t", "0.5"))
        assert other.returncode == 0, other.stderr
        assert len(server.messages) == 1
        assert other.seconds < 5
        same = _notify(server, home, T0, *problem(), extra=("-t", "0.5"))
    assert same.returncode == 1
    assert same.stderr == (
        f"notify_sms_mail: error: could not lock {store.lock_path} for mx1/smtp-verbs "
        "within 5.5s: another run is sending for it\n"
    )
    assert len(server.messages) == 1


def test_a_run_waiting_behind_a_sender_that_failed_sends_the_alert_itself(smtp_server, home):
    """The sender failed and recorded nothing: the run behind it must not count
    itself as suppressed, or the alert would be lost."""
    server = smtp_server()
    store = StateFile(home / "s.json")
    args = [*ADDRESSED, *gateway(server), "--state-file", str(store.path)]
    with store, store.key_locked("mx1/smtp-verbs", 5):  # a run sending for this key
        waiting = start_notify(*args, *problem(), env=notify_env(home))
        while not _blocked_on(store.lock_path):  # readiness: it is queued behind it
            assert waiting.poll() is None, waiting.communicate()
        assert server.connections == 0
    out, err = waiting.communicate(timeout=60)  # ... which failed and let go
    assert waiting.returncode == 0, err
    assert "sent PROBLEM for mx1/smtp-verbs" in out
    assert "(first PROBLEM for mx1/smtp-verbs)" in out
    assert len(server.messages) == 1


def test_a_run_waiting_behind_a_sender_that_succeeded_is_suppressed(smtp_server, home):
    server = smtp_server()
    store = StateFile(home / "s.json")
    args = [*ADDRESSED, *gateway(server), "--state-file", str(store.path)]
    with store, store.key_locked("mx1/smtp-verbs", 5):
        waiting = start_notify(*args, *problem(), env=notify_env(home))
        while not _blocked_on(store.lock_path):
            assert waiting.poll() is None, waiting.communicate()
        with store.locked(5):  # ... which sent and recorded, as _record does
            sent = Entry(last_problem=time.time(), problem_open=True, problem_state="CRITICAL")
            store.save({"mx1/smtp-verbs": sent})
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert out.startswith("notify_sms_mail: not sent: throttled: a PROBLEM for mx1/smtp-verbs")
    assert server.connections == 0
    assert StateFile(store.path).load()[0]["mx1/smtp-verbs"].suppressed == 1


def test_recording_keeps_what_other_keys_recorded_while_this_one_was_sending(smtp_server, home):
    """The file is read again under the store lock before writing: written from the
    copy read before sending, it would undo every record made meanwhile."""
    server = smtp_server(delays={"DOT": 2.0})
    store = StateFile(home / "s.json")
    args = [*ADDRESSED, *gateway(server), "--state-file", str(store.path)]
    slow = start_notify(*args, *problem(), env=notify_env(home))
    while "." not in server.received:  # it has decided, and is waiting for the gateway
        assert slow.poll() is None, slow.communicate()
    with store.locked(5):
        store.save({"mx9/imap": Entry(last_problem=T0, problem_open=True)})
    _, err = slow.communicate(timeout=60)
    assert slow.returncode == 0, err
    entries, _ = store.load()
    assert sorted(entries) == ["mx1/smtp-verbs", "mx9/imap"]


def test_a_warning_then_critical_sends_two_messages_unless_no_escalation(smtp_server, home):
    server = smtp_server()
    assert _notify(server, home, T0, *problem(state="WARNING")).returncode == 0
    worse = _notify(server, home, T0 + 300, *problem())
    assert worse.returncode == 0
    assert (
        "(escalation: CRITICAL for mx1/smtp-verbs after the WARNING sent at 08:00" in worse.stdout
    )
    assert "throttled" in _notify(server, home, T0 + 600, *problem()).stdout
    assert [parsed(m)["Subject"] for m in server.messages] == [
        "PROBLEM mx1/smtp-verbs WARNING",
        "PROBLEM mx1/smtp-verbs CRITICAL",
    ]
    quiet = ("--no-escalation", "--state-file", str(home / "other.json"))
    assert _notify(server, home, T0, *problem(state="WARNING"), extra=quiet).returncode == 0
    assert "throttled" in _notify(server, home, T0 + 300, *problem(), extra=quiet).stdout
    assert len(server.messages) == 3


def test_gateway_text_in_the_output_is_escaped(smtp_server, home):
    """A reply can hold ESC sequences, a right-to-left override, a NEL: shown, never obeyed."""
    hostile = "250 2.0.0 queued \x1b[2J\u202e|gnirts\x85x"
    server = smtp_server(replies={"DOT": hostile})
    sent = _notify(server, home, T0, *problem())
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.endswith(": 2.0.0 queued \\x1b[2J\\u202e/gnirts\\x85x\n")
    refusing = smtp_server(replies={"RCPT": "550 5.1.1 \u2028no \x9b31m such\u2066 phone"})
    failed = _notify(refusing, home, T0, *problem(host="mx2"))
    assert failed.returncode == 1
    assert failed.stderr.endswith(
        "RCPT TO answered 550 5.1.1 \\u2028no \\x9b31m such\\u2066 phone\n"
    )
    odd_host = _notify(server, home, T0, *problem(host="mx\u202e1\x852"))
    assert odd_host.returncode == 0, odd_host.stderr
    assert "sent PROBLEM for mx\\u202e1\\x852/smtp-verbs to " in odd_host.stdout
    for run in (sent, failed, odd_host):
        output = run.stdout + run.stderr
        assert not any(char in output for char in "\x1b\x85\x9b\u202e\u2028\u2066|")


def test_a_corrupt_state_file_does_not_stop_the_alert_and_is_rewritten(smtp_server, home):
    server = smtp_server()
    state = home / "s.json"
    state.write_text('{"version": 1, "keys": {"mx1/smtp-verbs": {"last_pro')
    run = _notify(server, home, T0, *problem())
    assert run.returncode == 0
    assert len(server.messages) == 1
    assert run.stderr == (
        f"notify_sms_mail: state file {state} is corrupt "
        "(Unterminated string starting at: line 1 column 44 (char 43)); starting afresh\n"
    )
    entries, problem_text = StateFile(state).load()
    assert problem_text == ""
    assert entries["mx1/smtp-verbs"].last_problem == T0


def test_a_lock_held_too_long_by_another_run_fails_with_one_line_and_sends_nothing(
    smtp_server, home
):
    server = smtp_server()
    store = StateFile(home / "s.json")
    with store.locked(5):  # another notification, stuck mid-send
        run = _notify(server, home, T0, *problem(), extra=("--timeout", "0.5"))
    assert run.returncode == 1
    assert run.stderr == f"notify_sms_mail: error: could not lock {store.lock_path} within 5.5s\n"
    assert server.connections == 0
    assert 5.5 <= run.seconds < 5.5 + 5
