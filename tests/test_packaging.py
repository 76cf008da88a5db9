"""It installs the way admins install plugins: one version, a wheel, an sdist, a .deb.

The builds run from a copy of the tree, offline, with Debian's own python3
(python3-build, python3-setuptools and python3-wheel come with
pybuild-plugin-pyproject, which CI installs), so that nothing here needs PyPI.
The Debian package test builds the .deb with contrib/debian/build, lints it,
installs it with apt-get, runs the installed plugin with Debian's python3
against a test server, loads the installed Icinga 2 definitions through
``include <plugins-contrib>``, finds both man pages, and purges the package.
"""

from __future__ import annotations

import argparse
import configparser
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import check_smtp_verbs
from check_smtp_verbs import manpage
from tests.plugin import need, run_plugin
from tests.schedulers import NAGIOS_TIMEPERIOD, Icinga2, Nagios, find_program
from tests.smtpd import SMTPTestServer

ROOT = Path(__file__).resolve().parent.parent
VERSION = check_smtp_verbs.__version__
DEBIAN_PYTHON = "/usr/bin/python3"
PACKAGE = "check-smtp-verbs"
PLUGIN_DIR = Path("/usr/lib/nagios/plugins")


def not_copied(folder: str, names: list[str]) -> set[str]:
    """What a fresh clone would not have: VCS data, caches, build output (at the top only:
    contrib/debian/build is the package build script)."""
    skipped = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
    if Path(folder) == ROOT:
        skipped |= {"build", "dist", ".venv"}
    return {name for name in names if name in skipped or name.endswith(".egg-info")}


# --- one version -----------------------------------------------------------


def test_setup_cfg_takes_the_version_from_the_package() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["version"] == "attr: check_smtp_verbs.__version__"


@pytest.mark.parametrize(
    "command", ["check_smtp_verbs", "check_smtp_verbs.notify"], ids=["check", "notifier"]
)
def test_version_option_prints_the_package_version(command: str) -> None:
    run = run_plugin("--version", command=command)
    program = "check_smtp_verbs" if command == "check_smtp_verbs" else "notify_sms_mail"
    assert (run.returncode, run.stdout.strip()) == (0, f"{program} {VERSION}")


def test_changelog_starts_at_the_package_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    first = re.search(r"^## (\S+)", text, re.MULTILINE)
    assert first and first[1] == VERSION


def test_debian_changelog_names_the_package_version() -> None:
    first_line = (ROOT / "contrib" / "debian" / "changelog").read_text().splitlines()[0]
    assert first_line.startswith(f"{PACKAGE} ({VERSION}) ")


# --- man pages ---------------------------------------------------------------

SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES", "FILES"]
SECTIONS += ["ENVIRONMENT"]


@pytest.mark.parametrize("program", sorted(manpage.PAGES))
def test_man_page_has_every_section_and_every_option_of_the_parser(program: str) -> None:
    page = manpage.render(program, when=0)
    headings = re.findall(r"^\.SH (.+)$", page, re.MULTILINE)
    assert headings[: len(SECTIONS)] == SECTIONS
    assert page.startswith(f'.TH {program.upper()} 1 "1970-01-01" "check_smtp_verbs {VERSION}"')
    parser = manpage.PAGES[program].parser()
    missing = [
        spelling
        for action in parser._actions
        for spelling in action.option_strings
        if f"\\fB{manpage.roff(spelling)}\\fR" not in page
    ]
    assert not missing, f"{program}(1) lacks {missing}"


def test_man_page_names_the_extra_opts_files_and_variables_only_with_that_option() -> None:
    without = argparse.ArgumentParser(prog="x")
    assert manpage._extra_opts_entries(without) == ([], [])
    with_it = argparse.ArgumentParser(prog="x")
    with_it.add_argument("--extra-opts", nargs="?", metavar="[SECTION][@FILE]")
    files, environment = manpage._extra_opts_entries(with_it)
    assert "plugins.ini" in files[0][0]
    assert [name for name, _ in environment] == ["MP_CONFIG_FILE", "NAGIOS_CONFIG_PATH"]


def test_man_page_escapes_text_that_roff_would_read_as_requests() -> None:
    assert manpage.roff(".ti 5\n'x --a\\b") == "\\&.ti 5\n\\&'x \\-\\-a\\eb"


def test_man_page_date_comes_from_source_date_epoch_for_reproducible_builds() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_smtp_verbs.manpage", "notify_sms_mail"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), SOURCE_DATE_EPOCH="1790000000"),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"2026-09-21"' in done.stdout.splitlines()[0]


@pytest.mark.parametrize("program", sorted(manpage.PAGES))
def test_man_page_formats_without_a_groff_warning(program: str, tmp_path: Path) -> None:
    groff = find_program("groff")
    if groff is None:
        need("groff is not installed (Debian package groff-base, pulled in by man-db)")
    source = tmp_path / f"{program}.1"
    source.write_text(manpage.render(program), encoding="utf-8")
    done = subprocess.run(
        [groff, "-man", "-ww", "-z", "-Tutf8", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")


# --- wheel and sdist ---------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and the sdist, built offline from a copy of the tree."""
    if not Path(DEBIAN_PYTHON).exists():
        need("Debian's python3 is missing")
    probe = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import build, setuptools, wheel"], capture_output=True, timeout=60
    )
    if probe.returncode != 0:
        need("python3-build/python3-wheel are missing (Debian package pybuild-plugin-pyproject)")
    base = tmp_path_factory.mktemp("dist")
    tree, out = base / "tree", base / "out"
    shutil.copytree(ROOT, tree, ignore=not_copied)
    done = subprocess.run(
        [DEBIAN_PYTHON, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if re.search(r"\berror\b", line, re.I)]
    assert not errors, errors
    return {
        "wheel": out / f"check_smtp_verbs-{VERSION}-py3-none-any.whl",
        "sdist": out / f"check_smtp_verbs-{VERSION}.tar.gz",
    }


def test_wheel_holds_every_module_and_both_console_scripts(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(f"check_smtp_verbs-{VERSION}.dist-info/entry_points.txt")
    modules = {
        path.relative_to(ROOT).as_posix() for path in (ROOT / "check_smtp_verbs").rglob("*.py")
    }
    assert modules <= names, sorted(modules - names)
    assert not [name for name in names if name.startswith(("tests/", "contrib/"))]
    assert f"check_smtp_verbs-{VERSION}.dist-info/LICENSE" in names
    assert b"check_smtp_verbs = check_smtp_verbs.entry:check" in entry_points
    assert b"notify_sms_mail = check_smtp_verbs.entry:notify" in entry_points


def test_wheel_metadata_is_what_an_index_renders(built: dict[str, Path]) -> None:
    """What ``twine check`` looks at: the fields, and a README of a declared type."""
    with zipfile.ZipFile(built["wheel"]) as wheel:
        raw = wheel.read(f"check_smtp_verbs-{VERSION}.dist-info/METADATA").decode()
    metadata = email.parser.Parser().parsestr(raw)
    assert metadata["Name"] == "check-smtp-verbs" or metadata["Name"] == "check_smtp_verbs"
    assert metadata["Version"] == VERSION
    assert metadata["Summary"]
    assert metadata["License"] == "MIT"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().lstrip().startswith("# check_smtp_verbs")
    requires = metadata.get_all("Requires-Dist")
    assert {re.split(r"[ <>=;\[]", r)[0] for r in requires if "extra ==" not in r} == {
        "nagiosplugin",
        "dnspython",
        "cryptography",
    }


def test_sdist_holds_the_tests_contrib_docs_and_packaging(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        build_script = sdist.getmember(f"check_smtp_verbs-{VERSION}/contrib/debian/build")
    wanted = [
        "README.md",
        "CHANGELOG.md",
        "CONTRIBUTING.md",
        "LICENSE",
        "MANIFEST.in",
        "setup.cfg",
        "pyproject.toml",
        ".ci/run",
        "tests/smtpd.py",
        "tests/conftest.py",
        "tests/test_packaging.py",
        "tests/bench/launch.c",
        "contrib/icinga2/commands.conf",
        "contrib/nagios/commands.cfg",
        "contrib/debian/rules",
        "contrib/debian/control",
        "docs/options.md",
    ]
    assert [name for name in wanted if name not in names] == []
    tracked = [
        path.relative_to(ROOT).as_posix()
        for folder in ("tests", "contrib", "docs", "check_smtp_verbs")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert [name for name in tracked if name not in names] == []
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert build_script.mode & 0o111, "contrib/debian/build must stay executable"


# --- the Debian package ------------------------------------------------------

DEBIAN_TOOLS = {
    "dpkg-buildpackage": "dpkg-dev",
    "dh": "debhelper",
    "dh_python3": "dh-python",
    "lintian": "lintian",
    "apt-get": "apt",
    "man": "man-db",
}


def _dpkg_installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip() == "install ok installed"


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    """apt-get, retried while another process holds the dpkg lock (other work on this machine)."""
    deadline = time.monotonic() + 300
    while True:
        done = subprocess.run(
            ["apt-get", "-y", "-o", "DPkg::Lock::Timeout=60", *args],
            capture_output=True,
            text=True,
            timeout=400,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
            stdin=subprocess.DEVNULL,
        )
        if done.returncode == 0 or "lock" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(2)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool, package in DEBIAN_TOOLS.items():
        if find_program(tool) is None:
            need(f"{tool} is not installed (Debian package {package})")
    out = tmp_path_factory.mktemp("deb")
    done = subprocess.run(
        [str(ROOT / "contrib" / "debian" / "build"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    built = out / f"{PACKAGE}_{VERSION}_all.deb"
    assert done.stdout.strip().splitlines()[-1] == str(built)
    return built


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[Path]:
    """The package installed with apt-get for the module's tests, purged afterwards."""
    if os.geteuid() != 0:
        need("installing a .deb needs root")
    if _dpkg_installed(PACKAGE):
        pytest.skip(f"{PACKAGE} is installed already: this test will not purge it")
    done = _apt_get("install", str(deb))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    try:
        yield deb
    finally:
        purged = _apt_get("purge", PACKAGE)
        assert purged.returncode == 0, purged.stdout[-4000:] + purged.stderr[-4000:]
    assert not _dpkg_installed(PACKAGE)
    assert not (PLUGIN_DIR / "check_smtp_verbs").exists()
    assert not Path("/etc/nagios-plugins/config/smtp_verbs.cfg").exists()


@pytest.mark.debian
def test_deb_passes_lintian_without_errors_or_warnings(deb: Path) -> None:
    done = subprocess.run(
        ["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    problems = [line for line in done.stdout.splitlines() if line.startswith(("E:", "W:"))]
    assert (done.returncode, problems) == (0, [])


@pytest.mark.debian
def test_deb_depends_on_debians_libraries_not_pip(deb: Path) -> None:
    depends = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, timeout=60
    ).stdout
    for library in ("python3-nagiosplugin", "python3-dnspython", "python3-cryptography"):
        assert library in depends
    assert "pip" not in depends


@pytest.mark.debian
def test_deb_puts_each_file_where_debian_looks_for_it(deb: Path) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, timeout=60
    ).stdout
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for path in [
        "/usr/lib/nagios/plugins/check_smtp_verbs",
        "/usr/lib/nagios/plugins/notify_sms_mail",
        "/usr/share/man/man1/check_smtp_verbs.1.gz",
        "/usr/share/man/man1/notify_sms_mail.1.gz",
        "/usr/share/icinga2/include/plugins-contrib.d/smtp_verbs.conf",
        "/etc/nagios-plugins/config/smtp_verbs.cfg",
        "/usr/share/doc/check-smtp-verbs/README.md",
        "/usr/share/doc/check-smtp-verbs/CHANGELOG.md",
        "/usr/share/doc/check-smtp-verbs/docs/options.md",
        "/usr/share/doc/check-smtp-verbs/examples/example.conf",
        "/usr/share/doc/check-smtp-verbs/examples/example.cfg",
        "/usr/lib/python3/dist-packages/check_smtp_verbs/cli.py",
    ]:
        assert path in files
    assert not [name for name in files if name.startswith("/usr/bin/")]
    conffiles = subprocess.run(
        ["dpkg-deb", "--info", str(deb), "conffiles"], capture_output=True, text=True, timeout=60
    ).stdout
    assert conffiles.split() == ["/etc/nagios-plugins/config/smtp_verbs.cfg"]


def _run_installed(program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed plugin as a scheduler runs it: by path, clean environment, elsewhere."""
    return subprocess.run(
        [str(PLUGIN_DIR / program), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.debian
def test_installed_plugin_runs_on_debians_python_against_a_test_server(
    installed: Path, smtp_server: Callable[..., SMTPTestServer], tmp_path: Path
) -> None:
    shebang = (PLUGIN_DIR / "check_smtp_verbs").read_text().splitlines()[0]
    assert shebang == "#!/usr/bin/python3"
    where = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import check_smtp_verbs; print(check_smtp_verbs.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert where.stdout.startswith("/usr/lib/python3/dist-packages/check_smtp_verbs/")

    walk = ["-f", "probe@example.net", "--rcpt", "postmaster@example.net"]
    healthy = smtp_server()
    run = _run_installed(
        "check_smtp_verbs", "-H", healthy.host, "-p", str(healthy.port), *walk, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith(f"SMTP_VERBS OK - {healthy.host}:{healthy.port} banner 220")

    refusing = smtp_server(replies={"RCPT": "451 4.3.0 temporary failure"})
    run = _run_installed(
        "check_smtp_verbs", "-H", refusing.host, "-p", str(refusing.port), *walk, cwd=tmp_path
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout.startswith(
        "SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> answered 451"
    )

    version = _run_installed("notify_sms_mail", "--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"notify_sms_mail {VERSION}")


@pytest.mark.debian
def test_installed_man_pages_are_found_by_man(installed: Path) -> None:
    for program in ("check_smtp_verbs", "notify_sms_mail"):
        done = subprocess.run(["man", "-w", program], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == f"/usr/share/man/man1/{program}.1.gz", done.stderr


@pytest.mark.debian
@pytest.mark.icinga2
def test_installed_icinga2_commands_load_through_include_plugins_contrib(
    installed: Path, icinga2_program: str, tmp_path: Path
) -> None:
    instance = Icinga2(tmp_path, icinga2_program)
    instance.config.write_text(
        "\n".join(
            [
                "include <itl>",
                "include <plugins>",
                "include <plugins-contrib>",
                f'const PluginDir = "{PLUGIN_DIR}"',
                f'const PluginContribDir = "{PLUGIN_DIR}"',
                'object Host "mx1" { check_command = "dummy"; address = "192.0.2.25" }',
                'object Service "smtp-verbs" {',
                '  host_name = "mx1"',
                '  check_command = "smtp_verbs"',
                '  vars.smtp_verbs_rcpt = [ "postmaster@example.net" ]',
                "}",
            ]
        )
        + "\n"
    )
    done = instance.validate()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    problems = [
        line for line in done.stdout.splitlines() if re.search(r"\b(warning|critical)/", line)
    ]
    assert not problems, problems
    assert instance.object("CheckCommand", "smtp_verbs")["command"] == [
        f"{PLUGIN_DIR}/check_smtp_verbs"
    ]
    for name in ("sms-mail-service-notification", "sms-mail-host-notification"):
        assert instance.object("NotificationCommand", name)["command"] == [
            f"{PLUGIN_DIR}/notify_sms_mail"
        ]


NAGIOS_SITE = (
    NAGIOS_TIMEPERIOD
    + """
define contact {
    contact_name                    sms-oncall
    pager                           0400000000@sms.example.net
    _SMS_GATEWAY                    sms.example.net
    _SMS_STATE_FILE                 /var/lib/nagios4/notify_sms_mail/sms-oncall.json
    service_notification_period     24x7
    host_notification_period        24x7
    service_notification_options    w,u,c,r
    host_notification_options       d,u,r
    service_notification_commands   notify-service-by-sms-mail
    host_notification_commands      notify-host-by-sms-mail
}
define host {
    host_name                       mx1
    address                         192.0.2.25
    max_check_attempts              3
    check_period                    24x7
    notification_period             24x7
    contacts                        sms-oncall
}
define service {
    host_name                       mx1
    service_description             smtp-verbs
    check_command                   check_smtp_verbs!--rcpt postmaster@example.net
    max_check_attempts              3
    check_interval                  5
    retry_interval                  1
    check_period                    24x7
    notification_period             24x7
    contacts                        sms-oncall
}
"""
)


@pytest.mark.debian
@pytest.mark.nagios
def test_installed_nagios_commands_load_from_debians_plugin_config_directory(
    installed: Path, nagios_program: str, tmp_path: Path
) -> None:
    """Debian's nagios.cfg has cfg_dir=/etc/nagios-plugins/config: load it the same way,
    with every other plugin's commands of that directory beside ours."""
    nagios = Nagios(tmp_path, nagios_program)
    site = tmp_path / "site.cfg"
    site.write_text(NAGIOS_SITE)
    nagios.write_config(
        [site], cfg_dir="/etc/nagios-plugins/config", admin_email="nagios@example.net"
    )
    done = nagios.validate()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Total Warnings: 0" in done.stdout, done.stdout
    assert "Total Errors:   0" in done.stdout, done.stdout
