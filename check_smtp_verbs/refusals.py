"""What a server must refuse: relaying, AUTH in plaintext, mail before STARTTLS, old TLS.

These regressions arrive with configuration changes and pass every check that only
asks whether the server *accepts* mail: an open relay accepts everything, a submission
port that takes mail before STARTTLS looks healthier than one that refuses it.  So
these judgements are the other way round from the rest of the check: a refusal is
the good answer.  This module holds the rules only (what counts as offered, refused,
accepted, and which state that is); the steps that ask the server live with the walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import nagiosplugin
from nagiosplugin.state import ServiceState

from check_smtp_verbs.contexts import ReplyContext
from check_smtp_verbs.settings import STATES, Settings
from check_smtp_verbs.steps import StepResult, VersionProbe

TLS_VERSION_NAMES: dict[str, str] = {
    "1.0": "TLSv1",
    "1.1": "TLSv1.1",
    "1.2": "TLSv1.2",
    "1.3": "TLSv1.3",
}
"""--forbid-tls-version/--tls-max-version values, and what ``SSLSocket.version()`` says."""


def plaintext_auth_problem(mechanisms: Iterable[str]) -> str | None:
    """``--no-plaintext-auth``: what is wrong when the greeting before TLS offered these
    mechanisms (the client reads both the RFC 4954 ``AUTH PLAIN`` and the old
    ``AUTH=PLAIN`` form: either offers a password exchange in the clear)."""
    offered = list(dict.fromkeys(m.upper() for m in mechanisms))
    if not offered:
        return None
    return f"AUTH offered before TLS: {' '.join(offered)}"


class Verdict(NamedTuple):
    state: str  # "ok", "warning", "critical" (settings.STATES keys)
    text: str


def relay_verdict(command: str, code: int | None, tempfail_state: str = "warning") -> Verdict:
    """``--relay-test``: 5xx is the right answer to RCPT for a domain the server must not
    relay for; 2xx means it would relay (CRITICAL); 4xx decides nothing yet (greylisting,
    a failed look-up), so it is ``tempfail_state``, WARNING unless the user says."""
    if code is None:
        return Verdict("unknown", f"{command}: no reply")
    if 200 <= code < 300:
        return Verdict("critical", f"open relay: {command} accepted ({code})")
    if 400 <= code < 500:
        return Verdict(tempfail_state, f"relay test {command} answered {code} (temporary)")
    if 500 <= code < 600:
        return Verdict("ok", f"relay refused: {command} answered {code}")
    return Verdict("unknown", f"relay test {command} answered {code}")


def starttls_required_verdict(code: int | None) -> Verdict:
    """``--starttls-required``: MAIL FROM before STARTTLS must be refused with 5xx (530
    "Must issue a STARTTLS command first" is the usual one); taken means mail can be
    sent in the clear to this port (CRITICAL); 4xx is neither (WARNING)."""
    if code is None:
        return Verdict("unknown", "MAIL FROM before STARTTLS: no reply")
    if 200 <= code < 300:
        return Verdict("critical", f"accepts mail before STARTTLS (MAIL FROM answered {code})")
    if 500 <= code < 600:
        return Verdict("ok", f"mail before STARTTLS refused ({code})")
    return Verdict("warning", f"MAIL FROM before STARTTLS answered {code}")


class VersionError(ValueError):
    """A --forbid-tls-version/--tls-max-version value that is not a TLS version; one line."""


def parse_tls_versions(text: str) -> tuple[str, ...]:
    """``1.0,1.1`` -> ``("1.0", "1.1")``: each version once, in ascending order.

    ``TLSv1.0``/``tlsv1.1``/``1`` are accepted for the same versions, as the names
    people copy from scanners' reports; SSL 3 and anything else is refused (Python's
    ssl cannot offer SSL 3 at all, so it could never be tested).
    """
    versions: set[str] = set()
    for part in text.split(","):
        item = part.strip().lower().removeprefix("tlsv").removeprefix("tls")
        item = {"1": "1.0"}.get(item, item)
        if item not in TLS_VERSION_NAMES:
            shown = part.strip() or "(empty)"
            raise VersionError(
                f"not a TLS version: {shown!r} (expected 1.0, 1.1, 1.2 or 1.3, comma separated)"
            )
        versions.add(item)
    return tuple(sorted(versions))


LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"
"""OpenSSL 3 will not even offer TLS 1.0/1.1 at its default security level (their
handshakes sign with SHA-1/MD5); a client that must find out whether a server still
accepts them has to lower its own level first, or every such probe "passes"."""


def limit_to_version(context: Any, version: str) -> Any:
    """Make a client ``ssl.SSLContext`` offer exactly one TLS version (``"1.0"``..``"1.3"``):
    the second handshake of --forbid-tls-version, which must fail.  Returns ``context``.

    ssl is imported here, not at the top, so that the rules above cost nothing to the
    checks that never shake hands.
    """
    import ssl
    import warnings

    wanted = {
        "1.0": ssl.TLSVersion.TLSv1,
        "1.1": ssl.TLSVersion.TLSv1_1,
        "1.2": ssl.TLSVersion.TLSv1_2,
        "1.3": ssl.TLSVersion.TLSv1_3,
    }[version]
    if wanted < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers(LEGACY_CIPHERS)
    with warnings.catch_warnings():  # ssl deprecates even naming TLS 1.0/1.1
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = wanted
        context.maximum_version = wanted
    return context


# --- the contexts: this module is loaded only by checks that ask these questions ---

RELAY_LABEL = " (relay test)"
"""How a relay-test step's label ends: ``RCPT TO:<x@example.org> (relay test)``."""


class RefusalContext(ReplyContext):
    """A reply whose *refusal* is the good answer.  The step's expected codes (5xx, or
    what ``--expect relay=`` says) are OK; otherwise the verdict judges (2xx CRITICAL,
    4xx its state), except a refusal outside --expect's codes, which is an unexpected
    reply like any other; a timeout or a hang-up is judged as any reply's."""

    def __init__(
        self, name: str, verdict: Callable[[StepResult], Verdict], settings: Settings
    ) -> None:
        super().__init__(settings.warning_codes, settings.timeout_state)
        self.name = name
        self.verdict = verdict

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        result: StepResult = metric.value
        if result.error is not None:
            return nagiosplugin.Result(self.state(result), None, metric)
        verdict = self.verdict(result)
        if result.expected:
            return nagiosplugin.Result(nagiosplugin.Ok, verdict.text, metric)
        if result.code is not None and 500 <= result.code < 600:  # not a code --expect allows
            return nagiosplugin.Result(self.state(result), None, metric)
        return nagiosplugin.Result(STATES[verdict.state], verdict.text, metric)


class PlaintextAuthContext(nagiosplugin.Context):
    """--no-plaintext-auth: the AUTH line the greeting before TLS showed, if any."""

    def __init__(self, state: ServiceState) -> None:
        super().__init__("plaintext_auth")
        self.problem_state = state

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        result: StepResult = metric.value
        problem = plaintext_auth_problem(result.lines[0].split()[1:] if result.lines else ())
        if problem is None:
            return nagiosplugin.Result(nagiosplugin.Ok, None, metric)
        return nagiosplugin.Result(self.problem_state, problem, metric)


class ForbiddenTlsContext(nagiosplugin.Context):
    """--forbid-tls-version: one metric per version, its value a VersionProbe."""

    def __init__(self) -> None:
        super().__init__("forbidden_tls")

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        probe: VersionProbe = metric.value
        verdict = version_verdict(probe.version, probe.accepted, probe.detail)
        return nagiosplugin.Result(STATES[verdict.state], verdict.text, metric)


def contexts(settings: Settings) -> list[nagiosplugin.Context]:
    """The contexts the refusal steps of these settings need (none without them)."""
    tempfail = str(settings.relay_tempfail_state)

    def relay(result: StepResult) -> Verdict:
        return relay_verdict(result.step.label.removesuffix(RELAY_LABEL), result.code, tempfail)

    found: list[nagiosplugin.Context] = []
    if settings.relay_tests:
        found.append(RefusalContext("relay", relay, settings))
    if settings.starttls_required:
        found.append(
            RefusalContext(
                "starttls_required", lambda r: starttls_required_verdict(r.code), settings
            )
        )
    if settings.no_plaintext_auth is not None:
        found.append(PlaintextAuthContext(settings.no_plaintext_auth))
    if settings.forbid_tls_versions:
        found.append(ForbiddenTlsContext())
    return found


def version_verdict(version: str, accepted: bool | None, detail: str) -> Verdict:
    """--forbid-tls-version: the server must refuse a handshake that offers only this
    version; one that could not even be tried (no STARTTLS, no connection) is UNKNOWN,
    since it proves nothing either way."""
    name = TLS_VERSION_NAMES[version]
    if accepted is None:
        return Verdict("unknown", f"cannot test {name}: {detail}")
    if accepted:
        return Verdict("critical", f"{name} accepted, though forbidden ({detail})")
    return Verdict("ok", f"{name} refused ({detail})")
