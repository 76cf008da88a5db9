"""The least a nagiosplugin SMTP check can be: the idiom's own cost, for comparison.

argparse for -H/-p/-f/--rcpt, one Resource walking banner, EHLO, MAIL, RCPT, QUIT with
smtplib, one ScalarContext per time, ``Check.main()``.  No validation, no deadline, no
judging of codes, no transcript: what is left is what any Python plugin written the
usual way pays beyond ``import nagiosplugin, smtplib``.  The benchmark runs it as a
script (``python minimal_plugin.py -H … -p … -f … --rcpt …``); it is not a product.
"""

from __future__ import annotations

import argparse
import smtplib
import time

import nagiosplugin


class Walk(nagiosplugin.Resource):
    def __init__(self, host: str, port: int, sender: str, recipient: str) -> None:
        self.host, self.port, self.sender, self.recipient = host, port, sender, recipient

    def probe(self) -> list[nagiosplugin.Metric]:
        times = []
        smtp = smtplib.SMTP(local_hostname="localhost", timeout=10)
        started = time.perf_counter()
        smtp.connect(self.host, self.port)
        times.append(("banner", time.perf_counter() - started))
        for name, step in (
            ("ehlo", lambda: smtp.ehlo()),
            ("mail", lambda: smtp.mail(self.sender)),
            ("rcpt", lambda: smtp.rcpt(self.recipient)),
            ("quit", lambda: smtp.quit()),
        ):
            before = time.perf_counter()
            step()
            times.append((name, time.perf_counter() - before))
        return [nagiosplugin.Metric(name, seconds, "s", min=0) for name, seconds in times]


@nagiosplugin.guarded(verbose=0)
def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-H", "--hostname", required=True)
    p.add_argument("-p", "--port", type=int, default=25)
    p.add_argument("-f", "--from", dest="sender", required=True)
    p.add_argument("--rcpt", required=True)
    args = p.parse_args()
    contexts = [nagiosplugin.ScalarContext(n) for n in ("banner", "ehlo", "mail", "rcpt", "quit")]
    check = nagiosplugin.Check(Walk(args.hostname, args.port, args.sender, args.rcpt), *contexts)
    check.main(timeout=12)


if __name__ == "__main__":
    main()
