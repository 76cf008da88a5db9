"""The round trip's contrib example: loaded by the real Icinga 2, and accepted by the plugin."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from check_smtp_verbs import cli
from tests.schedulers import Icinga2, icinga2_config
from tests.test_contrib import ICINGA2_DIR, ICINGA2_SITE, NAGIOS_DIR


@pytest.mark.icinga2
def test_icinga2_round_trip_example_passes_options_the_plugin_accepts(
    icinga2_program: str, tmp_path: Path
) -> None:
    instance = Icinga2(tmp_path, icinga2_program)
    instance.config.write_text(
        icinga2_config(
            instance.bin_dir,
            *sorted(ICINGA2_DIR.glob("*.conf")),
            body=ICINGA2_SITE,
        )
    )
    done = instance.validate()
    assert done.returncode == 0, done.stdout + done.stderr
    variables = instance.object("Service", "mx2!mail-round-trip")["vars"]
    arguments = instance.object("CheckCommand", "smtp_verbs")["arguments"]
    argv = ["-H", "192.0.2.27"]
    for option, spec in arguments.items():
        name = (spec["value"] if "value" in spec else spec["set_if"]).strip("$")
        if name in variables and name != "smtp_verbs_address":
            value = variables[name]
            values = value if isinstance(value, list) else [value]
            for item in values:
                argv += [option, str(item)] if "value" in spec else [option]
    assert "--imap" in argv and "--imap-password-file" in argv
    with pytest.raises(cli.UsageError, match="--imap-password-file: cannot read"):
        cli.settings_from(argv)  # every option accepted; only the example's secret file is absent


def test_nagios_round_trip_example_passes_options_the_plugin_accepts(tmp_path: Path) -> None:
    """Commented out in example.cfg (its password file does not exist here): parse it anyway."""
    found = re.findall(
        r"^#\s*check_command\s+check_smtp_verbs!(.*--imap .*)$",
        (NAGIOS_DIR / "example.cfg").read_text(),
        re.M,
    )
    assert len(found) == 1
    secret = tmp_path / "probe-mailbox"
    secret.write_text("s3cret\n")
    arguments = found[0].replace("/etc/nagios4/secrets/probe-mailbox", str(secret))
    settings = cli.settings_from(["-H", "192.0.2.25", *shlex.split(arguments)])
    assert settings.mailbox_url is not None and settings.data
