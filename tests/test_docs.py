"""The documentation can be navigated and is complete about options.

A newcomer follows links from README.md into docs/, so a link to a moved page
or a renamed heading is a defect.  The options reference is read from the
programs' own argparse parsers, the way tests/test_contrib.py checks contrib/:
an option added without a line in the reference fails here, by name, and so
does a documented option that no longer exists.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from check_smtp_verbs import cli
from check_smtp_verbs.notify import cli as notify_cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *DOCS.glob("*.md")]
)
LINK = re.compile(r"(?<!!)\[(?:[^\]]|\][^(])*?\]\(([^)\s]+)\)")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)")


def prose(text: str) -> str:
    """The text outside fenced code blocks: a shell example is not a link."""
    kept, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: its text, lower case, punctuation dropped, spaces as -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in prose(page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6} (.*)", line)
        if not match:
            continue
        anchor = github_anchor(match[1])
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(page.read_text(encoding="utf-8")))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path) -> None:
    assert page.exists(), f"{page.relative_to(ROOT)} is missing"
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors_of(destination):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_anchor_rule_matches_githubs_for_code_and_punctuation() -> None:
    assert github_anchor("Why not `-P`") == "why-not--p"
    assert (
        github_anchor("`-C/--command`, `-R/--response`, `--command-expect`: extra verbs")
        == "-c--command--r--response---command-expect-extra-verbs"
    )
    assert github_anchor("Integrations (contrib/)") == "integrations-contrib"


def test_the_readme_stays_short_enough_to_read() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_test_command_is_the_one_ci_runs() -> None:
    command = "python3 -m pip install -q -e '.[test]' && python3 -m pytest"
    assert command in (ROOT / "README.md").read_text(encoding="utf-8")
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci_lines


def test_every_docs_page_is_in_the_readme_map() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    unlisted = [page.name for page in DOCS.glob("*.md") if f"(docs/{page.name})" not in readme]
    assert not unlisted, f"docs pages not linked from README.md: {unlisted}"


# --- options --------------------------------------------------------------


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every spelling of every option, aliases included; not -h/--help."""
    return {
        spelling
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for spelling in action.option_strings
    }


def section(page: Path, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    text = page.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    assert match, f"{page.relative_to(ROOT)} has no heading {heading!r}"
    level = len(match[1])
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, match.end())
    return text[match.end() : end.start() if end else len(text)]


def documented_options(table_text: str) -> set[str]:
    """The option spellings in the first column of a Markdown table."""
    found: set[str] = set()
    for line in table_text.splitlines():
        if line.startswith("| `"):
            found.update(OPTION.findall(line.split(" | ")[0]))
    return found


def test_options_reference_lists_every_check_option_and_alias() -> None:
    documented = documented_options((DOCS / "options.md").read_text(encoding="utf-8"))
    missing = sorted(option_strings(cli.build_parser()) - documented)
    assert not missing, f"options of check_smtp_verbs not in docs/options.md: {missing}"


def test_options_reference_lists_no_option_the_check_does_not_have() -> None:
    documented = documented_options((DOCS / "options.md").read_text(encoding="utf-8"))
    stale = sorted(documented - option_strings(cli.build_parser()))
    assert not stale, f"docs/options.md lists options check_smtp_verbs lacks: {stale}"


def test_notifier_options_list_every_notifier_option() -> None:
    documented = documented_options(section(DOCS / "notifier.md", "Options"))
    missing = sorted(option_strings(notify_cli.build_parser()) - documented)
    assert not missing, f"options of notify_sms_mail not in docs/notifier.md: {missing}"


def test_notifier_options_list_only_the_notifiers_options() -> None:
    """Issue 11: a check option in the notifier's list (-P, -S …) invites a password on argv."""
    documented = documented_options(section(DOCS / "notifier.md", "Options"))
    foreign = sorted(documented - option_strings(notify_cli.build_parser()))
    assert not foreign, f"docs/notifier.md lists options notify_sms_mail lacks: {foreign}"
