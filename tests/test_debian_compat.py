"""The plugin on Debian's own Python with Debian's nagiosplugin 1.3.2 (python3-nagiosplugin).

Admins install plugins next to the distribution's packages, so the oldest nagiosplugin
we claim to support is exercised for real, not assumed.
"""

import re
import subprocess
from pathlib import Path

import pytest

from tests.plugin import need, run_plugin, server_args

DEBIAN_PYTHON = "/usr/bin/python3"
FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


@pytest.fixture(scope="module")
def debian_python() -> str:
    if not Path(DEBIAN_PYTHON).exists():
        need("Debian's /usr/bin/python3 is not installed")
    found = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import nagiosplugin, sys; print(nagiosplugin.__file__)"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0 or "/usr/lib/python3/dist-packages/" not in found.stdout:
        need("Debian's python3-nagiosplugin is not installed")
    return DEBIAN_PYTHON


def test_debian_nagiosplugin_judges_rcpt_451_the_same(smtp_server, debian_python):
    server = smtp_server(replies={"RCPT": "451 4.3.0 temporary failure"})
    run = run_plugin(*server_args(server, *FULL, "-w", "5"), python=debian_python)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.status == (
        "SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> answered 451 "
        "(expected 250,251): 4.3.0 temporary failure"
    )
    assert re.search(r" total=\d\.\d{6}s;5;;0", run.stdout)


def test_debian_nagiosplugin_ok_and_verbose(smtp_server, debian_python):
    run = run_plugin(*server_args(smtp_server(), *FULL, "-vvv"), python=debian_python)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.status.startswith("SMTP_VERBS OK - ")
    assert "transcript:" in run.lines


def test_debian_nagiosplugin_bad_input_is_one_line(debian_python):
    run = run_plugin("-H", "127.0.0.1", "-p", "70000", python=debian_python)
    assert run.returncode == 3
    assert (
        run.stdout == "SMTP_VERBS UNKNOWN - --port must be a number from 1 to 65535, not '70000'\n"
    )


def test_debian_python_starttls_with_debian_cryptography(smtp_server, certs, debian_python):
    """python3-cryptography (38 in bookworm) predates the *_utc date accessors."""
    server = smtp_server(tls_context=certs.context(days_left=20))
    run = run_plugin(
        *server_args(server, "-S", "--ca-file", str(certs.ca_file), "-D", "30", "-v"),
        python=debian_python,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.status.startswith("SMTP_VERBS WARNING - certificate expires in 19 days on ")
    assert "certificate names: DNS:smtpd.test" in run.stdout


def test_debian_nagiosplugin_json_and_data(smtp_server, debian_python):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--data", "--json"), python=debian_python)
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"state": "OK"' in run.stdout and '"message_id": "<' in run.stdout
    assert len(server.messages) == 1


def test_mx_without_dnspython_is_one_clear_line(debian_python):
    found = subprocess.run([debian_python, "-c", "import dns"], capture_output=True)
    if found.returncode == 0:
        pytest.skip("Debian's python3-dnspython is installed: nothing is missing")
    run = run_plugin("--mx", "example.test", "--resolver", "127.0.0.1:9", python=debian_python)
    assert run.returncode == 3
    assert run.stdout == (
        "SMTP_VERBS UNKNOWN - --mx and --resolver need dnspython (pip install dnspython, "
        "or apt-get install python3-dnspython)\n"
    )
