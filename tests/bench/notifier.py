"""Part 5: notify_sms_mail under a notification storm, and what one alert costs.

Icinga runs notification commands in parallel: when a gateway breaks, every service
on it notifies at once.  Fifty processes are started together for one throttle key;
exactly one message may reach the gateway (the project's test server) and all fifty
must have finished within 3 s.  That is a CPU race as much as a lock race: fifty
interpreter start-ups on this machine's cores take a good part of those 3 s, which the
table shows as its own line.

One alert is also costed as a process, like a check: one that is sent (a fresh state
file each time) and one that the throttle suppresses.  Its floor is the first round's,
``import nagiosplugin, smtplib``, against which its 1.2 target was set: an alert that
is sent builds a mail with the ``email`` package, which smtplib used to bring along,
so the check's leaner floor (part 1) would change the target's meaning, not the code's
cost.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

from tests.bench.cost import Cost, Launcher
from tests.bench.install import Installation
from tests.bench.startup import OLD_FLOOR_CODE
from tests.bench.table import Figure, absolute, median, mib, ms, relative
from tests.smtpd import Script, SMTPTestServer

PART = "5 notifier"
CONCURRENT = 50
STORM_LIMIT = 3.0
FACTOR = 1.2
TO = "0419999999@sms.example.net"
FROM = "mailserverwarning@example.net"
QUANTITIES = (("wall", "wall", ms), ("CPU", "cpu", ms), ("peak RSS", "rss", mib))


def available(install: Installation) -> str | None:
    if "notify_sms_mail" not in install.scripts:
        return "no notify_sms_mail console script in setup.cfg yet (issue 5)"
    return None


def alert(install: Installation, server: SMTPTestServer, state_file: Path) -> list[str]:
    return [
        install.script("notify_sms_mail"),
        "--to",
        TO,
        "--from",
        FROM,
        "--smtp-server",
        f"{server.host}:{server.port}",
        "--type",
        "PROBLEM",
        "--host",
        "mx1",
        "--service",
        "smtp-verbs",
        "--state",
        "CRITICAL",
        "--output",
        "SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> answered 451",
        "--state-file",
        str(state_file),
    ]


def storm(
    install: Installation, server: SMTPTestServer, state_file: Path
) -> tuple[float, int, float]:
    """Start CONCURRENT alerts for one key at once; (seconds until the last one ended,
    messages delivered, CPU seconds of all of them together)."""
    server.messages.clear()
    argv = alert(install, server, state_file)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            argv,
            env=install.env,
            cwd=install.prefix,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(CONCURRENT)
    ]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    failed = [(c.returncode, o) for c, o in zip(children, outputs) if c.returncode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {CONCURRENT} alerts failed, e.g. {failed[0]!r}")
    return seconds, len(server.messages), cpu


def measure(
    launcher: Launcher, install: Installation, floor_cpu: float, runs: int, warmup: int
) -> list[Figure]:
    figures = []
    state_dir = install.prefix / "notify-state"
    state_dir.mkdir()
    with SMTPTestServer(Script()) as server:
        rounds = max(3, runs // 3)
        storms = [storm(install, server, state_dir / f"storm-{n}.json") for n in range(rounds)]
        figures.append(
            Figure(
                PART,
                f"{CONCURRENT} concurrent alerts, one key: messages delivered ({rounds} storms)",
                ", ".join(str(count) for _, count, _ in storms),
                "exactly 1 each",
                None,
                all(count == 1 for _, count, _ in storms),
            )
        )
        figures.append(
            absolute(
                PART,
                f"{CONCURRENT} concurrent alerts: until the last one ended (median)",
                median(seconds for seconds, _, _ in storms),
                STORM_LIMIT,
                unit_ms=False,
            )
        )
        cores = os.cpu_count() or 1
        figures += [
            Figure(
                PART,
                f"  CPU of all {CONCURRENT} together / {cores} cores (median)",
                f"{median(cpu for _, _, cpu in storms) / cores:.2f} s",
            ),
            Figure(
                PART,
                f"  {CONCURRENT} × the floor's CPU / {cores} cores",
                f"{CONCURRENT * floor_cpu / cores:.2f} s",
            ),
        ]

        floor_argv = [install.python, "-c", OLD_FLOOR_CODE]
        suppressed_state = state_dir / "suppressed.json"
        first = launcher.run(alert(install, server, suppressed_state), env=install.env)
        if first.status != 0:
            raise RuntimeError(f"the first alert failed:\n{first.stdout}")
        costs: dict[str, list[Cost]] = {"floor": [], "sent": [], "suppressed": []}
        for number in range(warmup + runs):
            sent_before = len(server.messages)
            found = {
                "floor": launcher.run(floor_argv, env=install.env),
                "sent": launcher.run(
                    alert(install, server, state_dir / f"fresh-{number}.json"), env=install.env
                ),
                "suppressed": launcher.run(
                    alert(install, server, suppressed_state), env=install.env
                ),
            }
            if (
                any(c.status != 0 for c in found.values())
                or len(server.messages) != sent_before + 1
            ):
                raise RuntimeError(
                    "an alert did not do what is measured: "
                    + "; ".join(
                        f"{k}: exit {c.status} {c.stdout.strip()}" for k, c in found.items()
                    )
                )
            if number >= warmup:
                for name, cost in found.items():
                    costs[name].append(cost)
    floor = costs["floor"]
    figures += [
        Figure(
            PART,
            f"old floor (measured alongside): {label}",
            shown(median(getattr(c, what) for c in floor)),
        )
        for label, what, shown in QUANTITIES
    ]
    for name in ("sent", "suppressed"):
        figures += [
            relative(
                PART,
                f"one alert, {name}: {label}",
                [getattr(c, what) for c in costs[name]],
                [getattr(c, what) for c in floor],
                FACTOR,
                shown,
            )
            for label, what, shown in QUANTITIES
        ]
    return figures
