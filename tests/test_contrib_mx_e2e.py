"""End to end: the shipped Icinga 2 and Nagios definitions run --mx for real.

Icinga 2's CheckCommand passes -H unless smtp_verbs_mx is set (a function in
set_if); Nagios has its own check_smtp_verbs_mx command.  Each scheduler checks
example.test, whose second MX (a test server on 127.0.0.3) refuses RCPT, through
the loopback DNS server, and must record a CRITICAL run naming that host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MX_DOMAIN
from tests.plugin import run_plugin
from tests.schedulers import (
    CONTRIB,
    FAST_SCHEDULING,
    NAGIOS_TIMEPERIOD,
    Icinga2,
    Nagios,
    icinga2_config,
    running,
)
from tests.smtpd import Script

FAILING = Script(replies={"RCPT": "451 4.3.0 temporary failure"})
STATUS = (
    "SMTP_VERBS CRITICAL - mx2.example.test: RCPT TO:<postmaster@example.test> answered 451 "
    "(expected 250,251): 4.3.0 temporary failure; 1 of 2 MX hosts OK"
)

ICINGA2_SCENARIO = """
const NodeName = "localhost"
object CheckerComponent "checker" { }
template Service "generic-service" {
  max_check_attempts = 1
  check_interval = 2s
  retry_interval = 2s
}
object Host "mx1" {
  check_command = "dummy"
  address = "127.0.0.1"
}
object Service "mail-domain" {
  import "generic-service"
  host_name = "mx1"
  check_command = "smtp_verbs"
  vars.smtp_verbs_mx = "{domain}"
  vars.smtp_verbs_resolver = "{resolver}"
  vars.smtp_verbs_port = {port}
  vars.smtp_verbs_from = "probe@example.net"
  vars.smtp_verbs_rcpt = [ "postmaster@example.test" ]
  vars.smtp_verbs_timeout = "5"
}
"""


def first_run_of(scheduler: Icinga2 | Nagios, argv_has: str) -> dict[str, Any]:
    return scheduler.wait_for(
        lambda: next(
            (r for r in scheduler.runs("check_smtp_verbs") if argv_has in r["argv"]), None
        ),
        f"a check_smtp_verbs run with {argv_has}",
    )


@pytest.mark.icinga2
def test_icinga2_runs_mx_mode_without_h(icinga2_program: str, mx_hosts, tmp_path: Path) -> None:
    dns, _, args = mx_hosts(None, FAILING)
    icinga2 = Icinga2(tmp_path, icinga2_program)
    scenario = tmp_path / "scenario.conf"
    scenario.write_text(
        ICINGA2_SCENARIO.replace("{domain}", MX_DOMAIN)
        .replace("{resolver}", dns.address)
        .replace("{port}", args[-1])
    )
    icinga2.config.write_text(
        icinga2_config(icinga2.bin_dir, CONTRIB / "icinga2" / "commands.conf", scenario)
    )
    validated = icinga2.validate()
    assert validated.returncode == 0, validated.stdout
    with running(icinga2):
        run = first_run_of(icinga2, "--mx")
    argv = run["argv"]
    assert argv[argv.index("--mx") + 1] == MX_DOMAIN
    assert "-H" not in argv, argv
    assert run["exit"] == 2
    assert run_plugin(*argv).status == STATUS  # what the scheduler saw, run again


NAGIOS_SCENARIO = (
    NAGIOS_TIMEPERIOD
    + """
define contact {
    contact_name                    nobody
    service_notification_period     24x7
    host_notification_period        24x7
    service_notification_options    n
    host_notification_options       n
    service_notification_commands   notify-service-by-sms-mail
    host_notification_commands      notify-host-by-sms-mail
}
define host {
    host_name                       mx1
    address                         127.0.0.1
    max_check_attempts              1
    check_period                    24x7
    contacts                        nobody
}
define service {
    host_name                       mx1
    service_description             mail-domain
    check_command                   check_smtp_verbs_mx!{domain}!{arguments}
    max_check_attempts              1
    check_interval                  2
    retry_interval                  2
    check_period                    24x7
    notification_period             24x7
    contacts                        nobody
}
"""
)


@pytest.mark.nagios
def test_nagios_runs_the_mx_command(nagios_program: str, mx_hosts, tmp_path: Path) -> None:
    dns, _, args = mx_hosts(None, FAILING)
    nagios = Nagios(tmp_path, nagios_program)
    scenario = tmp_path / "scenario.cfg"
    scenario.write_text(
        NAGIOS_SCENARIO.replace("{domain}", MX_DOMAIN).replace(
            "{arguments}",
            f"--resolver {dns.address} -p {args[-1]} -f probe@example.net "
            "--rcpt postmaster@example.test -t 5",
        )
    )
    nagios.write_config(
        [scenario, CONTRIB / "nagios" / "commands.cfg"],
        admin_email="monitoring@example.net",
        **FAST_SCHEDULING,
    )
    validated = nagios.validate()
    assert validated.returncode == 0, validated.stdout
    with running(nagios):
        run = first_run_of(nagios, "--mx")
    argv = run["argv"]
    assert argv[argv.index("--mx") + 1] == MX_DOMAIN
    assert "-H" not in argv, argv
    assert run["exit"] == 2
    assert run_plugin(*argv).status == STATUS  # what the scheduler saw, run again
