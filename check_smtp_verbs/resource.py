"""The nagiosplugin Resource: one walk, turned into metrics.

Deliberately thin, in nagiosplugin's idiom: the conversation lives in probe.py, the
judgement in contexts.py.  Each step yields a reply metric (its value is the whole
StepResult, judged by the "reply" context, never perfdata) and, when it took time,
a time metric judged against that verb's thresholds and printed as perfdata.
"""

from __future__ import annotations

import nagiosplugin

from check_smtp_verbs.probe import walk
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Walk


def metrics(
    result: Walk, prefix: str = "", own_times: tuple[str, ...] = ()
) -> list[nagiosplugin.Metric]:
    """Metrics of one walk; ``prefix`` keeps the labels of several hosts apart.

    A step named in ``own_times`` (``--verb-warning rcpt_2=1``) is judged by its own
    time context, every other step by its verb's.
    """
    out = []
    for step in result.results:
        name = prefix + step.step.name
        out.append(nagiosplugin.Metric(name, step, context="reply"))
        if step.seconds is not None:
            key = step.step.name if step.step.name in own_times else step.step.verb
            out.append(nagiosplugin.Metric(name, step.seconds, "s", min=0, context=f"time_{key}"))
    out.append(
        nagiosplugin.Metric(prefix + "total", result.total, "s", min=0, context="time_total")
    )
    out += certificate_metrics(result, prefix)
    return out


def certificate_metrics(result: Walk, prefix: str = "") -> list[nagiosplugin.Metric]:
    """cert_days, when a TLS handshake showed a certificate (judged in contexts.py)."""
    facts = result.tls
    if facts is None or facts.expiring is None:
        return []
    from check_smtp_verbs.contexts import CertificateDays
    from check_smtp_verbs.tls import days_left

    cert = facts.expiring
    subject = result.transcript.scrub(cert.subject)  # server-chosen text, like a reply
    value = CertificateDays(
        days_left(cert), subject, cert.not_before, cert.not_after, cert == facts.leaf
    )
    return [nagiosplugin.Metric(prefix + "cert_days", value, context="cert_days")]


class SmtpVerbs(nagiosplugin.Resource):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.walk: Walk | None = None

    @property
    def name(self) -> str:
        return "SMTP_VERBS"

    def probe(self) -> list[nagiosplugin.Metric]:
        if self.settings.resolver is None:
            self.walk = walk(self.settings)
        else:  # -H NAME looked up through --resolver, as --mx does
            from check_smtp_verbs.core import dns

            resolve = dns.resolve_with(dns.make_resolver(self.settings.resolver))
            self.walk = walk(self.settings, resolve=resolve)
        return metrics(self.walk, own_times=self.settings.step_timed)
