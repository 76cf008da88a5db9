"""Part 1: what one check costs as a whole process, next to its floor and check_smtp.

Every command is a fresh process, as under Nagios or Icinga.  The commands are run
round-robin (one of each per round) rather than one after another, so a burst of load
from a neighbour skews all of them alike instead of one of them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import NamedTuple

from tests.bench.cost import HERE, Cost, Launcher
from tests.bench.install import Installation
from tests.bench.phases import PHASES
from tests.bench.table import Figure, median, mib, ms, relative

PART = "1 cost"
CHECK_SMTP = "/usr/lib/nagios/plugins/check_smtp"
SENDER = "probe@verbs.test"
RECIPIENT = "postmaster@verbs.test"
CPU_WALL_FACTOR = 1.15
RSS_FACTOR = 1.10
FLOOR_CODE = "import nagiosplugin, smtplib"
LEGEND = (
    f"1: floor = python -c '{FLOOR_CODE}' (same interpreter); check = the check_smtp_verbs "
    "console script of a compiled copy of this checkout, -f probe@verbs.test --rcpt "
    "postmaster@verbs.test against a private Postfix (banner, EHLO, MAIL, RCPT, QUIT); "
    "--help; option error = -p 99999 (exit 3); C check_smtp = Debian's check_smtp -f ... "
    "-C 'RCPT TO:<...>' -R 250, the same conversation; minimal nagiosplugin plugin = "
    "tests/bench/minimal_plugin.py, the same walk in the idiom's fewest lines; python -S = "
    "without site (no .pth hooks), the package and site-packages put on sys.path by hand. "
    "CPU in the check: time.process_time() around each phase inside the check "
    "(tests/bench/phases.py): " + "; ".join(f"{name} = {what}" for name, what in PHASES) + "."
)


class Command(NamedTuple):
    name: str
    argv: list[str]
    ok: Callable[[Cost], bool]  # did it do what we meant to measure?


class Medians(NamedTuple):
    wall: float
    cpu: float
    rss: float


def find_check_smtp() -> str | None:
    return shutil.which("check_smtp", path=f"{CHECK_SMTP.rsplit('/', 1)[0]}")


def commands(install: Installation, host: str, port: int) -> list[Command]:
    py = install.python
    plugin = install.script("check_smtp_verbs")
    walk = ["-H", host, "-p", str(port), "-f", SENDER, "--rcpt", RECIPIENT]
    found = [
        Command("python -c pass", [py, "-c", "pass"], lambda c: c.status == 0),
        Command("floor", [py, "-c", FLOOR_CODE], lambda c: c.status == 0),
        Command(
            "check",
            [plugin, "-H", host, "-p", str(port), "-f", SENDER, "--rcpt", RECIPIENT],
            lambda c: (
                c.status == 0 and c.stdout.startswith("SMTP_VERBS OK") and "RCPT 250" in c.stdout
            ),
        ),
        Command("--help", [plugin, "--help"], lambda c: c.status == 0),
        Command(
            "option error",
            [plugin, "-H", host, "-p", "99999"],
            lambda c: c.status == 3 and c.stdout.startswith("SMTP_VERBS UNKNOWN - --port"),
        ),
    ]
    found.append(
        Command(
            "minimal nagiosplugin plugin",
            [py, str(HERE / "minimal_plugin.py"), *walk],
            lambda c: c.status == 0 and c.stdout.startswith("WALK OK"),
        )
    )
    # The same two without site: no .pth hooks, which on some machines import typing,
    # pathlib and more before the first line of any program (see the README).
    lean = f"import sys; sys.path[:0] = {[str(install.lib), *install.site_packages]!r}; "
    check_code = "from check_smtp_verbs.cli import main; sys.exit(main())"
    found += [
        Command("floor, python -S", [py, "-S", "-c", lean + FLOOR_CODE], lambda c: c.status == 0),
        Command(
            "check, python -S",
            [py, "-S", "-c", lean + check_code, *walk],
            lambda c: c.status == 0 and c.stdout.startswith("SMTP_VERBS OK"),
        ),
    ]
    check_smtp = find_check_smtp()
    if check_smtp is not None:
        found.append(
            Command(
                "C check_smtp",
                [
                    check_smtp,
                    "-H",
                    host,
                    "-p",
                    str(port),
                    "-f",
                    SENDER,
                    "-C",
                    f"RCPT TO:<{RECIPIENT}>",
                    "-R",
                    "250",
                ],
                lambda c: c.status == 0 and c.stdout.startswith("SMTP OK"),
            )
        )
    return found


def measure(
    launcher: Launcher, install: Installation, host: str, port: int, runs: int, warmup: int
) -> tuple[dict[str, Medians], list[str]]:
    todo = commands(install, host, port)
    costs: dict[str, list[Cost]] = {c.name: [] for c in todo}
    for round_number in range(warmup + runs):
        for command in todo:
            cost = launcher.run(command.argv, env=install.env)
            if not command.ok(cost):
                raise RuntimeError(
                    f"{command.name} did not do what is measured (exit {cost.status}):\n"
                    f"{' '.join(command.argv)}\n{cost.stdout}"
                )
            if round_number >= warmup:
                costs[command.name].append(cost)
    medians = {
        name: Medians(
            median(c.wall for c in found),
            median(c.cpu for c in found),
            median(c.rss for c in found),
        )
        for name, found in costs.items()
    }
    return medians, [c.name for c in todo]


def _three(name: str, m: Medians) -> list[Figure]:
    return [
        Figure(PART, f"{name}: wall", ms(m.wall)),
        Figure(PART, f"{name}: CPU", ms(m.cpu)),
        Figure(PART, f"{name}: peak RSS", mib(m.rss)),
    ]


def figures(medians: dict[str, Medians]) -> list[Figure]:
    """Context rows (no target), the plugin's rows against the floor, the same without
    site (ratio against the floor without site, for information), then check_smtp's,
    whose ratio column is check_smtp_verbs ÷ check_smtp."""
    floor, check = medians["floor"], medians["check"]
    out = _three("python -c pass", medians["python -c pass"]) + _three("floor", floor)
    for name in ("check", "--help", "option error"):
        m = medians[name]
        out += [
            relative(PART, f"{name}: wall", m.wall, floor.wall, CPU_WALL_FACTOR, ms(m.wall)),
            relative(PART, f"{name}: CPU", m.cpu, floor.cpu, CPU_WALL_FACTOR, ms(m.cpu)),
            relative(PART, f"{name}: peak RSS", m.rss, floor.rss, RSS_FACTOR, mib(m.rss)),
        ]
    out.append(Figure(PART, "check - floor: CPU", f"{(check.cpu - floor.cpu) * 1000:+.1f} ms"))
    minimal = medians["minimal nagiosplugin plugin"]
    for row, value, base in zip(
        _three("minimal nagiosplugin plugin", minimal),
        (minimal.wall, minimal.cpu, minimal.rss),
        (floor.wall, floor.cpu, floor.rss),
    ):
        out.append(row._replace(target="(ratio: ÷ floor)", ratio=value / base))
    lean_floor, lean_check = medians["floor, python -S"], medians["check, python -S"]
    out += _three("floor, python -S", lean_floor)
    for row, mine, base in zip(
        _three("check, python -S", lean_check),
        (lean_check.wall, lean_check.cpu, lean_check.rss),
        (lean_floor.wall, lean_floor.cpu, lean_floor.rss),
    ):
        out.append(row._replace(target="(ratio: ÷ floor, python -S)", ratio=mine / base))
    out.append(
        Figure(
            PART,
            "check - floor, python -S: CPU",
            f"{(lean_check.cpu - lean_floor.cpu) * 1000:+.1f} ms",
        )
    )
    if "C check_smtp" in medians:
        theirs = medians["C check_smtp"]
        for row, mine, their in zip(
            _three("C check_smtp", theirs),
            (check.wall, check.cpu, check.rss),
            (theirs.wall, theirs.cpu, theirs.rss),
        ):
            out.append(row._replace(target="(ratio: ours ÷ theirs)", ratio=mine / their))
    else:
        out.append(Figure(PART, "C check_smtp", "-", note="skipped: not installed"))
    return out


def phase_figures(install: Installation, host: str, port: int, runs: int) -> list[Figure]:
    """CPU per phase inside the check (tests/bench/phases.py), with site and with -S."""
    import subprocess
    from collections import defaultdict

    script = str(HERE / "phases.py")
    walk = ["-H", host, "-p", str(port), "-f", SENDER, "--rcpt", RECIPIENT]
    lean = f"import sys; sys.path[:0] = {[str(install.lib), *install.site_packages]!r}; "
    # exec, not runpy: runpy's own imports would hide what the check imports
    run_script = (
        f"exec(compile(open({script!r}).read(), {script!r}, 'exec'), {{'__name__': '__main__'}})"
    )
    modes = {
        "site": [install.python, script, *walk],
        "-S": [install.python, "-S", "-c", lean + run_script, *walk],
    }
    found: dict[str, dict[int, list[float]]] = {mode: defaultdict(list) for mode in modes}
    for _ in range(runs):
        for mode, argv in modes.items():
            done = subprocess.run(
                argv,
                env=install.env,
                cwd=install.prefix,
                capture_output=True,
                text=True,
                timeout=60,
            )
            for field in done.stderr.split():
                number, _, value = field.partition("=")
                found[mode][int(number)].append(float(value) / 1000)
    out = []
    for number, (name, _) in enumerate(PHASES):
        with_site, without = median(found["site"][number]), median(found["-S"][number])
        out.append(Figure(PART, f"CPU in the check: {name}", ms(with_site), f"-S: {ms(without)}"))
    beyond = [sum(median(found[mode][n]) for n in range(1, len(PHASES))) for mode in modes]
    out.append(
        Figure(PART, "CPU in the check beyond the floor", ms(beyond[0]), f"-S: {ms(beyond[1])}")
    )
    return out
