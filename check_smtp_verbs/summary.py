"""The presentation: the status line, the per-verb lines and the transcript.

Nothing else in the package prints.  Server text is untrusted: it is shown with
control characters escaped, ``|`` (the perfdata separator in the plugin API)
replaced, and cut to a length that still fits a pager or an SMS.
"""

from __future__ import annotations

import re

import nagiosplugin

from check_smtp_verbs.steps import StepResult, Walk

MAX_TEXT = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f|]")


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Make untrusted text safe for a one-line plugin status."""
    text = _UNSAFE.sub(lambda m: "/" if m.group() == "|" else f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(result: StepResult) -> str:
    verb = result.step.verb
    if verb == "ehlo_tls":
        return "EHLO"
    return "banner" if verb == "banner" else verb.upper()


def reply_problem(result: StepResult) -> str:
    """Why one step is not OK, verb first, e.g. ``RCPT TO:<a@b> answered 451 (...)``."""
    if result.error is not None:
        return clean(result.error)
    if result.step.response is not None and result.step.expect.matches(result.code):
        pattern = result.step.response.pattern
        text = f"{result.step.label} answered {result.code}, not matching /{pattern}/"
        return clean(f"{text}: {result.text}" if result.text else text)
    subject = "the banner was" if result.step.verb == "banner" else f"{result.step.label} answered"
    text = f"{subject} {result.code} (expected {result.step.expect})"
    if result.step.verb == "auth" and result.code == 535:  # RFC 4954: credentials invalid
        text = f"authentication failed: {text}"
    return clean(f"{text}: {result.text}" if result.text else text)


def time_problem(result: nagiosplugin.Result) -> str:
    metric = result.metric
    if metric.name.endswith("total"):
        what = "the whole conversation"
    else:
        what = next(
            (s.step.label for s in _steps(result) if s.step.name == metric.name), metric.name
        )
    return clean(f"{what} took {metric.value:.3f}s ({result.hint})")


def _steps(result: nagiosplugin.Result) -> tuple[StepResult, ...]:
    walk = getattr(result.resource, "walk", None)
    return walk.results if walk is not None else ()


def describe(result: nagiosplugin.Result) -> str:
    if result.metric is not None and result.metric.context == "reply":
        return reply_problem(result.metric.value)
    if result.metric is not None and result.metric.context == "cert_days":
        return clean(result.hint)
    return time_problem(result)


def _outcome(result: StepResult) -> str | None:
    """How a step shows in the OK line: ``EHLO 250``, or ``TLSv1.3`` for the handshake."""
    if result.code is not None:
        return f"{short(result)} {result.code}"
    if result.error is None and result.lines:
        return result.lines[0]  # the TLS version; "STARTTLS not offered, ..."
    return None


def ok_line(walk: Walk, certificate: str = "") -> str:
    host = f"[{walk.host}]" if ":" in walk.host else walk.host
    replies = ", ".join(o for o in map(_outcome, walk.results) if o is not None)
    extra = f", {certificate}" if certificate else ""
    return clean(f"{host}:{walk.port} {replies} in {walk.total:.3f}s{extra}", 1000)


def tls_lines(walk: Walk) -> list[str]:
    """-v: what the TLS handshake showed, for the admin who has to renew or fix it."""
    facts = walk.tls
    if facts is None:
        return []
    from check_smtp_verbs.core.tls import days_left, when

    bits = f" ({facts.bits} bits)" if facts.bits else ""
    check = (
        f"chain and name verified for {facts.server_name}"
        if facts.verified
        else "not verified (--insecure)"
    )
    lines = [f"TLS: {facts.version}, cipher {facts.cipher}{bits}, certificate {check}"]
    leaf = facts.leaf
    if leaf is not None:
        lines += [
            f"certificate subject: {leaf.subject}",
            f"certificate issuer: {leaf.issuer}",
            f"certificate names: {', '.join(leaf.names) or '(none)'}",
            f"certificate valid: {when(leaf.not_before)} to {when(leaf.not_after)} "
            f"({days_left(leaf):.1f} days left)",
        ]
    if facts.expiring is not None and facts.expiring != leaf:
        lines.append(
            f"chain certificate {facts.expiring.subject} ends first: "
            f"{when(facts.expiring.not_after)}"
        )
    # scrubbed before cutting, so that no cut can split a secret past the scrubber
    return [clean(walk.transcript.scrub(line), 600) for line in lines]


def step_lines(walk: Walk, results: nagiosplugin.Results, prefix: str = "") -> list[str]:
    """One line per verb: the state, what was sent, what came back, how long it took.

    ``prefix`` is the metric-name prefix of this walk's host in --mx mode.
    """
    states: dict[str, nagiosplugin.state.ServiceState] = {}
    for result in results:
        if result.metric is not None:
            name = result.metric.name
            states[name] = max(states.get(name, nagiosplugin.Ok), result.state)
    lines = []
    for r in walk.results:
        state = str(states.get(prefix + r.step.name, nagiosplugin.Ok)).upper()
        if r.step.verb == "connect":
            outcome = walk.address or "-"
        elif r.code is not None:
            outcome = f"{r.code} {r.text}".rstrip()
        elif r.lines:
            outcome = r.text
        else:
            outcome = "-"
        if r.error is not None:
            outcome = f"{outcome}: {r.error}" if r.code is not None else r.error
        took = f"{r.seconds:.6f}s" if r.seconds is not None else "-"
        lines.append(clean(f"{state:<8} {r.step.label} -> {outcome} ({took})", 400))
    lines.append(f"{'':<8} total {walk.total:.6f}s")
    return lines


def transcript_lines(walk: Walk) -> list[str]:
    return ["transcript:"] + [
        clean(f"{e.direction}: {e.text}", 600) for e in walk.transcript.entries
    ]


class VerbsSummary(nagiosplugin.Summary):
    def __init__(self, resource: object, verbosity: int = 0) -> None:
        self.resource = resource
        self.verbosity = verbosity

    @property
    def walk(self) -> Walk | None:
        return getattr(self.resource, "walk", None)

    def ok(self, results: nagiosplugin.Results) -> str:
        if self.walk is None:
            return super().ok(results)
        # OK despite a broken walk (e.g. --timeout 10:ok): say what broke, not a verb list
        broken = [r for r in self.walk.results if r.error is not None and r.step.verb != "quit"]
        certificate = next(
            (r.hint for r in results if r.metric is not None and r.metric.context == "cert_days"),
            "",
        )
        return reply_problem(broken[0]) if broken else ok_line(self.walk, certificate)

    def problem(self, results: nagiosplugin.Results) -> str:
        return describe(results.first_significant)

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        if self.walk is None:
            return []
        lines = step_lines(self.walk, results) + tls_lines(self.walk)
        if self.verbosity >= 3:
            lines += transcript_lines(self.walk)
        return lines
