"""The presentation: the status line, the per-verb lines and the transcript.

Nothing else in the package prints.  Server text is untrusted: it is shown with
control characters escaped, ``|`` (the perfdata separator in the plugin API)
replaced, and cut to a length that still fits a pager or an SMS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import nagiosplugin
from nagiosplugin.state import ServiceState

from check_smtp_verbs.steps import Run, StepResult, Walk
from check_smtp_verbs.text import clean as text_clean

if TYPE_CHECKING:
    from check_smtp_verbs.resource import Part, Verbs

MAX_TEXT = 200


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Make untrusted text safe for a one-line plugin status (text.py: the one sanitiser
    of both programs, C1, line separators and bidi controls included)."""
    return text_clean(text, limit)


def greeting(result: StepResult) -> bool:
    """The server's banner, not an extra command (``-C BANNER``) that shares its verb."""
    return result.step.verb == "banner" and result.step.label == "banner"


SHORT = {"ehlo_tls": "EHLO", "mail_plain": "MAIL before STARTTLS", "relay": "relay test"}
"""Verbs whose name in the OK line is not simply the verb in capitals."""

OWN_WORDS = frozenset(
    {"relay", "starttls_required", "plaintext_auth", "addresses", "forbidden_tls"}
)
"""Contexts that word their own problem in the result's hint: the refusal checks (where
a refusal is the good answer) and --all-addresses' look-ups."""


def short(result: StepResult) -> str:
    verb = result.step.verb
    if verb in SHORT:
        return SHORT[verb]
    return "banner" if greeting(result) else verb.upper()


def reply_problem(result: StepResult) -> str:
    """Why one step is not OK, verb first, e.g. ``RCPT TO:<a@b> answered 451 (...)``."""
    if result.error is not None:
        return clean(result.error)
    if result.step.response is not None and result.step.expect.matches(result.code):
        pattern = result.step.response.pattern
        text = f"{result.step.label} answered {result.code}, not matching /{pattern}/"
        return clean(f"{text}: {result.text}" if result.text else text)
    subject = "the banner was" if greeting(result) else f"{result.step.label} answered"
    text = f"{subject} {result.code} (expected {result.step.expect})"
    if result.step.verb == "auth" and result.code == 535:  # RFC 4954: credentials invalid
        text = f"authentication failed: {text}"
    return clean(f"{text}: {result.text}" if result.text else text)


def _outcome(result: StepResult) -> str | None:
    """How a step shows in the OK line: ``EHLO 250``, or ``TLSv1.3`` for the handshake."""
    if result.code is not None:
        return f"{short(result)} {result.code}"
    if result.error is None and result.lines:
        return result.lines[0]  # the TLS version; "STARTTLS not offered, ..."
    return None


def ok_line(walk: Walk, certificate: str = "") -> str:
    host = f"[{walk.host}]" if ":" in walk.host else walk.host
    # --quit-after connect: no reply at all, and then the line says so
    replies = ", ".join(o for o in map(_outcome, walk.results) if o is not None) or "connected"
    extra = f", {certificate}" if certificate else ""
    return clean(f"{host}:{walk.port} {replies} in {walk.total:.3f}s{extra}", 1000)


def tls_lines(walk: Walk) -> list[str]:
    """-v: what the TLS handshake showed, for the admin who has to renew or fix it."""
    facts = walk.tls
    if facts is None:
        return []
    from check_smtp_verbs.core.tls import days_left, when

    bits = f" ({facts.bits} bits)" if facts.bits else ""
    if facts.verified:
        check = f"chain and name verified for {facts.server_name}"
    elif walk.pkix_error is not None:
        check = f"not PKIX-valid ({walk.pkix_error}), so walked again without verification"
    elif walk.dane is not None and walk.dane.lookup.state == "secure":
        check = "not verified by PKIX: DANE authenticates it (see DANE below)"
    else:
        check = "not verified (--insecure)"
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


def dane_lines(walk: Walk) -> list[str]:
    """-v: the DANE verdict and what became of each TLSA record."""
    report = walk.dane
    if report is None:
        return []
    lines = [report.verdict.text]
    result = report.verdict.result
    if result is not None:
        for verdict in result.verdicts:
            depth = "" if verdict.depth is None else f", certificate depth {verdict.depth}"
            lines.append(
                f"  TLSA {verdict.record.short(16)}: {verdict.state} ({verdict.reason}{depth})"
            )
    return [clean(walk.transcript.scrub(line), 600) for line in lines]


def policy_lines(run: Run) -> list[str]:
    """-v: the MTA-STS policy (id, mode, patterns, max_age) and the TLS-RPT record."""
    lines = []
    if run.mta_sts is not None:
        found = run.mta_sts.found
        policy = found.policy
        if found.txt is not None and found.txt.id is not None:
            lines.append(f"MTA-STS TXT _mta-sts.{found.domain}: id={found.txt.id}")
        if policy is not None:
            lines.append(
                f"MTA-STS policy: mode {policy.mode}, max_age {policy.max_age}s "
                f"({policy.max_age_days:g} days), mx: {', '.join(policy.mx) or '(none)'}"
            )
        lines.append(run.mta_sts.verdict.text)
    if run.tlsrpt is not None:
        if run.tlsrpt.state == "present":
            lines.append(f"TLS-RPT _smtp._tls.{run.tlsrpt.domain}: rua={','.join(run.tlsrpt.rua)}")
        else:
            lines.append(f"TLS-RPT: {run.tlsrpt.error}")
    return [clean(line, 600) for line in lines]


def version_probe_lines(walk: Walk, results: nagiosplugin.Results, prefix: str = "") -> list[str]:
    """-v: the --forbid-tls-version handshakes, each with its verdict."""
    lines = []
    for probe in walk.version_probes:
        name = f"{prefix}tls_{probe.version.replace('.', '_')}"
        result = next((r for r in results if r.metric is not None and r.metric.name == name), None)
        state = str(result.state).upper() if result is not None else "OK"
        took = f"{probe.seconds:.6f}s" if probe.seconds is not None else "-"
        shown = result.hint if result is not None and result.hint else probe.detail
        lines.append(clean(f"{state:<8} TLS {probe.version} only -> {shown} ({took})", 400))
    return lines


def transcript_lines(walk: Walk) -> list[str]:
    return ["transcript:"] + [
        clean(f"{e.direction}: {e.text}", 600) for e in walk.transcript.entries
    ]


def label_states(results: nagiosplugin.Results) -> dict[str, ServiceState]:
    """The worst state of each label (a step has a reply and a time result)."""
    states: dict[str, ServiceState] = {}
    for result in results:
        if result.metric is not None:
            name = result.metric.name
            states[name] = max(states.get(name, nagiosplugin.Ok), result.state)
    return states


def walk_states(
    run: Run, parts: dict[str, Part], results: nagiosplugin.Results
) -> list[ServiceState]:
    """The worst state of each walk's metrics (its total time and certificate included)."""
    states = [nagiosplugin.Ok] * len(run.walks)
    for result in results:
        part = None if result.metric is None else parts.get(result.metric.name)
        if part is not None and part.walk is not None:
            states[part.walk] = max(states[part.walk], result.state)
    return states


def count(run: Run, states: list[ServiceState]) -> str:
    """How many targets were fine: the scale of an outage, next to its first cause."""
    ok = sum(1 for state in states if state == nagiosplugin.Ok)
    kind = "MX hosts" if run.lookup is not None and not run.lookup.implicit else "hosts"
    if run.addresses is not None:
        kind = "addresses"
    return f"{ok} of {len(states)} {kind} OK"


def what(part: Part | None, name: str) -> str:
    """What a time metric measured, in words."""
    if name == "delivery":  # the round trip: end of DATA to the probe in the mailbox
        return "delivery to the mailbox"
    if part is None:
        return name
    if part.step is not None:
        return part.step.step.label
    return "the whole conversation" if part.walk is not None else "the whole run"


def describe(part: Part | None, result: nagiosplugin.Result) -> str:
    """Why one result is not OK, without naming its host."""
    metric = result.metric
    if metric.context == "reply" or metric.context in OWN_WORDS:
        # a hint says why an expected reply is still not OK (the banner lacks -e TEXT)
        return clean(result.hint) if result.hint else reply_problem(metric.value)
    if metric.context in ("cert_days", "dane", "mta_sts", "tlsrpt", "mailbox"):
        return clean(result.hint)
    return clean(f"{what(part, metric.name)} took {metric.value:.3f}s ({result.hint})")


def problem(run: Run, parts: dict[str, Part], results: nagiosplugin.Results) -> str | None:
    """The status line of a run that is not OK: the worst result first, named by host
    when there are several; None when no metric is to blame (nagiosplugin's own text)."""
    first = results.first_significant
    metric = first.metric
    if metric is None:
        return None
    if metric.context == "dns" and run.lookup is not None:
        return clean(run.lookup.error or "MX look-up failed")
    states = walk_states(run, parts, results)
    if metric.context == "time_dns" and run.lookup is not None:
        took = f"the MX look-up of {run.lookup.domain} took {metric.value:.3f}s"
        return clean(f"{took} ({first.hint}); {count(run, states)}")
    part = parts.get(metric.name)
    text = describe(part, first)
    if not run.several:
        return text
    if part is None or part.walk is None:
        return clean(f"{text}; {count(run, states)}")
    failing = part.walk
    others = [
        w.target.name
        for n, (w, state) in enumerate(zip(run.walks, states))
        if state != nagiosplugin.Ok and n != failing
    ]
    also = f"; also failing: {', '.join(others)}" if others else ""
    name = run.walks[failing].target.name
    return clean(f"{name}: {text}; {count(run, states)}{also}")


def _broken(walk: Walk) -> StepResult | None:
    """The step that broke a walk the thresholds still call OK (e.g. --timeout 10:ok)."""
    return next((r for r in walk.results if r.error is not None and r.step.verb != "quit"), None)


def _targets(run: Run) -> str:
    if run.lookup is not None and run.lookup.implicit:
        return f"no MX record, so its address record (RFC 5321 5.1): {run.lookup.domain}"
    return ", ".join(
        w.target.name if w.target.preference is None else f"{w.target.name} ({w.target.preference})"
        for w in run.walks
    )


def ok(run: Run, parts: dict[str, Part], results: nagiosplugin.Results) -> str:
    """The status line of an OK run; it still says what broke, if anything did."""
    if not run.several:
        walk = run.walks[0].walk
        broken = _broken(walk)
        certificate = ", ".join(
            r.hint
            for r in results
            if r.metric is not None and r.metric.context in ("cert_days", "dane") and r.hint
        )
        if broken is not None:
            return reply_problem(broken)
        line = ok_line(walk, certificate)
        if run.round_trip is not None:
            from check_smtp_verbs.roundtrip.judge import outcome

            line = clean(f"{line}; {outcome(run.round_trip)}", 1000)
        return line
    states = walk_states(run, parts, results)
    subject = run.lookup.domain if run.lookup is not None else run.walks[0].walk.host
    line = f"{subject}: {count(run, states)}: {_targets(run)} in {run.total:.3f}s"
    for target, walk in run.walks:
        broken = _broken(walk)
        if broken is not None:
            line += f"; {target.name}: {broken.error}"
    line += protection_line(run)
    return clean(line, 1000)


def protection_line(run: Run) -> str:
    """What --dane and --mta-sts found, for the OK line of --mx: a count and the policy."""
    text = ""
    checked = [w.walk.dane for w in run.walks if w.walk.dane is not None]
    published = [r for r in checked if r.lookup.state == "secure"]
    if checked and not published:
        text += "; DANE: no MX host has DNSSEC-signed TLSA records"
    elif published:
        matched = sum(1 for report in published if report.verdict.state == "ok")
        text += f"; DANE: {matched} of {len(published)} MX hosts match their TLSA records"
        if len(checked) > len(published):
            text += f" ({len(checked) - len(published)} without)"
    if run.mta_sts is not None:
        text += f"; {run.mta_sts.verdict.text}"
    return text


def step_lines(walk: Walk, states: dict[str, ServiceState], prefix: str = "") -> list[str]:
    """One line per verb: the state, what was sent, what came back, how long it took."""
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


def verbose(
    run: Run, parts: dict[str, Part], results: nagiosplugin.Results, verbosity: int
) -> list[str]:
    """-v: every step of every walk; -vvv adds the transcripts."""
    lines = []
    if run.lookup is not None:
        lines.append(f"MX look-up of {run.lookup.domain}: {run.lookup.seconds:.6f}s")
    for addresses in run.addresses or ():
        for lookup in addresses.lookups:
            found = ", ".join(lookup.addresses) or lookup.error or "none"
            kind = "A" if lookup.name == "IPv4" else "AAAA"
            lines.append(
                clean(f"{kind} look-up of {addresses.host}: {found} ({lookup.seconds:.6f}s)", 400)
            )
    lines += policy_lines(run)
    labels = label_states(results)
    states = walk_states(run, parts, results)
    for (target, walk), state in zip(run.walks, states):
        if run.several:
            preference = "" if target.preference is None else f" (MX {target.preference})"
            lines.append(f"{target.name}{preference}: {str(state).upper()}")
        lines += step_lines(walk, labels, target.prefix)
        lines += tls_lines(walk)
        lines += version_probe_lines(walk, results, target.prefix)
        lines += dane_lines(walk)
        if verbosity >= 3:
            lines += transcript_lines(walk)
    if run.round_trip is not None:
        from check_smtp_verbs.roundtrip import judge

        lines += [clean(line, 600) for line in judge.lines(run.round_trip, verbosity)]
    return lines


class RunSummary(nagiosplugin.Summary):
    """The plugin text of any run: one host or many, the same rules."""

    def __init__(self, resource: Verbs, verbosity: int = 0) -> None:
        self.resource = resource
        self.verbosity = verbosity

    def ok(self, results: nagiosplugin.Results) -> str:
        run = self.resource.run
        if run is None:
            return super().ok(results)
        return ok(run, self.resource.parts, results)

    def problem(self, results: nagiosplugin.Results) -> str:
        run = self.resource.run
        line = None if run is None else problem(run, self.resource.parts, results)
        return super().problem(results) if line is None else line

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        run = self.resource.run
        if run is None:
            return []
        return verbose(run, self.resource.parts, results, self.verbosity)


VerbsSummary = RunSummary  # the names cli.py builds the check with
