"""``--extra-opts [SECTION][@FILE]``: options from an ini file, as monitoring-plugins do.

Admins keep credentials and long option sets out of the command line (and so out
of the process list and the scheduler's configuration) in a plugins.ini section
per plugin; the C plugins, the Perl Monitoring::Plugin and the ITL's
``smtp_extra_opts`` all follow one convention, and so does this module:

* the section defaults to the program's name, the file to the first of the
  standard locations that exists (or ``$MP_CONFIG_FILE``, or the first
  ``monitoring-plugins.ini``/``plugins.ini``/``nagios-plugins.ini`` in one of the
  directories of ``$NAGIOS_CONFIG_PATH``);
* each ``key = value`` line becomes ``--key=value`` (``-k`` for a one-letter key,
  and a bare ``--key`` when the value is empty), a repeated key gives the option
  again, and all of them go before the command line's options, so the command
  line wins;
* an unreadable file, a missing section or an unknown key is a usage error: one
  line, UNKNOWN (3) for the check, exit 3 for the notifier.

The options are expanded into argv before argparse sees it, so every rule of the
parser (and every validation after it) applies to them unchanged.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping

from check_smtp_verbs import inputs
from check_smtp_verbs.usage import UsageError

OPTION = "--extra-opts"
MAX_FILE = 1 << 20  # an ini file of plugin options; anything larger is a mistake

# monitoring-plugins 2.3 (lib/parse_ini.c), in its order: the current names first,
# then the Nagios-era ones it still reads.
DEFAULT_FILES = (
    "/usr/local/etc/monitoring-plugins/monitoring-plugins.ini",
    "/usr/local/etc/monitoring-plugins.ini",
    "/etc/monitoring-plugins/monitoring-plugins.ini",
    "/etc/monitoring-plugins.ini",
    "/etc/nagios/plugins.ini",
    "/usr/local/nagios/etc/plugins.ini",
    "/usr/local/etc/nagios/plugins.ini",
    "/etc/opt/nagios/plugins.ini",
    "/etc/nagios-plugins.ini",
    "/usr/local/etc/nagios-plugins.ini",
    "/etc/opt/nagios-plugins.ini",
)
FILE_NAMES = ("monitoring-plugins.ini", "plugins.ini", "nagios-plugins.ini")


def default_file(environ: Mapping[str, str]) -> str:
    """The file monitoring-plugins would read when ``@FILE`` is not given."""
    if environ.get("MP_CONFIG_FILE"):
        return environ["MP_CONFIG_FILE"]
    directories = [d for d in environ.get("NAGIOS_CONFIG_PATH", "").split(":") if d]
    candidates = [os.path.join(d, n) for d in directories for n in FILE_NAMES]
    for path in candidates or DEFAULT_FILES:
        if os.path.exists(path):
            return path
    raise UsageError(
        f"{OPTION}: no config file in any standard location "
        f"({', '.join(candidates or DEFAULT_FILES[:4])}, ...); name one with @FILE"
    )


def _locators(argv: list[str]) -> tuple[list[str | None], list[str]]:
    """The --extra-opts values (None: all defaults) and argv without them.

    As in monitoring-plugins, ``--extra-opts VALUE`` takes the next argument when it
    is not an option, and the option may be given more than once.
    """
    locators: list[str | None] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest += argv[index:]
            break
        if arg == OPTION:
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is not None and not following.startswith("-"):
                locators.append(following)
                index += 2
                continue
            locators.append(None)
        elif arg.startswith(OPTION + "="):
            locators.append(arg[len(OPTION) + 1 :])
        else:
            rest.append(arg)
        index += 1
    return locators, rest


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option: action
        for action in parser._actions
        for option in action.option_strings
        if option != OPTION
    }


def read_section(path: str, section: str) -> list[tuple[str, str]]:
    """The ``key = value`` pairs of one section, in file order, repeated keys kept."""
    import configparser

    class MultiDict(dict):  # type: ignore[type-arg]
        """configparser keeps the last of repeated keys; this keeps them all."""

        def __setitem__(self, key: str, value: object) -> None:
            if isinstance(value, list) and key in self:
                self[key].extend(value)
            else:
                super().__setitem__(key, value)

    raw = inputs.read_regular_file(path, OPTION, MAX_FILE)
    if len(raw) > MAX_FILE:
        raise UsageError(f"{OPTION}: {path} is larger than {MAX_FILE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{OPTION}: {path} is not UTF-8 text") from None
    parser = configparser.RawConfigParser(
        strict=False,
        dict_type=MultiDict,
        empty_lines_in_values=False,
        interpolation=None,
        allow_no_value=False,
        default_section="\0",  # no [DEFAULT] magic: every section stands alone
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{OPTION}: {path} is not a valid ini file: {first}") from None
    if not parser.has_section(section):
        raise UsageError(f"{OPTION}: no section [{section}] in {path}")
    pairs: list[tuple[str, str]] = []
    # configparser joins a repeated key's values with newlines (values never span
    # lines here: empty_lines_in_values=False and no indented continuation is expected)
    for key, value in parser._sections[section].items():  # type: ignore[attr-defined]
        values = value if isinstance(value, list) else [value]
        for line in values:
            for part in str(line).split("\n"):
                pairs.append((key.strip(), part.strip()))
    return pairs


def _arguments(
    pairs: list[tuple[str, str]], known: dict[str, argparse.Action], where: str
) -> list[str]:
    out = []
    for key, value in pairs:
        option = f"-{key}" if len(key) == 1 else f"--{key}"
        if option not in known:
            raise UsageError(f"{OPTION}: unknown option {key!r} in {where}")
        out.append(option if value == "" else f"{option}={value}")
    return out


def expand(
    argv: list[str],
    prog: str,
    build_parser: Callable[[], argparse.ArgumentParser],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """argv with every --extra-opts replaced by its options, placed first."""
    if not any(a == OPTION or a.startswith(OPTION + "=") for a in argv):
        return argv  # the common case: no parser built, no file touched
    locators, rest = _locators(argv)
    known = _long_options(build_parser())
    env = os.environ if environ is None else environ
    expanded: list[str] = []
    for locator in locators:
        section, at, path = (locator or "").partition("@")
        section = section.strip() or prog
        if not at or not path:
            path = default_file(env)
        pairs = read_section(path, section)
        expanded += _arguments(pairs, known, f"[{section}] of {path}")
    return expanded + rest


def add_extra_opts(p: argparse.ArgumentParser) -> None:
    """Declared for --help and the man page; extra_opts.expand() has replaced it by then."""
    p.add_argument(
        "--extra-opts",
        nargs="?",
        const="",
        metavar="[SECTION][@FILE]",
        help="read options from SECTION (default: the program's name) of an ini FILE "
        "(default: the first monitoring-plugins.ini/plugins.ini in the standard places); "
        "keys are long option names, the command line wins",
    )
