"""The asynchronous round trip's memory: which probes were sent and not yet found.

Where delivery can take longer than a check interval, ``--round-trip-state FILE``
makes each run send one probe and collect the earlier ones.  This file remembers them
between runs:

* a probe is *pending* from the run that sent it until a run finds it in the mailbox;
* a pending probe older than ``--lost-after`` is *lost*, and stays counted as lost
  (CRITICAL) for another ``--lost-after``, so that a lost probe is seen by more than
  the one run that noticed; a lost probe that turns up later is deleted and named
  "late", but it still counts as lost: it missed the limit.

The file is shared by every run of one service and, since several checks may point at
one file by mistake, kept per mailbox (URL, user and folder).  It is written the way
the notifier's store is (check_smtp_verbs/notify/throttle.py): a lock file beside it
that is never replaced, a temporary file, fsync, rename over the old one; a reader
sees the old state or the new one, never half of either.  The lock is held only while
reading and writing the file, never across the network: the run records its probe,
lets go, visits the mailbox, then locks again to settle what it found.

A corrupt or unreadable file is not fatal: it is reported, and replaced by a fresh
one.  The probes it knew of are forgotten (they can no longer be counted as lost), which
is why the report is worth a line in the output.

Unlike the notifier, waiting for the lock does not use SIGALRM: nagiosplugin's own
timeout is an alarm, and a second one would silently cancel it.  A helper thread waits
in flock() and the run waits for it no longer than its deadline allows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from check_smtp_verbs.core.deadline import Deadline, DeadlineExceeded
from check_smtp_verbs.files import replace_atomically

VERSION = 1


class StoreError(Exception):
    """The state file cannot be locked or written; the message is one line."""


class LostProbe(NamedTuple):
    sent: float  # epoch seconds
    lost_at: float  # when a run declared it lost
    arrived: float | None = None  # when it turned up after all (then it is no longer sought)


class Ledger(NamedTuple):
    """What the file knows of one mailbox."""

    pending: dict[str, float]  # Message-ID -> sent (epoch seconds)
    lost: dict[str, LostProbe]


class Tally(NamedTuple):
    """What a run reports after settling."""

    pending: int
    lost: int
    delivered: dict[str, float]  # Message-ID -> seconds from sending to arrival, found now
    newest_delivery: float | None  # of the most recently sent probe found now
    late: tuple[str, ...]  # lost probes found now, after all


def _ledger_from_json(raw: Any) -> Ledger:
    """Validate one mailbox's entry; ValueError if this program did not write it."""
    if not isinstance(raw, dict):
        raise ValueError("a mailbox entry is not an object")
    pending_raw = raw.get("pending", {})
    lost_raw = raw.get("lost", {})
    if not isinstance(pending_raw, dict) or not isinstance(lost_raw, dict):
        raise ValueError("pending or lost is not an object")
    pending = {str(key): _number(value, "sent") for key, value in pending_raw.items()}
    lost = {}
    for key, value in lost_raw.items():
        if not isinstance(value, dict):
            raise ValueError("a lost probe is not an object")
        arrived = value.get("arrived")
        lost[str(key)] = LostProbe(
            _number(value.get("sent"), "sent"),
            _number(value.get("lost_at"), "lost_at"),
            None if arrived is None else _number(arrived, "arrived"),
        )
    return Ledger(pending, lost)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is not a number")
    return float(value)


class RoundTripState:
    """The state file, seen from one mailbox (``key``)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.lock_path = path.with_name(path.name + ".lock")
        self.problems: list[str] = []  # corrupt or unreadable file, reported once each

    def record_sent(self, message_id: str, sent: float, deadline: Deadline) -> dict[str, float]:
        """Remember a probe the server accepted; returns every probe to look for
        (pending and lost ones not found yet), Message-ID -> sent."""
        with self._transaction(deadline) as ledger:
            ledger.pending[message_id] = sent
            return self._sought(ledger)

    def sought(self, deadline: Deadline) -> dict[str, float]:
        """The probes to look for, without recording a new one."""
        with self._transaction(deadline, write=False) as ledger:
            return self._sought(ledger)

    @staticmethod
    def _sought(ledger: Ledger) -> dict[str, float]:
        wanted = dict(ledger.pending)
        wanted.update({mid: lost.sent for mid, lost in ledger.lost.items() if lost.arrived is None})
        return wanted

    def settle(
        self, found: dict[str, float], now: float, lost_after: float, deadline: Deadline
    ) -> Tally:
        """Record what a run found (Message-ID -> arrival, epoch seconds), declare the
        overdue probes lost and forget the lost ones whose time to be reported is over.

        Another run may have settled some of the same probes meanwhile (two runs
        overlapping): what is no longer pending is simply not counted twice.
        """
        delivered: dict[str, float] = {}
        late: list[str] = []
        newest: tuple[float, float] | None = None
        with self._transaction(deadline) as ledger:
            for message_id, arrived in found.items():
                if message_id in ledger.pending:
                    sent = ledger.pending.pop(message_id)
                    seconds = max(0.0, arrived - sent)
                    delivered[message_id] = seconds
                    if newest is None or sent > newest[0]:
                        newest = (sent, seconds)
                elif message_id in ledger.lost and ledger.lost[message_id].arrived is None:
                    ledger.lost[message_id] = ledger.lost[message_id]._replace(arrived=arrived)
                    late.append(message_id)
            for message_id, sent in list(ledger.pending.items()):
                if now - sent > lost_after:
                    del ledger.pending[message_id]
                    ledger.lost[message_id] = LostProbe(sent, now)
            for message_id, lost in list(ledger.lost.items()):
                if now - lost.lost_at > lost_after:
                    del ledger.lost[message_id]
            return Tally(
                len(ledger.pending),
                len(ledger.lost),
                delivered,
                newest[1] if newest else None,
                tuple(late),
            )

    @contextlib.contextmanager
    def _transaction(self, deadline: Deadline, write: bool = True) -> Iterator[Ledger]:
        """Lock, read this mailbox's ledger, let the caller change it, write it back."""
        fd = self._lock(deadline)
        try:
            document = self._load()
            ledger = document["mailboxes"].get(self.key) or Ledger({}, {})
            yield ledger
            if write:
                if ledger.pending or ledger.lost:
                    document["mailboxes"][self.key] = ledger
                else:
                    document["mailboxes"].pop(self.key, None)
                self._save(document)
        finally:
            os.close(fd)  # releases the lock

    def _lock(self, deadline: Deadline) -> int:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise StoreError(
                f"cannot use the state directory {self.path.parent}: it is not a directory"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot use the state file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.lock_path}: {exc.strerror}") from None
        outcome: list[OSError | None] = []
        done = threading.Event()
        guard = threading.Lock()
        abandoned: list[bool] = []

        def take() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                result: OSError | None = None
            except OSError as exc:
                result = exc
            with guard:
                if abandoned:  # the run gave up waiting: let go at once, for the others
                    os.close(fd)
                    return
                outcome.append(result)
                done.set()

        threading.Thread(target=take, name="state-lock", daemon=True).start()
        with contextlib.suppress(DeadlineExceeded):  # no time left: do not wait at all
            done.wait(deadline.remaining())
        with guard:
            if not outcome:
                abandoned.append(True)  # the thread closes fd if flock() ever returns
                raise StoreError(f"could not lock {self.lock_path} before the timeout")
        if outcome[0] is not None:
            os.close(fd)
            raise StoreError(f"cannot lock {self.lock_path}: {outcome[0].strerror}")
        return fd

    def _load(self) -> dict[str, Any]:
        fresh: dict[str, Any] = {"version": VERSION, "mailboxes": {}}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return fresh
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            self._problem(f"state file {self.path} is unreadable ({why}); starting afresh")
            return fresh
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or not isinstance(raw.get("mailboxes"), dict):
                raise ValueError("not a check_smtp_verbs round-trip state file")
            if raw.get("version") != VERSION:
                raise ValueError(f"version {raw.get('version')!r}, not {VERSION}")
            mailboxes = {str(k): _ledger_from_json(v) for k, v in raw["mailboxes"].items()}
        except ValueError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._problem(f"state file {self.path} is corrupt ({reason}); starting afresh")
            return fresh
        return {"version": VERSION, "mailboxes": mailboxes}

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def _save(self, document: dict[str, Any]) -> None:
        mailboxes = {
            key: {
                "pending": dict(sorted(ledger.pending.items())),
                "lost": {mid: lost._asdict() for mid, lost in sorted(ledger.lost.items())},
            }
            for key, ledger in sorted(document["mailboxes"].items())
        }
        data = json.dumps({"version": VERSION, "mailboxes": mailboxes}, indent=1) + "\n"
        try:
            replace_atomically(self.path, data.encode("utf-8"))
        except OSError as exc:
            raise StoreError(f"cannot write the state file {self.path}: {exc.strerror}") from None
