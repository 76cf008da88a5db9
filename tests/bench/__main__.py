"""``python3 -m tests.bench``: run the benchmark suite and print its table.

Exit status 0 when every figure with a target passes, 1 when one fails, 2 when the
suite itself could not run.  See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from tests.bench import accuracy, fanout, notifier, startup
from tests.bench.cost import Launcher, load, make_workdir, remove_workdir
from tests.bench.install import Installation
from tests.bench.table import Figure, median, render
from tests.smtpd import Script, SMTPTestServer

PARTS = {
    1: "start-up and per-check cost",
    2: "timing accuracy",
    3: "no idle waiting",
    4: "MX fan-out",
    5: "notifier",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m tests.bench",
        description="Benchmarks of check_smtp_verbs against local servers: "
        + "; ".join(f"{n} {what}" for n, what in PARTS.items())
        + ". Run from the repository root; Postfix needs root.",
    )
    p.add_argument("--runs", type=int, default=15, help="measured runs per process-cost figure")
    p.add_argument(
        "--slow-runs",
        type=int,
        default=7,
        help="measured runs per figure that waits on purpose (delays, fan-out)",
    )
    p.add_argument("--warmup", type=int, default=2, help="unmeasured runs first (default 2)")
    p.add_argument("--parts", default="1,2,3,4,5", help="comma list of parts to run (default: all)")
    args = p.parse_args(argv)
    try:
        args.parts = sorted({int(x) for x in args.parts.split(",")})
    except ValueError:
        p.error(f"--parts wants numbers like 1,4, not {args.parts!r}")
    if not set(args.parts) <= set(PARTS):
        p.error(f"--parts: known parts are {', '.join(map(str, PARTS))}")
    if args.runs < 1 or args.slow_runs < 1 or args.warmup < 0:
        p.error("--runs and --slow-runs must be at least 1, --warmup at least 0")
    return args


def server_for_part_1(stack: contextlib.ExitStack, workdir: Path) -> tuple[str, int, str, str]:
    """A private Postfix offering STARTTLS with a certificate of a private CA, as the
    issue asks; where none can run (not root, not installed), the project's test
    server, and the header says so.  Returns host, port, description, CA file."""
    import trustme

    from tests.postfix import PrivatePostfix, find_postfix

    ca = trustme.CA()
    ca_file = workdir / "bench-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued = ca.issue_cert("127.0.0.1", "localhost")
    if find_postfix() is None:
        why_not = "Postfix is not installed (.ci/install-system-packages)"
    elif os.geteuid() != 0:
        why_not = "a private Postfix must be started as root"
    else:
        postfix = stack.enter_context(PrivatePostfix())
        cert_file, key_file = workdir / "bench-cert.pem", workdir / "bench-key.pem"
        issued.cert_chain_pems[0].write_to_path(str(cert_file))
        issued.private_key_pem.write_to_path(str(key_file))
        postfix.enable_starttls(cert_file, key_file)
        return postfix.host, postfix.port, "a private Postfix", str(ca_file)
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    issued.configure_cert(context)
    server = stack.enter_context(SMTPTestServer(Script(tls_context=context)))
    return server.host, server.port, f"the project's test server ({why_not})", str(ca_file)


def pending(part: int, reason: str) -> Figure:
    return Figure(
        f"{part} {PARTS[part]}",
        f"pending: {reason}",
        "-",
        note=f"pending; run: python3 -m tests.bench --parts {part}",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = make_workdir()
    figures: list[Figure] = []
    load_before = load()
    loads: dict[int, float] = {}  # 1-minute load average as each part began
    server_text = ""
    stack = contextlib.ExitStack()
    try:
        launcher = Launcher(workdir)
        install = Installation(workdir / "install")
        floor_cpu = 0.0
        if 1 in args.parts:
            loads[1] = os.getloadavg()[0]
            with stack:
                host, port, server_text, ca_file = server_for_part_1(stack, workdir)
                costs = startup.measure(
                    launcher, install, host, port, args.runs, args.warmup, ca_file
                )
                figures += startup.figures(costs)
                figures += startup.phase_figures(install, host, port, args.runs)
            floor_cpu = median(c.cpu for c in costs["floor"])
        if 2 in args.parts or 3 in args.parts:
            loads[2] = os.getloadavg()[0]
            found = accuracy.measure(install, args.slow_runs, args.warmup)
            figures += [f for f in found if int(f.part.split()[0]) in args.parts]
        optional: dict[
            int, tuple[Callable[[Installation], str | None], Callable[[], list[Figure]]]
        ] = {
            4: (
                fanout.available,
                lambda: fanout.measure(launcher, install, args.slow_runs, args.warmup),
            ),
            5: (
                notifier.available,
                lambda: notifier.measure(
                    launcher,
                    install,
                    floor_cpu or floor_cpu_alone(launcher, install),
                    args.runs,
                    args.warmup,
                ),
            ),
        }
        for part, (why_not_yet, run) in optional.items():
            if part not in args.parts:
                continue
            reason = why_not_yet(install)
            if not reason:
                loads[part] = os.getloadavg()[0]
            figures += [pending(part, reason)] if reason else run()
    except Exception as error:  # the suite's own failure: say what, keep the table so far
        print(render(figures), file=sys.stderr)
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    finally:
        stack.close()
        remove_workdir(workdir)
    header = [
        f"check_smtp_verbs benchmarks, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"commit {commit()}",
        f"python {platform.python_version()} ({install.python}), {platform.machine()}, "
        f"{load_before} at the start",
        "1-minute load as each part began: "
        + ", ".join(f"part {part} {value:.2f}" for part, value in loads.items())
        + (" (part 5's storms load the machine themselves)" if 5 in loads else ""),
        f"medians of {args.runs} runs ({args.slow_runs} for delays and fan-out) after "
        f"{args.warmup} warm-up runs; launcher: {launcher.kind}, "
        f"its own peak RSS {launcher.rss_floor / 1024:.1f} MiB",
        *([f"part 1 checks against {server_text}"] if server_text else []),
        "",
    ]
    legend = [""] + [
        textwrap.fill(text, 100, subsequent_indent="   ")
        for part, text in ((1, startup.LEGEND),)
        if part in args.parts
    ]
    print(render(figures, header))
    print("\n".join(legend))
    return 1 if any(f.passed is False for f in figures) else 0


def floor_cpu_alone(launcher: Launcher, install: Installation) -> float:
    """The floor's CPU time when part 1 did not run (for the notifier's storm line)."""
    argv = [install.python, "-c", startup.FLOOR_CODE]
    return median(launcher.run(argv, env=install.env).cpu for _ in range(5))


def commit() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
