"""--mx: every MX host of a domain, walked concurrently, each under its own deadline.

A domain's mail is only as good as its worst MX: senders fall back to the second host
exactly when the first is down, so a broken backup goes unnoticed until the day it is
needed.  This module asks DNS (dnspython, imported only here) for the MX records, falls
back to the domain's own address records when there are none (RFC 5321 5.1), refuses a
null MX (RFC 7505), and then runs the ordinary walk against every host at once.  Host
addresses come from the same DNS server as the MX records (--resolver), never from the
system resolver, so what is checked is what that server tells senders.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.core.dns import MxHost, lookup, make_resolver, resolve_with
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.probe import walk
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Run, Step, StepResult, Target, TargetWalk, Walk

_UNSAFE_LABEL = re.compile(r"[^A-Za-z0-9.-]")


def label_prefix(host: str) -> str:
    """The perfdata label prefix: nagiosplugin refuses labels with ' or =, and DNS names
    may carry any byte, so anything but letters, digits, dot and hyphen becomes _."""
    return _UNSAFE_LABEL.sub("_", host) + "_"


def target(host: MxHost) -> Target:
    return Target(host.name, label_prefix(host.name), host.preference)


def walk_all(settings: Settings) -> Run:
    """Look up the MX hosts, then walk them all at once; each walk ends by the deadline."""
    started = clock()
    deadline = Deadline(settings.timeout, start=started)
    side: list[tuple[Any, Any]] = []
    side_thread = None
    if settings.mta_sts is not None or settings.dane is not None:
        from check_smtp_verbs import mta_sts

        side_thread = threading.Thread(
            target=lambda: side.append(mta_sts.domain_lookups(settings, deadline)),
            name="mta-sts",
            daemon=True,
        )
        side_thread.start()
    resolver = make_resolver(settings.resolver)
    found = lookup(settings.host, settings.family, resolver, deadline)
    resolve = resolve_with(resolver)
    walks: list[Walk | None] = [None] * len(found.hosts)

    def run(index: int, host: MxHost) -> None:
        own = deadline.within(settings.timeout)  # its own clock, never past the run's end
        mine = settings._replace(host=host.name)
        walks[index] = walk(mine, own, resolve)
        if settings.mta_sts is not None and settings.starttls == "optional":
            from check_smtp_verbs import mta_sts

            walks[index] = mta_sts.again_without_pkix(walks[index], mine, own, resolve)

    threads = [
        threading.Thread(target=run, args=(n, host), name=f"mx {host.name}", daemon=True)
        for n, host in enumerate(found.hosts)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Every walk is bounded by its deadline; the slack only covers thread start-up.
        thread.join(max(0.0, deadline.end - clock()) + 1.0)
    done = tuple(
        TargetWalk(target(host), w if w is not None else _unfinished(settings, host))
        for w, host in zip(walks, found.hosts)
    )
    if side_thread is None:
        return Run(done, clock() - started, found)
    side_thread.join(max(0.0, deadline.end - clock()) + 1.0)
    policy, reporting = side[0] if side else (None, None)
    sts = None
    if policy is not None:
        from check_smtp_verbs import mta_sts

        walked = [(w.target.name, w.walk) for w in done]
        sts = mta_sts.report(policy, walked, settings.mta_sts == "required")
    return Run(done, clock() - started, found, sts, reporting)


def _unfinished(settings: Settings, host: MxHost) -> Walk:
    """A walk whose thread outlived the deadline (it cannot: every call is bounded), shown
    as a timeout rather than silently left out of the count."""
    step = Step("connect", "connect", f"connect to {host.name}:{settings.port}", "", None)
    error = f"timeout after {settings.timeout:g}s: the walk of {host.name} did not finish"
    result = StepResult(step, error=error, timed_out=True)
    return Walk(host.name, settings.port, None, (result,), settings.timeout, Transcript())
