"""contrib/ is loaded by the real programs, and maps every option the plugin has.

The coverage tests read the options from the plugin's own argparse parser,
so an option added to check_smtp_verbs without a variable in
contrib/icinga2 or a line in contrib/nagios fails here, by name.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from check_smtp_verbs import cli
from check_smtp_verbs.notify import cli as notify_cli
from tests import conftest
from tests.schedulers import CONTRIB, NAGIOS_TIMEPERIOD, Icinga2, Nagios, icinga2_config

ICINGA2_DIR = CONTRIB / "icinga2"
NAGIOS_DIR = CONTRIB / "nagios"
SYSTEMD_DIR = CONTRIB / "systemd"
CRON_FILE = CONTRIB / "cron" / "check_smtp_verbs"

# What Icinga 2's and Nagios' sample configurations provide, which the
# examples build on (Debian: /etc/icinga2/conf.d/templates.conf,
# /etc/nagios4/objects/templates.cfg), and a host that the examples apply to.
ICINGA2_SITE = """
template Host "generic-host" { check_command = "hostalive" }
template Service "generic-service" { max_check_attempts = 5 }
object Host "mx1" {
  import "generic-host"
  address = "192.0.2.25"
  vars.smtp_verbs_rcpt = [ "postmaster@example.net" ]
}
object Host "mail1" {
  import "generic-host"
  address = "192.0.2.26"
  vars.smtp_verbs_submission_user = "monitoring@example.net"
}
object Host "mx2" {
  import "generic-host"
  address = "192.0.2.27"
  vars.smtp_verbs_round_trip_mailbox = "probe@example.net"
}
"""
NAGIOS_SITE = (
    NAGIOS_TIMEPERIOD
    + """
define contact {
    name                            generic-contact
    register                        0
    service_notification_period     24x7
    host_notification_period        24x7
}
define service {
    name                            generic-service
    register                        0
    max_check_attempts              3
    check_interval                  5
    retry_interval                  1
    check_period                    24x7
    notification_period             24x7
}
define host {
    host_name                       mx1
    address                         192.0.2.25
    max_check_attempts              3
    check_period                    24x7
    notification_period             24x7
    contacts                        sms-oncall
}
"""
)


def options_of(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every option a definition may set (not --help/--version)."""
    return [
        action
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, (argparse._HelpAction, argparse._VersionAction))
    ]


def plugin_options() -> list[argparse.Action]:
    return options_of(cli.build_parser())


NOT_FOR_NOTIFICATIONS = {
    "--dry-run": "prints instead of sending: for trying a command line by hand",
    "--check-timeout": "only for the standalone mode (cron, systemd)",
}


def takes_no_value(action: argparse.Action) -> bool:
    return action.nargs == 0


# --- Icinga 2 --------------------------------------------------------------


@pytest.fixture
def icinga2(icinga2_program: str, tmp_path: Path) -> Icinga2:
    """A private Icinga 2 that has validated contrib/icinga2/*.conf (daemon -C)."""
    instance = Icinga2(tmp_path, icinga2_program)
    instance.config.write_text(
        icinga2_config(instance.bin_dir, *sorted(ICINGA2_DIR.glob("*.conf")), body=ICINGA2_SITE)
    )
    done = instance.validate()
    assert done.returncode == 0, done.stdout + done.stderr
    problems = [
        line for line in done.stdout.splitlines() if re.search(r"\b(warning|critical)/", line)
    ]
    assert not problems, "\n".join(problems)
    return instance


@pytest.mark.icinga2
def test_icinga2_validates_the_shipped_definitions_and_example(icinga2: Icinga2) -> None:
    assert icinga2.object("CheckCommand", "smtp_verbs")["command"] == [
        f"{icinga2.bin_dir}/check_smtp_verbs"
    ]
    for name in ("sms-mail-service-notification", "sms-mail-host-notification"):
        assert icinga2.object("NotificationCommand", name)["command"] == [
            f"{icinga2.bin_dir}/notify_sms_mail"
        ]
    service = icinga2.object("Service", "mx1!smtp-verbs")
    assert service["check_command"] == "smtp_verbs"
    assert service["vars"]["smtp_verbs_rcpt"] == ["postmaster@example.net"]
    notification = icinga2.object("Notification", "mx1!smtp-verbs!sms-mail")
    assert notification["command"] == "sms-mail-service-notification"
    assert notification["users"] == ["sms-oncall"]
    assert icinga2.object("User", "sms-oncall")["pager"].endswith("@sms.example.net")


@pytest.mark.icinga2
def test_icinga2_example_submission_service_passes_options_the_plugin_accepts(
    icinga2: Icinga2,
) -> None:
    """STARTTLS, certificate days and AUTH from a password file, as Icinga would pass them."""
    service = icinga2.object("Service", "mail1!submission-verbs")
    variables = service["vars"]
    assert variables["smtp_verbs_starttls"] == "required"
    assert variables["smtp_verbs_authuser"] == "monitoring@example.net"
    arguments = icinga2.object("CheckCommand", "smtp_verbs")["arguments"]
    argv = ["-H", "192.0.2.26"]
    for option, spec in arguments.items():
        # a flag has only set_if; an option with a value may have a set_if function too (-H)
        name = (spec["value"] if "value" in spec else spec["set_if"]).strip("$")
        if name in variables and name != "smtp_verbs_address":
            value = variables[name]
            argv += [option, str(value)] if "value" in spec else [option]
    assert "-P" not in argv
    with pytest.raises(cli.UsageError, match="--auth-password-file: cannot read"):
        cli.settings_from(argv)  # every option accepted; only the example's secret file is absent


@pytest.mark.icinga2
def test_icinga2_check_command_maps_every_plugin_option(icinga2: Icinga2) -> None:
    arguments = icinga2.object("CheckCommand", "smtp_verbs")["arguments"]
    unmapped = [
        "/".join(action.option_strings)
        for action in plugin_options()
        if not set(action.option_strings) & set(arguments)
    ]
    assert not unmapped, f"options missing from contrib/icinga2/commands.conf: {unmapped}"
    known = {option for action in plugin_options() for option in action.option_strings}
    stale = sorted(set(arguments) - known)
    assert not stale, f"contrib/icinga2/commands.conf passes options the plugin lacks: {stale}"


@pytest.mark.icinga2
def test_icinga2_variables_follow_the_itl_naming_and_argument_kinds(icinga2: Icinga2) -> None:
    command = icinga2.object("CheckCommand", "smtp_verbs")
    arguments = command["arguments"]
    for action in plugin_options():
        key = next(option for option in action.option_strings if option in arguments)
        spec = arguments[key]
        macro = spec["set_if"] if takes_no_value(action) else spec["value"]
        assert re.fullmatch(r"\$smtp_verbs_\w+\$", macro), (key, spec)
        if isinstance(action, argparse._AppendAction):
            assert spec.get("repeat_key") is True, f"{key} is repeatable: needs repeat_key"
    assert arguments["-H"]["value"] == "$smtp_verbs_address$"
    assert command["vars"]["smtp_verbs_address"] == "$check_address$"
    assert arguments["-f"]["value"] == "$smtp_verbs_from$"
    assert arguments["--rcpt"]["value"] == "$smtp_verbs_rcpt$"
    assert "ipv4-or-ipv6" in command["templates"]


@pytest.mark.icinga2
def test_icinga2_notification_commands_take_the_sms_address_from_the_users_pager(
    icinga2: Icinga2,
) -> None:
    service = icinga2.object("NotificationCommand", "sms-mail-service-notification")
    host = icinga2.object("NotificationCommand", "sms-mail-host-notification")
    for command in (service, host):
        assert isinstance(command["command"], list), "array form: macros are passed raw"
        assert command["arguments"]["--to"]["value"] == "$sms_mail_to$"
        assert command["vars"]["sms_mail_to"] == "$user.pager$"
        assert command["vars"]["sms_mail_type"] == "$notification.type$"
        assert command["vars"]["sms_mail_host"] == "$host.name$"
    assert service["vars"]["sms_mail_service"] == "$service.name$"
    assert service["vars"]["sms_mail_state"] == "$service.state$"
    assert service["vars"]["sms_mail_output"] == "$service.output$"
    assert host["vars"]["sms_mail_state"] == "$host.state$"
    assert "--service" not in host["arguments"]


@pytest.mark.icinga2
@pytest.mark.parametrize("name", ["sms-mail-service-notification", "sms-mail-host-notification"])
def test_icinga2_notification_commands_map_every_notifier_option(
    icinga2: Icinga2, name: str
) -> None:
    arguments = icinga2.object("NotificationCommand", name)["arguments"]
    wanted = [
        action
        for action in options_of(notify_cli.build_parser())
        if not set(action.option_strings) & set(NOT_FOR_NOTIFICATIONS)
        and not (name.endswith("host-notification") and "--service" in action.option_strings)
    ]
    unmapped = [
        "/".join(action.option_strings)
        for action in wanted
        if not set(action.option_strings) & set(arguments)
    ]
    assert not unmapped, f"notify_sms_mail options missing from {name}: {unmapped}"
    for action in wanted:
        key = next(option for option in action.option_strings if option in arguments)
        spec = arguments[key]
        macro = spec["set_if"] if takes_no_value(action) else spec["value"]
        assert re.fullmatch(r"\$sms_mail_\w+\$", macro), (key, spec)
        if isinstance(action, argparse._AppendAction):
            assert spec.get("repeat_key") is True, f"{key} is repeatable: needs repeat_key"
    known = {o for action in options_of(notify_cli.build_parser()) for o in action.option_strings}
    stale = sorted(set(arguments) - known)
    assert not stale, f"{name} passes options notify_sms_mail lacks: {stale}"


@pytest.mark.icinga2
def test_icinga2_refuses_a_broken_copy_of_the_definitions(
    icinga2_program: str, tmp_path: Path
) -> None:
    """The validation is real: a broken copy of commands.conf does not pass."""
    broken = tmp_path / "broken.conf"
    text = (ICINGA2_DIR / "commands.conf").read_text()
    broken.write_text(text.replace('import "ipv4-or-ipv6"', 'import "no-such-template"'))
    instance = Icinga2(tmp_path, icinga2_program)
    instance.config.write_text(icinga2_config(instance.bin_dir, broken))
    done = instance.validate()
    assert done.returncode != 0
    assert "no-such-template" in done.stdout


# --- Nagios ----------------------------------------------------------------


def nagios_option_lines() -> dict[str, str]:
    """``# option:`` reference lines of contrib/nagios/commands.cfg: option -> variable."""
    found = {}
    for line in (NAGIOS_DIR / "commands.cfg").read_text().splitlines():
        match = re.match(r"#\s*option:\s+(.*?)\s{2,}(\S+)", line)
        if match:
            for token in match[1].replace(",", " ").split():
                if token.startswith("-"):
                    found[token] = match[2]
    return found


def nagios_check_commands() -> list[str]:
    """The $ARG1$ of every check_smtp_verbs service in contrib/nagios, as Nagios expands it."""
    found = []
    for path in sorted(NAGIOS_DIR.glob("*.cfg")):
        for match in re.finditer(
            r"^\s*check_command\s+check_smtp_verbs!(.*)$", path.read_text(), re.M
        ):
            found.append(match[1].replace("$$", "$"))
    return found


@pytest.mark.nagios
def test_nagios_validates_the_shipped_definitions_and_example(
    nagios_program: str, tmp_path: Path
) -> None:
    nagios = Nagios(tmp_path, nagios_program)
    site = tmp_path / "site.cfg"
    site.write_text(NAGIOS_SITE)
    nagios.write_config([site, *sorted(NAGIOS_DIR.glob("*.cfg"))], admin_email="nagios@example.net")
    done = nagios.validate()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Total Warnings: 0" in done.stdout, done.stdout
    assert "Total Errors:   0" in done.stdout, done.stdout
    assert re.search(r"Checked 4 commands", done.stdout), done.stdout
    assert re.search(r"Checked 2 services", done.stdout), done.stdout


@pytest.mark.nagios
def test_nagios_refuses_a_broken_copy_of_the_definitions(
    nagios_program: str, tmp_path: Path
) -> None:
    """The validation is real: a service naming a command we do not ship fails."""
    nagios = Nagios(tmp_path, nagios_program)
    site = tmp_path / "site.cfg"
    site.write_text(NAGIOS_SITE)
    example = tmp_path / "example.cfg"
    example.write_text(
        (NAGIOS_DIR / "example.cfg").read_text().replace("check_smtp_verbs!", "check_smtp_verb!")
    )
    nagios.write_config([site, NAGIOS_DIR / "commands.cfg", example])
    done = nagios.validate()
    assert done.returncode != 0
    assert "Service check command 'check_smtp_verb!" in done.stdout


def test_nagios_option_reference_lists_every_plugin_option() -> None:
    listed = nagios_option_lines()
    unmapped = [
        "/".join(action.option_strings)
        for action in plugin_options()
        if not set(action.option_strings) & set(listed)
    ]
    assert not unmapped, f"options missing from contrib/nagios/commands.cfg: {unmapped}"
    known = {option for action in plugin_options() for option in action.option_strings}
    stale = sorted(set(listed) - known)
    assert not stale, f"contrib/nagios/commands.cfg lists options the plugin lacks: {stale}"


@pytest.mark.icinga2
def test_nagios_option_reference_names_the_icinga2_variable_of_each_option(
    icinga2: Icinga2,
) -> None:
    """One vocabulary: what the Nagios reference calls an option is its Icinga variable."""
    arguments = icinga2.object("CheckCommand", "smtp_verbs")["arguments"]
    listed = nagios_option_lines()
    for action in plugin_options():
        key = next(option for option in action.option_strings if option in arguments)
        spec = arguments[key]
        variable = (spec["set_if"] if takes_no_value(action) else spec["value"]).strip("$")
        named = {listed[option] for option in action.option_strings if option in listed}
        assert named == {variable}, f"{key}: Nagios reference says {named}, Icinga {variable}"


def test_nagios_example_services_pass_options_the_plugin_accepts() -> None:
    commands = nagios_check_commands()
    assert commands, "contrib/nagios has no example check_smtp_verbs service"
    for arguments in commands:
        assert "!" not in arguments, "Nagios splits $ARGn$ on '!'"
        cli.settings_from(["-H", "192.0.2.25", *shlex.split(arguments)])


def test_nagios_mx_example_services_pass_a_domain_and_options_the_plugin_accepts() -> None:
    found = []
    for path in sorted(NAGIOS_DIR.glob("*.cfg")):
        found += re.findall(
            r"^\s*check_command\s+check_smtp_verbs_mx!([^!\n]*)!(.*)$", path.read_text(), re.M
        )
    assert found, "contrib/nagios has no example check_smtp_verbs_mx service"
    for domain, arguments in found:
        settings = cli.settings_from(["--mx", domain, *shlex.split(arguments.replace("$$", "$"))])
        assert settings.mx == domain


def test_nagios_notifications_read_the_output_from_the_environment_not_arguments() -> None:
    """Debian's illegal_macro_output_chars strips < > from $SERVICEOUTPUT$ in arguments."""
    text = (NAGIOS_DIR / "commands.cfg").read_text()
    lines = re.findall(r"^\s*command_line\s+(\$USER1\$/notify_sms_mail .*)$", text, re.M)
    assert len(lines) == 2
    for line in lines:
        assert "OUTPUT$" not in line
        assert '--to "$CONTACTPAGER$"' in line


# --- cron and systemd ------------------------------------------------------


def standalone_command(command: str) -> tuple[list[str], list[str]]:
    """Split ``notify_sms_mail OPTIONS -- check_smtp_verbs OPTIONS`` into both halves."""
    words = shlex.split(command)
    separator = words.index("--")
    return words[:separator], words[separator + 1 :]


def cron_job() -> tuple[list[str], str, str]:
    """(schedule fields, user, command) of the one job in the cron.d file."""
    jobs = [
        line
        for line in CRON_FILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not re.match(r"\w+=", line)
    ]
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 6)
    return fields[:5], fields[5], fields[6]


def test_cron_runs_the_standalone_check_every_five_minutes() -> None:
    schedule, user, command = cron_job()
    assert schedule == ["*/5", "*", "*", "*", "*"]
    assert user != "root"
    notifier, check = standalone_command(command)
    assert Path(notifier[0]).name == "notify_sms_mail"
    assert Path(check[0]).name == "check_smtp_verbs"
    cli.settings_from(check[1:])
    assert "--state-file" in notifier
    path_line = next(
        line for line in CRON_FILE.read_text().splitlines() if line.startswith("PATH=")
    )
    assert "/usr/local/bin" in path_line.split("=", 1)[1].split(":")


def test_cron_file_name_is_one_cron_will_read() -> None:
    """cron(8) on Debian ignores files in /etc/cron.d whose names contain dots."""
    assert re.fullmatch(r"[A-Za-z0-9_-]+", CRON_FILE.name)
    assert CRON_FILE.read_text().endswith("\n"), "cron drops a last line without a newline"


def unit_setting(path: Path, key: str) -> str:
    match = re.search(rf"^{key}=(.*)$", path.read_text(), re.M)
    assert match, f"{path.name} has no {key}="
    return match[1]


def test_systemd_service_runs_the_standalone_check() -> None:
    service = SYSTEMD_DIR / "check-smtp-verbs-sms.service"
    notifier, check = standalone_command(unit_setting(service, "ExecStart"))
    assert notifier[0] == "/usr/local/bin/notify_sms_mail"
    assert check[0] == "/usr/local/bin/check_smtp_verbs"
    cli.settings_from(check[1:])
    state_file = notifier[notifier.index("--state-file") + 1]
    assert state_file.startswith("%S/" + unit_setting(service, "StateDirectory") + "/")
    assert unit_setting(service, "Type") == "oneshot"


@pytest.mark.systemd
def test_systemd_analyze_verifies_the_units(systemd_analyze: str, tmp_path: Path) -> None:
    """``systemd-analyze verify`` in a private root: the programs where pip puts them
    (/usr/local/bin), the system's own units, and ours in /etc/systemd/system."""
    root = tmp_path / "root"
    system_units = next(
        p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
    )
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    bin_dir = root / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    for program in ("notify_sms_mail", "check_smtp_verbs"):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    names = []
    for unit in sorted(SYSTEMD_DIR.iterdir()):
        shutil.copy(unit, units / unit.name)
        names.append(unit.name)
    assert names == ["check-smtp-verbs-sms.service", "check-smtp-verbs-sms.timer"]
    done = subprocess.run(
        [systemd_analyze, "verify", "--man=no", f"--root={root}", *names],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == "", "systemd warned: " + done.stdout + done.stderr


@pytest.mark.systemd
def test_systemd_timer_fires_every_five_minutes(systemd_analyze: str) -> None:
    calendar = unit_setting(SYSTEMD_DIR / "check-smtp-verbs-sms.timer", "OnCalendar")
    done = subprocess.run(
        [systemd_analyze, "calendar", "--iterations=3", calendar],
        capture_output=True,
        text=True,
        timeout=60,
        env={"LC_ALL": "C", "TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", done.stdout)
    times = [datetime.fromisoformat(stamp) for stamp in stamps]
    assert len(times) == 3, done.stdout
    assert {(b - a).total_seconds() for a, b in zip(times, times[1:])} == {300.0}
    assert all(t.minute % 5 == 0 and t.second == 0 for t in times)


# --- the fixtures' contract ------------------------------------------------


def test_a_missing_scheduler_skips_with_the_reason_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(conftest, "find_program", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"icinga2 is not installed.*icinga2-bin"):
        conftest.require_program("icinga2", "icinga2-bin", root=True)


def test_a_missing_scheduler_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "find_program", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"nagios4 is not installed.*CI must"):
        conftest.require_program("nagios4", "nagios4-core", root=True)
