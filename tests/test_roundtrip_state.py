"""The asynchronous round trip's state file: pending, found, lost, forgotten; locked and atomic."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.roundtrip.state import RoundTripState, StoreError

KEY = "imaps://mailbox.example.net:993 probe@example.net INBOX"
HOUR = 3600.0
T0 = 1_800_000_000.0  # epoch seconds of the first run in these stories


def store(tmp_path: Path, key: str = KEY) -> RoundTripState:
    return RoundTripState(tmp_path / "state" / "roundtrip.json", key)


def deadline() -> Deadline:
    return Deadline(5)


def test_a_sent_probe_is_pending_and_sought_until_found(tmp_path):
    state = store(tmp_path)
    assert state.record_sent("<a@x>", T0, deadline()) == {"<a@x>": T0}
    tally = state.settle({}, T0 + 5, HOUR, deadline())
    assert (tally.pending, tally.lost, tally.newest_delivery) == (1, 0, None)
    assert state.record_sent("<b@x>", T0 + 300, deadline()) == {"<a@x>": T0, "<b@x>": T0 + 300}


def test_found_probes_report_their_delivery_time_and_the_newest_one_is_the_metric(tmp_path):
    state = store(tmp_path)
    state.record_sent("<a@x>", T0, deadline())
    state.record_sent("<b@x>", T0 + 300, deadline())
    tally = state.settle({"<a@x>": T0 + 420, "<b@x>": T0 + 310}, T0 + 600, HOUR, deadline())
    assert tally.delivered == {"<a@x>": 420.0, "<b@x>": 10.0}
    assert tally.newest_delivery == 10.0  # the most recently sent probe says most about now
    assert (tally.pending, tally.lost) == (0, 0)
    assert state.sought(deadline()) == {}


def test_an_arrival_stamped_before_sending_counts_as_zero_seconds(tmp_path):
    """Clocks of two machines differ; a negative delivery time is nonsense."""
    state = store(tmp_path)
    state.record_sent("<a@x>", T0, deadline())
    assert state.settle({"<a@x>": T0 - 2}, T0 + 60, HOUR, deadline()).delivered == {"<a@x>": 0.0}


def test_a_probe_older_than_lost_after_is_lost_and_counted_for_another_lost_after(tmp_path):
    state = store(tmp_path)
    state.record_sent("<a@x>", T0, deadline())
    assert state.settle({}, T0 + HOUR, HOUR, deadline()).lost == 0  # not older yet
    tally = state.settle({}, T0 + HOUR + 1, HOUR, deadline())
    assert (tally.pending, tally.lost) == (0, 1)
    assert state.settle({}, T0 + 2 * HOUR, HOUR, deadline()).lost == 1
    assert state.settle({}, T0 + 2 * HOUR + 2, HOUR, deadline()).lost == 0  # forgotten
    assert state.sought(deadline()) == {}


def test_a_lost_probe_that_turns_up_is_late_still_lost_and_no_longer_sought(tmp_path):
    state = store(tmp_path)
    state.record_sent("<a@x>", T0, deadline())
    state.settle({}, T0 + HOUR + 1, HOUR, deadline())
    assert "<a@x>" in state.sought(deadline())  # so that it is deleted when it comes
    tally = state.settle({"<a@x>": T0 + HOUR + 100}, T0 + HOUR + 200, HOUR, deadline())
    assert tally.late == ("<a@x>",)
    assert tally.lost == 1
    assert tally.delivered == {}
    assert state.sought(deadline()) == {}


def test_a_probe_settled_by_an_overlapping_run_is_not_counted_twice(tmp_path):
    first, second = store(tmp_path), store(tmp_path)
    first.record_sent("<a@x>", T0, deadline())
    assert second.settle({"<a@x>": T0 + 5}, T0 + 6, HOUR, deadline()).delivered == {"<a@x>": 5.0}
    assert first.settle({"<a@x>": T0 + 5}, T0 + 7, HOUR, deadline()).delivered == {}


def test_each_mailbox_keeps_its_own_probes_in_a_shared_file(tmp_path):
    imap, pop = store(tmp_path), store(tmp_path, "pop3s://other.example.net:995 probe INBOX")
    imap.record_sent("<a@x>", T0, deadline())
    assert pop.record_sent("<b@x>", T0, deadline()) == {"<b@x>": T0}
    assert imap.sought(deadline()) == {"<a@x>": T0}
    assert pop.settle({}, T0 + HOUR + 1, HOUR, deadline()).lost == 1
    assert imap.settle({}, T0 + 60, HOUR, deadline()).lost == 0


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"version": 1, "mailboxes": {"k": {"pending": {"<a@x>": "yesterday"}}}}',
        b'{"version": 7, "mailboxes": {}}',
        b"\xff\xfe",
    ],
    ids=["not-json", "not-an-object", "bad-entry", "other-version", "not-utf8"],
)
def test_a_corrupt_file_is_reported_once_and_replaced(tmp_path, content):
    state = store(tmp_path)
    state.path.parent.mkdir()
    state.path.write_bytes(content)
    assert state.record_sent("<a@x>", T0, deadline()) == {"<a@x>": T0}
    assert len(state.problems) == 1
    assert state.problems[0].startswith(f"state file {state.path} is ")
    assert state.problems[0].endswith("; starting afresh")
    assert json.loads(state.path.read_text())["mailboxes"][KEY]["pending"] == {"<a@x>": T0}
    state.settle({}, T0 + 1, HOUR, deadline())
    assert len(state.problems) == 1


def test_the_file_is_replaced_atomically_and_nothing_temporary_is_left(tmp_path):
    state = store(tmp_path)
    state.record_sent("<a@x>", T0, deadline())
    inode = state.path.stat().st_ino
    state.record_sent("<b@x>", T0 + 1, deadline())
    assert state.path.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in state.path.parent.iterdir()) == [
        "roundtrip.json",
        "roundtrip.json.lock",
    ]
    assert oct(state.path.stat().st_mode & 0o777) == "0o600"


def test_a_lock_held_elsewhere_is_waited_for_no_longer_than_the_deadline(tmp_path):
    state = store(tmp_path)
    state.record_sent("<a@x>", T0, deadline())
    holder = os.open(state.lock_path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        started = clock()
        with pytest.raises(StoreError) as failure:
            state.record_sent("<b@x>", T0 + 1, Deadline(0.5))
        assert 0.4 < clock() - started < 0.8
        assert str(failure.value) == f"could not lock {state.lock_path} before the timeout"
    finally:
        os.close(holder)
    assert state.sought(deadline()) == {"<a@x>": T0}


def test_a_state_path_below_a_file_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("")
    state = RoundTripState(tmp_path / "file" / "roundtrip.json", KEY)
    with pytest.raises(StoreError) as failure:
        state.record_sent("<a@x>", T0, deadline())
    assert "cannot use the state" in str(failure.value)
