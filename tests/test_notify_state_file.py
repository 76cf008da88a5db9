"""Whatever lies at the state path, the alert goes out (issue 11 items 2 and 4).

The state file is input this program cannot trust: a crash, a full disk, an admin
or another user may have put anything there.  Each case is a real file (or FIFO,
device, link, sparse gigabyte) and a real run of the notifier against the test
gateway: the alert is sent, one line says what was wrong, the file is replaced.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from check_smtp_verbs.notify.throttle import MAX_STATE_BYTES, Entry, StateFile
from tests.notifier import ADDRESSED, T0, gateway, notify_env, problem, run_notify
from tests.plugin import need

# The key was sent a minute before T0 + 60: trusted, this file throttles the alert.
SENT_JUST_NOW = {
    "version": 1,
    "keys": {"mx1/smtp-verbs": {"last_problem": T0, "problem_open": True}},
}


def _notify(server, home: Path, state: Path, now: float = T0):
    return run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(state),
        *problem(),
        env=notify_env(home, now),
        timeout=30,  # "never hangs": a hang fails the test instead of stalling the suite
    )


def _assert_sent_and_replaced(server, run, state: Path, complaint: str) -> None:
    assert run.returncode == 0, run
    assert len(server.messages) == 1
    assert run.stderr == f"notify_sms_mail: state file {state} {complaint}; starting afresh\n"
    assert stat.S_ISREG(os.lstat(state).st_mode)
    assert stat.S_IMODE(os.lstat(state).st_mode) == 0o600
    entries, problem_text = StateFile(state).load()
    assert problem_text == ""
    assert entries["mx1/smtp-verbs"].last_problem == T0


# --- contents that parse but are not what this program writes ------------------------

CORRUPT = {
    "NaN": ('{"version": 1, "keys": {"mx1/smtp-verbs": {"last_problem": NaN}}}', "NaN"),
    "Infinity": ('{"keys": {"k": {"suppressed_since": -Infinity}}}', "-Infinity"),
    "1e400": ('{"keys": {"k": {"last_problem": 1e400}}}', "not a finite number"),
    "huge integer": ('{"keys": {"k": {"last_problem": 1' + "0" * 400 + "}}}", "int too large"),
    "huge count": ('{"keys": {"k": {"suppressed": 1' + "0" * 30 + "}}}", "not a count"),
    "deep nesting": ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    "string flag": ('{"keys": {"k": {"problem_open": "yes"}}}', "not true or false"),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_values_that_json_allows_but_no_entry_has_read_as_corrupt(tmp_path: Path, content):
    text, why = content
    store = StateFile(tmp_path / "s.json")
    store.path.write_text(text)
    entries, problem_text = store.load()
    assert entries == {}
    assert problem_text.startswith(f"state file {store.path} is corrupt (")
    assert why in problem_text
    assert problem_text.endswith("); starting afresh")
    assert "\n" not in problem_text


@pytest.mark.parametrize("name", ["NaN", "1e400", "deep nesting"])
def test_a_corrupt_value_still_sends_the_alert_and_the_file_is_replaced(
    smtp_server, tmp_path: Path, name
):
    server = smtp_server()
    state = tmp_path / "s.json"
    state.write_text(CORRUPT[name][0])
    run = _notify(server, tmp_path, state)
    complaint = run.stderr.split(f"state file {state} ", 1)[1].split("; starting afresh")[0]
    assert complaint.startswith("is corrupt (")
    _assert_sent_and_replaced(server, run, state, complaint)


# --- things at the state path that are not a small regular file ----------------------


def test_a_fifo_is_refused_without_blocking_and_replaced(smtp_server, tmp_path: Path):
    """Reading a FIFO waits for a writer that never comes: with the lock held."""
    server = smtp_server()
    state = tmp_path / "s.json"
    os.mkfifo(state)
    run = _notify(server, tmp_path, state)
    _assert_sent_and_replaced(server, run, state, "is a FIFO, not a regular file")
    assert run.seconds < 10


def test_a_device_is_refused_without_being_read_and_replaced(smtp_server, tmp_path: Path):
    """/dev/zero's twin: reading it to the end would take all memory."""
    if os.geteuid() != 0:
        need("creating a device node needs root")
    server = smtp_server()
    state = tmp_path / "s.json"
    os.mknod(state, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # the device /dev/zero is
    run = _notify(server, tmp_path, state)
    _assert_sent_and_replaced(server, run, state, "is a character device, not a regular file")


def test_a_link_to_dev_zero_is_refused_and_replaced_not_followed(smtp_server, tmp_path: Path):
    server = smtp_server()
    state = tmp_path / "s.json"
    state.symlink_to("/dev/zero")
    run = _notify(server, tmp_path, state)
    _assert_sent_and_replaced(server, run, state, "is a symbolic link, not a regular file")


def test_a_sparse_gigabyte_is_refused_without_being_read(smtp_server, tmp_path: Path):
    server = smtp_server()
    state = tmp_path / "s.json"
    with open(state, "wb") as file:
        file.truncate(1 << 30)  # sparse: no disk space, 1 GiB to a reader
    os.chmod(state, 0o600)
    run = _notify(server, tmp_path, state)
    _assert_sent_and_replaced(
        server, run, state, f"is larger than {MAX_STATE_BYTES} bytes ({1 << 30})"
    )


def test_a_state_that_would_not_fit_the_read_limit_is_not_written(tmp_path: Path):
    """Else every later run would refuse the file and send unthrottled."""
    store = StateFile(tmp_path / "s.json")
    entries = {f"host{n:06}/" + "s" * 60: Entry(suppressed=1) for n in range(20_000)}
    with pytest.raises(Exception, match="keys need more than 1048576 bytes"):
        store.save(entries)
    assert not store.path.exists()


def test_a_file_of_thousands_of_open_problems_stays_within_the_limit(tmp_path: Path):
    store = StateFile(tmp_path / "s.json")
    entries = {
        f"host{n}.example.net/smtp-verbs": Entry(
            last_problem=T0 + n, problem_open=True, problem_state="CRITICAL"
        )
        for n in range(8_000)
    }
    store.save(entries)
    assert store.path.stat().st_size < MAX_STATE_BYTES
    assert store.load() == (entries, "")


def test_recovered_keys_leave_the_file(tmp_path: Path):
    store = StateFile(tmp_path / "s.json")
    store.save({"open": Entry(last_problem=T0, problem_open=True), "closed": Entry(T0)})
    assert list(json.loads(store.path.read_text())["keys"]) == ["open"]


# --- who may write it, and what is around it (item 4) ---------------------------------


def test_a_state_file_others_can_write_is_not_trusted_and_is_rewritten_0600(
    smtp_server, tmp_path: Path
):
    """Whoever can write it can mark every service "sent a minute ago" and silence
    it; ignoring it costs at most one extra SMS."""
    server = smtp_server()
    state = tmp_path / "s.json"
    state.write_text(json.dumps(SENT_JUST_NOW))
    os.chmod(state, 0o600)
    trusted = _notify(server, tmp_path, state, T0 + 60)
    assert "throttled" in trusted.stdout  # the same content, trusted: the alert waits
    state.write_text(json.dumps(SENT_JUST_NOW))
    os.chmod(state, 0o666)
    run = _notify(server, tmp_path, state, T0 + 60)
    assert run.returncode == 0
    assert len(server.messages) == 1
    assert run.stderr == (
        f"notify_sms_mail: state file {state} is writable by others (mode 0666), "
        "not trusted; starting afresh\n"
    )
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    again = _notify(server, tmp_path, state, T0 + 120)
    assert again.stderr == ""  # said once: the rewritten file is trusted
    assert "throttled" in again.stdout


def test_a_state_file_of_another_user_is_not_trusted(tmp_path: Path):
    if os.geteuid() != 0:
        need("giving a file to another user needs root")
    store = StateFile(tmp_path / "s.json")
    store.path.write_text(json.dumps(SENT_JUST_NOW))
    os.chmod(store.path, 0o600)
    os.chown(store.path, 65534, 65534)
    assert store.load() == (
        {},
        f"state file {store.path} belongs to another user (uid 65534), not trusted; "
        "starting afresh",
    )


def test_every_directory_made_for_the_state_file_is_0700(smtp_server, tmp_path: Path):
    server = smtp_server()
    state = tmp_path / "a" / "b" / "c" / "s.json"
    run = _notify(server, tmp_path, state)
    assert run.returncode == 0, run.stderr
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_a_dangling_link_at_the_lock_path_is_refused_not_followed(smtp_server, tmp_path: Path):
    """Followed, it would create (and lock) a file wherever the link points."""
    server = smtp_server()
    state = tmp_path / "s.json"
    target = tmp_path / "elsewhere"
    lock = tmp_path / "s.json.lock"
    lock.symlink_to(target)
    run = _notify(server, tmp_path, state)
    assert run.returncode == 3
    assert len(server.messages) == 1  # the alert still went out, unthrottled
    assert run.stderr == (
        f"notify_sms_mail: refusing the lock file {lock}: it is a symbolic link; "
        "sending without the throttle\n"
    )
    assert not os.path.lexists(target)
    assert lock.is_symlink()


def test_temporary_files_left_by_a_killed_run_are_removed_by_the_next(smtp_server, tmp_path: Path):
    """Only this program's own pattern, only regular files, only old ones."""
    server = smtp_server()
    state = tmp_path / "s.json"
    old = time.time() - 3600
    left = [tmp_path / ".s.json.k1ll3d_0", tmp_path / ".s.json.abcdefgh"]
    kept = [
        tmp_path / ".s.json.fresh123",  # young: it could belong to a run writing now
        tmp_path / ".s.json.short",  # not mkstemp's 8 characters
        tmp_path / ".other.json.abcdefgh",  # another state file's
        tmp_path / "s.json.abcdefgh",  # no leading dot
    ]
    for path in left + kept:
        path.write_text("{")
        if path.name != ".s.json.fresh123":
            os.utime(path, (old, old))
    linked = tmp_path / ".s.json.linked00"
    linked.symlink_to(tmp_path / "s.json.abcdefgh")
    os.utime(linked, (old, old), follow_symlinks=False)
    run = _notify(server, tmp_path, state)
    assert run.returncode == 0, run.stderr
    assert [path for path in left if path.exists()] == []
    assert [path for path in kept if not path.exists()] == []
    assert linked.is_symlink()
