"""The throttle: whether to send, and the locked state file that remembers what was sent.

The origin script wrote its timestamp *before* sending (a failed send silenced the
next hour), kept one file for every problem and raced with itself.  Here:

* the decision is a pure function of the key's entry, the notification and the
  clock (:func:`decide`), so every rule is testable with any clock;
* the caller holds :meth:`StateFile.locked` across read, decide, send and record, so
  parallel notifications for one key (Icinga runs them in parallel) send one message;
* a window is recorded only after the gateway accepted the message
  (:func:`record_sent`); a failed send records nothing.

Why not nagiosplugin's Cookie: it rewrites the file in place (truncate, write), so a
crash mid-write leaves a truncated file, and it truncates a corrupt file and raises.
This store locks a separate ``.lock`` file (never replaced, so every process locks
the same inode), writes a temporary file, fsyncs it and renames it over the old one:
a reader sees the old state or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from check_smtp_verbs.notify.macros import Notification

VERSION = 1
KEY_MODES = ("service", "host", "global")
GLOBAL_KEY = "*"


class StoreError(Exception):
    """The state file cannot be locked, read or written; the message is one line."""


class LockTimeout(StoreError):
    """Another run held the lock for too long (it should be bounded by its own timeout)."""


class Entry(NamedTuple):
    """What the throttle remembers for one key."""

    last_problem: float | None = None  # when a PROBLEM was last delivered (epoch seconds)
    problem_open: bool = False  # a PROBLEM was delivered since the last delivered RECOVERY
    suppressed: int = 0  # PROBLEMs suppressed since the last delivered message
    suppressed_since: float | None = None  # when the first of those came
    last_state: str | None = None  # standalone mode: the check's last state

    @classmethod
    def from_json(cls, raw: Any) -> Entry:
        """Validate one entry; ValueError if it is not what this program writes."""
        if not isinstance(raw, dict):
            raise ValueError("an entry is not an object")

        def number(name: str) -> float | None:
            value = raw.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} is not a number")
            return float(value)

        suppressed = raw.get("suppressed", 0)
        if isinstance(suppressed, bool) or not isinstance(suppressed, int) or suppressed < 0:
            raise ValueError("suppressed is not a count")
        last_state = raw.get("last_state")
        if last_state is not None and not isinstance(last_state, str):
            raise ValueError("last_state is not a string")
        return cls(
            last_problem=number("last_problem"),
            problem_open=bool(raw.get("problem_open", False)),
            suppressed=suppressed,
            suppressed_since=number("suppressed_since"),
            last_state=last_state,
        )


class Decision(NamedTuple):
    send: bool
    reason: str  # one line: why (not)
    note: str = ""  # goes into the message: "3 suppressed since 05:10"


def key_for(notification: Notification, mode: str) -> str:
    if mode == "global":
        return GLOBAL_KEY
    if mode == "host":
        return notification.host
    return notification.subject


def clock_text(when: float, now: float) -> str:
    """``05:10`` today, ``27 Nov 05:10`` otherwise: short enough for an SMS."""
    then, today = time.localtime(when), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    return time.strftime("%d %b %H:%M", then)


def duration_text(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _note(entry: Entry, now: float) -> str:
    if not entry.suppressed or entry.suppressed_since is None:
        return ""
    return f"{entry.suppressed} suppressed since {clock_text(entry.suppressed_since, now)}"


def decide(
    entry: Entry,
    notification: Notification,
    key: str,
    now: float,
    window: float,
    types: frozenset[str],
) -> Decision:
    """Send or not, and why; nothing is changed here.

    A PROBLEM after a delivered RECOVERY is always sent, even inside the window: the
    phone's last word must never be a stale "all clear".
    """
    family = notification.family
    if family not in types:
        return Decision(
            False, f"{notification.type} is not among --types {','.join(sorted(types))}"
        )
    if family == "RECOVERY":
        if not entry.problem_open:
            return Decision(
                False, f"no RECOVERY needed for {key}: no PROBLEM was sent since the last recovery"
            )
        return Decision(True, f"RECOVERY for {key} after a sent PROBLEM", _note(entry, now))
    if family != "PROBLEM":
        return Decision(True, f"{notification.type} is not throttled")
    last = entry.last_problem
    if window > 0 and entry.problem_open and last is not None and 0 <= now - last < window:
        count = entry.suppressed + 1
        return Decision(
            False,
            f"throttled: a PROBLEM for {key} was sent at {clock_text(last, now)}, within "
            f"{duration_text(window)} (until {clock_text(last + window, now)}); "
            f"{count} suppressed since {clock_text(entry.suppressed_since or now, now)}",
        )
    if last is None or not entry.problem_open:
        why = f"first PROBLEM for {key}"
    else:
        why = (
            f"last PROBLEM for {key} was sent at {clock_text(last, now)}, "
            f"over {duration_text(window)} ago"
        )
    return Decision(True, why, _note(entry, now))


def record_sent(entry: Entry, notification: Notification, now: float) -> Entry:
    """The entry after the gateway accepted ``notification``."""
    if notification.family == "PROBLEM":
        return entry._replace(
            last_problem=now, problem_open=True, suppressed=0, suppressed_since=None
        )
    if notification.family == "RECOVERY":
        return entry._replace(problem_open=False, suppressed=0, suppressed_since=None)
    return entry


def record_suppressed(entry: Entry, notification: Notification, now: float) -> Entry:
    if notification.family != "PROBLEM":
        return entry
    return entry._replace(
        suppressed=entry.suppressed + 1, suppressed_since=entry.suppressed_since or now
    )


def default_path() -> Path:
    """``$STATE_DIRECTORY`` (systemd's StateDirectory=), else ``$XDG_STATE_HOME`` or
    ``~/.local/state``, then ``check_smtp_verbs/notify_sms_mail.json``.

    Per user, because Icinga and Nagios run notifications as their own user, whose
    home (``/var/lib/nagios`` on Debian) is writable where /var/lib itself is not.
    """
    systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd) / "notify_sms_mail.json"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "check_smtp_verbs" / "notify_sms_mail.json"


class _LockTimeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _LockTimeout


class StateFile:
    """A JSON state file with a lock beside it; see the module docstring for why."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the exclusive lock, waiting at most ``timeout`` seconds for it.

        flock cannot time out by itself; an interval timer interrupts the wait
        (Python retries an interrupted call unless the signal handler raises).
        """
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileExistsError:  # mkdir met a file where a directory should be
            raise StoreError(
                f"cannot use the state directory {self.path.parent}: it is not a directory"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot use the state directory {self.path.parent}: {exc.strerror}"
            ) from None
        previous = signal.signal(signal.SIGALRM, _alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _LockTimeout:
            os.close(fd)
            raise LockTimeout(f"could not lock {self.lock_path} within {timeout:g}s") from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.lock_path}: {exc.strerror}") from None
        finally:
            signal.signal(signal.SIGALRM, previous)
        try:
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self) -> tuple[dict[str, Entry], str]:
        """The entries, and a one-line problem ("" if none) when the file was unusable.

        An unusable file yields no entries: the alert goes out as if nothing had been
        sent before, which costs at most one extra SMS; trusting garbage could cost
        the alert.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, ""
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            return {}, f"state file {self.path} is unreadable ({why}); starting afresh"
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or not isinstance(raw.get("keys"), dict):
                raise ValueError("not a notify_sms_mail state file")
            entries = {str(k): Entry.from_json(v) for k, v in raw["keys"].items()}
        except ValueError as exc:
            return (
                {},
                f"state file {self.path} is corrupt ({str(exc).splitlines()[0]}); starting afresh",
            )
        return entries, ""

    def save(self, entries: dict[str, Entry]) -> None:
        """Replace the file atomically: write a temporary file, fsync, rename."""
        document = {
            "version": VERSION,
            "keys": {k: e._asdict() for k, e in sorted(entries.items())},
        }
        data = json.dumps(document, indent=1, sort_keys=True) + "\n"
        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
        except OSError as exc:
            raise StoreError(f"cannot write the state file {self.path}: {exc.strerror}") from None
