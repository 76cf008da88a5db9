"""The nagiosplugin Resource: one run (one walk per target), turned into metrics.

Deliberately thin, in nagiosplugin's idiom: the conversation lives in probe.py, the
judgement in contexts.py.  Each step yields a reply metric (its value is the whole
StepResult, judged by the "reply" context, never perfdata) and, when it took time,
a time metric judged against that verb's thresholds and printed as perfdata.

Every label is recorded with the walk and step it came from (a ``Part``), so that the
presentation never has to work out from a label's spelling which host it belongs to:
a host name may end in ``total`` or be a prefix of another host name.
"""

from __future__ import annotations

from typing import NamedTuple

import nagiosplugin

from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Run, StepResult, Target, TargetWalk, Walk


class Part(NamedTuple):
    """What one metric label stands for."""

    walk: int | None  # index into Run.walks; None: the run as a whole (DNS, --mx total)
    step: StepResult | None = None  # None: the walk's total time or its certificate


def account(
    run: Run, own_times: frozenset[str] | tuple[str, ...] = ()
) -> tuple[list[nagiosplugin.Metric], dict[str, Part]]:
    """The metrics of a run, and what each label stands for.

    A step named in ``own_times`` (``--verb-warning rcpt_2=1``) is judged by its own
    time context, every other step by its verb's.
    """
    out: list[nagiosplugin.Metric] = []
    parts: dict[str, Part] = {}
    if run.lookup is not None:
        parts["dns"] = Part(None)
        out.append(nagiosplugin.Metric("dns", run.lookup, context="dns"))
        out.append(nagiosplugin.Metric("dns", run.lookup.seconds, "s", min=0, context="time_dns"))
    for index, (target, walk) in enumerate(run.walks):
        prefix = target.prefix
        for step in walk.results:
            name = prefix + step.step.name
            parts[name] = Part(index, step)
            out.append(nagiosplugin.Metric(name, step, context=step.step.context))
            if step.seconds is not None:
                key = step.step.name if step.step.name in own_times else step.step.verb
                out.append(
                    nagiosplugin.Metric(name, step.seconds, "s", min=0, context=f"time_{key}")
                )
        if prefix:  # unprefixed, the walk's total is the run's (below)
            parts[prefix + "total"] = Part(index)
            out.append(
                nagiosplugin.Metric(prefix + "total", walk.total, "s", min=0, context="time_total")
            )
        certificate = certificate_metric(walk, prefix)
        if certificate is not None:
            parts[certificate.name] = Part(index)
            out.append(certificate)
        if walk.dane is not None:  # --dane: judged in contexts.VerdictContext
            parts[prefix + "dane"] = Part(index)
            out.append(nagiosplugin.Metric(prefix + "dane", walk.dane, context="dane"))
        for probe in walk.version_probes:  # --forbid-tls-version: tls_1_0, tls_1_1
            name = f"{prefix}tls_{probe.version.replace('.', '_')}"
            parts[name] = Part(index)
            out.append(nagiosplugin.Metric(name, probe, context="forbidden_tls"))
    if run.mta_sts is not None:
        parts["mta_sts"] = Part(None)
        out.append(nagiosplugin.Metric("mta_sts", run.mta_sts, context="mta_sts"))
        policy = run.mta_sts.found.policy
        if policy is not None:
            days = round(policy.max_age_days, 3)
            parts["mta_sts_max_age_days"] = Part(None)
            out.append(
                nagiosplugin.Metric("mta_sts_max_age_days", days, min=0, context="mta_sts_days")
            )
    if run.tlsrpt is not None:
        parts["tlsrpt"] = Part(None)
        out.append(nagiosplugin.Metric("tlsrpt", run.tlsrpt, context="tlsrpt"))
    for addresses in run.addresses or ():  # --all-addresses: each host's A/AAAA look-ups
        name = f"{addresses.prefix}addresses"
        parts[name] = Part(None)
        out.append(nagiosplugin.Metric(name, addresses, context="addresses"))
    alone = len(run.walks) == 1 and not run.several
    trip = run.round_trip
    if trip is not None:  # --imap/--pop3 (judged in roundtrip/judge.py)
        parts["mailbox"] = Part(None)
        out.append(nagiosplugin.Metric("mailbox", trip, context="mailbox"))
        if trip.delivery is not None:
            parts["delivery"] = Part(None)
            out.append(
                nagiosplugin.Metric("delivery", trip.delivery, "s", min=0, context="time_delivery")
            )
        if trip.pending is not None and trip.lost is not None:
            for name, count in (("pending", trip.pending), ("lost", trip.lost)):
                parts[name] = Part(None)
                out.append(nagiosplugin.Metric(name, count, min=0, context="probes"))
    parts["total"] = Part(0 if alone else None)
    out.append(nagiosplugin.Metric("total", run.total, "s", min=0, context="time_total"))
    return out, parts


def certificate_metric(result: Walk, prefix: str = "") -> nagiosplugin.Metric | None:
    """cert_days, when a TLS handshake showed a certificate (judged in contexts.py)."""
    facts = result.tls
    if facts is None or facts.expiring is None:
        return None
    from check_smtp_verbs.contexts import CertificateDays
    from check_smtp_verbs.core.tls import days_left

    cert = facts.expiring
    subject = result.transcript.scrub(cert.subject)  # server-chosen text, like a reply
    value = CertificateDays(
        days_left(cert), subject, cert.not_before, cert.not_after, cert == facts.leaf
    )
    return nagiosplugin.Metric(prefix + "cert_days", value, context="cert_days")


class Verbs(nagiosplugin.Resource):
    """One resource for every kind of run; subclasses only say how the run is made."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run: Run | None = None
        self.parts: dict[str, Part] = {}

    @property
    def name(self) -> str:
        return "SMTP_VERBS"

    def execute(self) -> Run:
        raise NotImplementedError

    def probe(self) -> list[nagiosplugin.Metric]:
        self.run = self.execute()
        out, self.parts = account(self.run, self.settings.step_timed)
        return out


class AddressVerbs(Verbs):
    """-H with --all-addresses: one walk per address of the host, all at once."""

    def execute(self) -> Run:
        from check_smtp_verbs import families

        return families.run_every_address(self.settings)


class SmtpVerbs(Verbs):
    """-H: one walk to one host."""

    def execute(self) -> Run:
        from check_smtp_verbs.core.deadline import Deadline, clock
        from check_smtp_verbs.probe import walk

        started = clock()
        deadline = Deadline(self.settings.timeout, start=started)  # the round trip's too
        if self.settings.resolver is None:
            done = walk(self.settings, deadline)
        else:  # -H NAME looked up through --resolver, as --mx does
            from check_smtp_verbs.core import dns

            resolve = dns.resolve_with(dns.make_resolver(self.settings.resolver))
            done = walk(self.settings, deadline, resolve=resolve)
        if self.settings.mailbox_url is None:
            return Run((TargetWalk(Target(done.host), done),), done.total)
        from check_smtp_verbs.roundtrip.run import after_walk

        trip = after_walk(self.settings, done, deadline)
        return Run((TargetWalk(Target(done.host), done),), done.total, round_trip=trip)
