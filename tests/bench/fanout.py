"""Part 4: ``--mx`` walks every MX host at once, so ten slow hosts cost about one.

Ten test servers on 127.0.0.2-127.0.0.11 (one port, as ``-p`` gives one port for every
MX host) each hold back their banner for 300 ms; a loopback DNS server answers for the
domain with ten MX records.  The whole ``--mx`` run, as a process, is compared with a
plain ``-H`` run against one of those hosts: run one after another it would be ten
times as long; the target is 1.3 times.  The ``--mx`` run also pays for importing
dnspython, which the ``-H`` run does not; that is part of what is measured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.bench.cost import Launcher
from tests.bench.install import Installation
from tests.bench.table import Figure, median, ms, relative
from tests.smtpd import Script, SMTPTestServer

PART = "4 MX fan-out"
HOSTS = 10
BANNER_DELAY = 0.3
FACTOR = 1.3
DOMAIN = "fanout.test"
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 2 + HOSTS)]


@contextlib.contextmanager
def mx_servers() -> Iterator[list[SMTPTestServer]]:
    """Ten slow-banner servers on one port; retried when another test holds the port."""
    for _attempt in range(5):
        servers: list[SMTPTestServer] = []
        try:
            first = SMTPTestServer(Script(delays={"BANNER": BANNER_DELAY}), ADDRESSES[0]).start()
            servers.append(first)
            for address in ADDRESSES[1:]:
                script = Script(delays={"BANNER": BANNER_DELAY})
                servers.append(SMTPTestServer(script, address, first.port).start())
        except OSError:
            for server in servers:
                server.stop()
            continue
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()
        return
    raise RuntimeError("no port free on all of 127.0.0.2-11")


@contextlib.contextmanager
def dns_server() -> Iterator[str]:
    """A loopback DNS server answering for DOMAIN; yields the value for --resolver."""
    from tests.dnsd import DNSTestServer

    server = DNSTestServer()
    server.add(DOMAIN, "MX", [f"{10 * n} mx{n}.{DOMAIN}." for n in range(1, HOSTS + 1)])
    for n, address in enumerate(ADDRESSES, start=1):
        server.add(f"mx{n}.{DOMAIN}", "A", [address])
    with server:
        yield server.address


def available(install: Installation) -> str | None:
    """Why part 4 cannot run yet, or None."""
    try:
        import tests.dnsd  # noqa: F401
    except ImportError:
        return "tests/dnsd.py (issue 4) not on this branch yet"
    help_text = install.run_text([install.script("check_smtp_verbs"), "--help"])
    if "--mx" not in help_text:
        return "check_smtp_verbs has no --mx yet (issue 4)"
    return None


def measure(launcher: Launcher, install: Installation, runs: int, warmup: int) -> list[Figure]:
    plugin = install.script("check_smtp_verbs")
    walk = ["-f", "probe@example.net", "--rcpt", "postmaster@example.net"]
    with mx_servers() as servers, dns_server() as resolver:
        port = str(servers[0].port)
        single = [plugin, "-H", ADDRESSES[0], "-p", port, *walk]
        fanout = [plugin, "--mx", DOMAIN, "--resolver", resolver, "-p", port, *walk]
        walls: dict[str, list[float]] = {"single": [], "mx": []}
        for number in range(warmup + runs):
            for name, argv in (("single", single), ("mx", fanout)):
                before = [s.connections for s in servers]
                cost = launcher.run(argv, env=install.env)
                walked = [s.connections - b for s, b in zip(servers, before)]
                wanted = [1] * HOSTS if name == "mx" else [1] + [0] * (HOSTS - 1)
                if cost.status != 0 or walked != wanted:
                    raise RuntimeError(
                        f"{name} run did not walk the hosts it should (exit {cost.status}, "
                        f"connections {walked}):\n{' '.join(argv)}\n{cost.stdout}"
                    )
                if number >= warmup:
                    walls[name].append(cost.wall)
    one = median(walls["single"])
    return [
        Figure(PART, f"-H: one host, banner delayed {BANNER_DELAY * 1000:g} ms (wall)", ms(one)),
        relative(
            PART,
            f"--mx: {HOSTS} such hosts (wall)",
            walls["mx"],
            walls["single"],
            FACTOR,
            ms,
            "one host",
        ),
    ]
