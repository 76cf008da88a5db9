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
from tests.bench.table import Figure, median, mib, ms, paired_ratio, relative

PART = "1 cost"
CHECK_SMTP = "/usr/lib/nagios/plugins/check_smtp"
SENDER = "probe@verbs.test"
RECIPIENT = "postmaster@verbs.test"
CPU_WALL_FACTOR = 1.35  # issue 10: a plaintext check against `import nagiosplugin`
RSS_FACTOR = 1.20
FLOOR_CODE = "import nagiosplugin"
# The floor of the first round, when the check still imported smtplib: kept for context.
OLD_FLOOR_CODE = "import nagiosplugin, smtplib"
LEGEND = (
    f"1: floor = python -c '{FLOOR_CODE}' (same interpreter); old floor = python -c "
    f"'{OLD_FLOOR_CODE}' (the first round's floor, for context); check = the check_smtp_verbs "
    "console script of a compiled copy of this checkout, -f probe@verbs.test --rcpt "
    "postmaster@verbs.test against a private Postfix (banner, EHLO, MAIL, RCPT, QUIT); "
    "--help; option error = -p 99999 (exit 3); check -S = the same walk with STARTTLS "
    "(Postfix's certificate from a private CA, --ca-file); check --data = the same walk with "
    "DATA and the probe message; C check_smtp = Debian's check_smtp -f ... "
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


def find_check_smtp() -> str | None:
    return shutil.which("check_smtp", path=f"{CHECK_SMTP.rsplit('/', 1)[0]}")


def commands(
    install: Installation, host: str, port: int, ca_file: str | None = None
) -> list[Command]:
    py = install.python
    plugin = install.script("check_smtp_verbs")
    walk = ["-H", host, "-p", str(port), "-f", SENDER, "--rcpt", RECIPIENT]
    found = [
        Command("python -c pass", [py, "-c", "pass"], lambda c: c.status == 0),
        Command("floor", [py, "-c", FLOOR_CODE], lambda c: c.status == 0),
        Command("old floor", [py, "-c", OLD_FLOOR_CODE], lambda c: c.status == 0),
        Command(
            "check",
            [plugin, "-H", host, "-p", str(port), "-f", SENDER, "--rcpt", RECIPIENT],
            lambda c: (
                c.status == 0 and c.stdout.startswith("SMTP_VERBS OK") and "RCPT 250" in c.stdout
            ),
        ),
        Command("--help", [plugin, "--help"], lambda c: c.status == 0),
        # What the other paths cost (information, no target): STARTTLS loads ssl and
        # reads the CA store; --data loads the email package for the probe message.
        Command(
            "check -S",
            [plugin, *walk, "-S", *(["--ca-file", ca_file] if ca_file else ["--insecure"])],
            lambda c: c.status == 0 and "TLSv1" in c.stdout,
        ),
        Command(
            "check --data",
            [plugin, *walk, "--data"],
            lambda c: c.status == 0 and "DATA 354" in c.stdout,
        ),
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
    # pathlib and more before the first line of any program (see docs/benchmarks.md).
    lean = f"import sys; sys.path[:0] = {[str(install.lib), *install.site_packages]!r}; "
    check_code = "from check_smtp_verbs.entry import check; check()"
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


Costs = dict[str, list[Cost]]  # command name -> one Cost per measured round


def measure(
    launcher: Launcher,
    install: Installation,
    host: str,
    port: int,
    runs: int,
    warmup: int,
    ca_file: str | None = None,
) -> Costs:
    todo = commands(install, host, port, ca_file)
    costs: Costs = {c.name: [] for c in todo}
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
    return costs


def _values(found: list[Cost], what: str) -> list[float]:
    return [float(getattr(c, what)) for c in found]


_QUANTITIES = (("wall", "wall", ms), ("CPU", "cpu", ms), ("peak RSS", "rss", mib))


def _context(name: str, found: list[Cost]) -> list[Figure]:
    return [
        Figure(PART, f"{name}: {label}", shown(median(_values(found, what))))
        for label, what, shown in _QUANTITIES
    ]


def _against(
    name: str, found: list[Cost], base: list[Cost], base_name: str, targets: bool
) -> list[Figure]:
    """Rows of one command against a reference measured in the same rounds; with
    ``targets`` the issue's factors apply, else the ratio is shown for information."""
    out = []
    for label, what, shown in _QUANTITIES:
        values, references = _values(found, what), _values(base, what)
        if targets:
            factor = RSS_FACTOR if what == "rss" else CPU_WALL_FACTOR
            out.append(
                relative(PART, f"{name}: {label}", values, references, factor, shown, base_name)
            )
        else:
            out.append(
                Figure(
                    PART,
                    f"{name}: {label}",
                    shown(median(values)),
                    f"(ratio: ÷ {base_name})",
                    paired_ratio(values, references),
                )
            )
    return out


def _extra_cpu(name: str, found: list[Cost], base: list[Cost]) -> Figure:
    extra = median(a.cpu - b.cpu for a, b in zip(found, base))
    return Figure(PART, f"{name}: CPU beyond the floor", f"{extra * 1000:+.1f} ms")


def figures(costs: Costs) -> list[Figure]:
    """Context rows (no target), the plugin against the floor, the minimal plugin and
    the same without site (ratios for information), then check_smtp, whose ratio is
    check_smtp_verbs ÷ check_smtp."""
    floor, check = costs["floor"], costs["check"]
    out = _context("python -c pass", costs["python -c pass"]) + _context("floor", floor)
    out += _against("old floor", costs["old floor"], floor, "floor", targets=False)
    for name in ("check", "--help", "option error"):
        out += _against(name, costs[name], floor, "floor", targets=True)
    out.append(_extra_cpu("check", check, floor))
    for path in ("check -S", "check --data"):
        out += _against(path, costs[path], floor, "floor", targets=False)
        out.append(_extra_cpu(path, costs[path], floor))
    out += _against(
        "minimal nagiosplugin plugin",
        costs["minimal nagiosplugin plugin"],
        floor,
        "floor",
        targets=False,
    )
    lean_floor, lean_check = costs["floor, python -S"], costs["check, python -S"]
    out += _context("floor, python -S", lean_floor)
    out += _against("check, python -S", lean_check, lean_floor, "floor, python -S", targets=False)
    out.append(_extra_cpu("check, python -S", lean_check, lean_floor))
    if "C check_smtp" in costs:
        theirs = costs["C check_smtp"]
        for row, (_, what, _) in zip(_context("C check_smtp", theirs), _QUANTITIES):
            ratio = paired_ratio(_values(check, what), _values(theirs, what))
            out.append(row._replace(target="(ratio: ours ÷ theirs)", ratio=ratio))
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
