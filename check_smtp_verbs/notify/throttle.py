"""The throttle: whether to send, and the state file that remembers what was sent.

The origin script wrote its timestamp *before* sending (a failed send silenced the
next hour), kept one file for every problem and raced with itself.  Here:

* the decision is a pure function of the key's entry, the notification and the
  clock (:func:`decide`), so every rule is testable with any clock;
* a window is recorded only after the gateway accepted the message
  (:func:`record_sent`); a failed send records nothing, so the next run sends;
* two locks, both byte-range locks in one ``.lock`` file beside the state
  (:class:`StateFile`): the *store* lock is held only to read and to write the file,
  milliseconds, never across the network; the *key* lock (one byte per throttle
  key) is held from the decision until the result is recorded.  Different keys
  never wait on each other, so a mass outage sends every alert at once; a second
  run for the same key waits for the first one's outcome, then decides on it: it
  is suppressed when that one sent, and sends itself when that one failed.  So
  parallel notifications for one key (Icinga runs them in parallel) send one
  message, and a failed sender cannot lose the alert of the runs behind it.

Why not nagiosplugin's Cookie: it rewrites the file in place (truncate, write), so a
crash mid-write leaves a truncated file, and it truncates a corrupt file and raises.
This store writes a temporary file, fsyncs it and renames it over the old one (a
reader sees the old state or the new one, never half of either), and locks a
separate file that is never replaced, so every process locks the same inode.

The state file is untrusted input: whatever is at its path (garbage, ``NaN``, a
FIFO, a device, a gigabyte, a file others can write) yields no entries and one
line saying why, and is replaced by the next save.  Starting afresh costs at most
one extra SMS; trusting it could cost the alert.
"""

from __future__ import annotations

import binascii
import contextlib
import errno
import fcntl
import json
import math
import os
import re
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from check_smtp_verbs.files import replace_atomically
from check_smtp_verbs.notify.macros import Notification

VERSION = 1
KEY_MODES = ("service", "host", "global")
GLOBAL_KEY = "*"
MAX_STATE_BYTES = 1 << 20
"""The most the store reads or writes: about 8 000 open problems in the compact
format; a bigger file is refused rather than read into memory."""
STALE_TEMPORARY = 600.0
"""A temporary file of ours older than this (seconds) was left by a killed run."""
_COMPACT: dict[str, Any] = {"separators": (",", ":"), "sort_keys": True}  # a short line per key
_MAX_COUNT = 2**53  # a suppressed count beyond this is not one this program wrote

# How bad a state is, for escalation; states not listed (OK, UP, PENDING, or anything
# else a custom notification sends) never escalate nor are escalated from.
SEVERITY = {"WARNING": 1, "UNKNOWN": 1, "UNREACHABLE": 1, "CRITICAL": 2, "DOWN": 2}

# The lock file's byte 0 is the store lock; a key's lock is one byte from its hash.
# A collision of two keys' bytes (about 1 in 2**31) only makes them wait on each other.
_STORE_BYTE = 0
_KEY_BYTES = 2**31 - 2


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
    problem_state: str | None = None  # the state of the last delivered PROBLEM (escalation)

    @property
    def idle(self) -> bool:
        """Whether the entry says nothing :func:`decide` would not assume anyway, so
        the file need not keep it: services that recovered leave the file."""
        return not self.problem_open and not self.suppressed and self.last_state is None

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
            seconds = float(value)  # OverflowError for an integer beyond any float
            if not math.isfinite(seconds):
                raise ValueError(f"{name} is not a finite number")
            return seconds

        def text(name: str) -> str | None:
            value = raw.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} is not a string")
            return value

        suppressed = raw.get("suppressed", 0)
        if (
            isinstance(suppressed, bool)
            or not isinstance(suppressed, int)
            or not 0 <= suppressed < _MAX_COUNT
        ):
            raise ValueError("suppressed is not a count")
        problem_open = raw.get("problem_open", False)
        if not isinstance(problem_open, bool):
            raise ValueError("problem_open is not true or false")
        return cls(
            last_problem=number("last_problem"),
            problem_open=problem_open,
            suppressed=suppressed,
            suppressed_since=number("suppressed_since"),
            last_state=text("last_state"),
            problem_state=text("problem_state"),
        )

    def to_json(self) -> dict[str, Any]:
        """The fields that differ from their defaults: what a reader must know."""
        return {
            name: value
            for name, value in self._asdict().items()
            if value is not None and not (name in ("problem_open", "suppressed") and not value)
        }


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


def escalates(entry: Entry, notification: Notification) -> bool:
    """Whether ``notification`` is worse than the PROBLEM last delivered for its key:
    WARNING (or UNKNOWN, UNREACHABLE) then CRITICAL (or DOWN)."""
    before = SEVERITY.get(entry.problem_state or "")
    after = SEVERITY.get(notification.state)
    return before is not None and after is not None and after > before


def decide(
    entry: Entry,
    notification: Notification,
    key: str,
    now: float,
    window: float,
    types: frozenset[str],
    escalation: bool = True,
) -> Decision:
    """Send or not, and why; nothing is changed here.

    A PROBLEM after a delivered RECOVERY is always sent, even inside the window: the
    phone's last word must never be a stale "all clear".  So is, with ``escalation``,
    a PROBLEM worse than the one delivered (WARNING, then CRITICAL): the phone must
    not keep saying "warning" about a service that is down.  It is sent once: it
    becomes the delivered PROBLEM, and nothing is worse than CRITICAL.
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
        if escalation and escalates(entry, notification):
            return Decision(
                True,
                f"escalation: {notification.state} for {key} after the {entry.problem_state} "
                f"sent at {clock_text(last, now)}, within {duration_text(window)}",
                _note(entry, now),
            )
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
            last_problem=now,
            problem_open=True,
            suppressed=0,
            suppressed_since=None,
            problem_state=notification.state or None,
        )
    if notification.family == "RECOVERY":
        return entry._replace(
            problem_open=False, suppressed=0, suppressed_since=None, problem_state=None
        )
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


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def key_byte(key: str) -> int:
    """The byte of the lock file that stands for ``key``: the same in every process."""
    # CRC-32 rather than a cryptographic hash: binascii is loaded anyway, hashlib
    # would cost a suppressed run ~5 ms of OpenSSL; nobody gains by choosing keys
    # that collide (they would only wait on each other).
    return 1 + binascii.crc32(key.encode("utf-8", "surrogatepass")) % _KEY_BYTES


def make_directories(directory: Path) -> None:
    """Create ``directory`` and every missing parent with mode 0700.

    ``Path.mkdir(parents=True)`` gives the parents the default mode (0755 under the
    usual umask), which would show other users which state files exist.
    """
    missing = []
    current = directory
    while not os.path.lexists(current) and current.parent != current:
        missing.append(current)
        current = current.parent
    try:
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):  # a parallel run made it
                os.mkdir(path, 0o700)
    except OSError as exc:
        raise StoreError(f"cannot use the state directory {directory}: {exc.strerror}") from None
    if not directory.is_dir():
        raise StoreError(f"cannot use the state directory {directory}: it is not a directory")


class StateFile:
    """A JSON state file with a lock file beside it; see the module docstring for why.

    The lock file is opened once per object and closed only by :meth:`close`: POSIX
    byte-range locks belong to the process and are all dropped when it closes *any*
    descriptor of the file, so nothing else may open it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def open(self) -> None:
        """Create the state directory and open the lock file; StoreError if either is
        unusable.  A symbolic link at the lock path is refused, not followed: it
        could make this program create or lock a file somewhere else."""
        if self._fd is not None:
            return
        make_directories(self.path.parent)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(self.lock_path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"refusing the lock file {self.lock_path}: it is a symbolic link"
                ) from None
            raise StoreError(
                f"cannot open the lock file {self.lock_path}: {exc.strerror}"
            ) from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise StoreError(f"refusing the lock file {self.lock_path}: it is {_kind(mode)}")
        self._fd = fd

    def close(self) -> None:
        """Close the lock file, which also drops every lock still held."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateFile:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def locked(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Hold the store lock, to read or write the file; never across the network."""
        return self._hold(_STORE_BYTE, timeout, "", "")

    def key_locked(self, key: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Hold ``key``'s lock, from the decision until its outcome is recorded."""
        return self._hold(key_byte(key), timeout, f" for {key}", ": another run is sending for it")

    @contextlib.contextmanager
    def _hold(self, byte: int, timeout: float, what: str, why: str) -> Iterator[None]:
        """Hold an exclusive lock on one byte, waiting at most ``timeout`` seconds.

        A lock cannot time out by itself; an interval timer interrupts the wait
        (Python retries an interrupted call unless the signal handler raises).
        """
        self.open()
        assert self._fd is not None
        fd = self._fd
        previous = signal.signal(signal.SIGALRM, _alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX, 1, byte, os.SEEK_SET)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _LockTimeout:
            # The timer may have fired just after the lock was granted: give it back.
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, byte, os.SEEK_SET)
            raise LockTimeout(
                f"could not lock {self.lock_path}{what} within {timeout:g}s{why}"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot lock {self.lock_path}: {exc.strerror}") from None
        finally:
            signal.signal(signal.SIGALRM, previous)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, byte, os.SEEK_SET)

    def load(self) -> tuple[dict[str, Entry], str]:
        """The entries, and a one-line problem ("" if none) when the file was unusable.

        An unusable file yields no entries: the alert goes out as if nothing had been
        sent before, which costs at most one extra SMS; trusting garbage could cost
        the alert.  Nothing here can block or read more than MAX_STATE_BYTES: the
        path is checked with lstat before it is opened (opening a device can have
        effects), opened without following links and without blocking (a FIFO), and
        checked again on the open descriptor.
        """
        try:
            data = self._read()
        except FileNotFoundError:
            return {}, ""
        except _Unusable as exc:
            return {}, f"state file {self.path} {exc}; starting afresh"
        except OSError as exc:
            return {}, f"state file {self.path} is unreadable ({exc.strerror}); starting afresh"
        try:
            raw = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
            if not isinstance(raw, dict) or not isinstance(raw.get("keys"), dict):
                raise ValueError("not a notify_sms_mail state file")
            entries = {str(k): Entry.from_json(v) for k, v in raw["keys"].items()}
        except UnicodeDecodeError:
            return {}, f"state file {self.path} is unreadable (not UTF-8); starting afresh"
        except RecursionError:
            why = "nested too deeply"
        except (ValueError, OverflowError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            return entries, ""
        return {}, f"state file {self.path} is corrupt ({why}); starting afresh"

    def _read(self) -> bytes:
        before = os.lstat(self.path)
        _usable(before)
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = os.open(self.path, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
                raise _Unusable("is a symbolic link") from None
            raise
        try:
            _usable(os.fstat(fd))
            chunks, size = [], 0
            while size <= MAX_STATE_BYTES:
                chunk = os.read(fd, MAX_STATE_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        if size > MAX_STATE_BYTES:
            raise _Unusable(f"is larger than {MAX_STATE_BYTES} bytes")
        return b"".join(chunks)

    def save(self, entries: dict[str, Entry]) -> None:
        """Replace the file atomically: write a temporary file, fsync, rename.

        Entries that say nothing (:attr:`Entry.idle`) are left out, so the file holds
        open problems, not every service that ever had one.  Temporary files a killed
        run left behind are removed first (the caller holds the store lock, so no
        live run is writing one).
        """
        lines = [
            f"  {json.dumps(key)}:{json.dumps(entry.to_json(), **_COMPACT)}"
            for key, entry in sorted(entries.items())
            if not entry.idle
        ]
        data = (
            f'{{\n "version": {VERSION},\n "keys": {{\n' + ",\n".join(lines) + "\n }\n}\n"
        ).encode()
        if len(data) > MAX_STATE_BYTES:
            raise StoreError(
                f"cannot write the state file {self.path}: its {len(lines)} keys need more "
                f"than {MAX_STATE_BYTES} bytes (a coarser --throttle-key needs fewer)"
            )
        self._remove_stale_temporaries()
        try:
            replace_atomically(self.path, data)
        except OSError as exc:
            raise StoreError(f"cannot write the state file {self.path}: {exc.strerror}") from None

    def _remove_stale_temporaries(self) -> None:
        """Only our own pattern (``.NAME.`` and mkstemp's 8 characters), only regular
        files of ours, only old ones: anything else in the directory is not ours."""
        pattern = re.compile(re.escape(f".{self.path.name}.") + r"[a-z0-9_]{8}")
        cutoff = time.time() - STALE_TEMPORARY
        with contextlib.suppress(OSError), os.scandir(self.path.parent) as found:
            for item in found:
                if not pattern.fullmatch(item.name):
                    continue
                with contextlib.suppress(OSError):
                    info = item.stat(follow_symlinks=False)
                    if (
                        stat.S_ISREG(info.st_mode)
                        and info.st_uid == os.geteuid()
                        and info.st_mtime < cutoff
                    ):
                        os.unlink(item.path)


class _Unusable(Exception):
    """What is at the state path is not to be read; the message completes
    "state file PATH ..."."""


def _usable(info: os.stat_result) -> None:
    """Refuse what is not a regular file, is too large, or others could have written.

    A state file that another user can write is not trusted: whoever writes it can
    mark every service as "sent a minute ago" and silence its alerts.  Ignoring it
    costs at most one extra SMS, and the save that follows replaces it with a file
    of mode 0600 owned by this user, so the warning comes once.
    """
    if not stat.S_ISREG(info.st_mode):
        raise _Unusable(f"is {_kind(info.st_mode)}, not a regular file")
    if info.st_size > MAX_STATE_BYTES:
        raise _Unusable(f"is larger than {MAX_STATE_BYTES} bytes ({info.st_size})")
    if info.st_mode & 0o022:
        raise _Unusable(
            f"is writable by others (mode {stat.S_IMODE(info.st_mode):04o}), not trusted"
        )
    if info.st_uid not in (os.geteuid(), 0):
        raise _Unusable(f"belongs to another user (uid {info.st_uid}), not trusted")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number this program writes")
