"""The judgement: which state each reply and each time deserves.

The probe only knows whether a reply let the walk go on; here an unexpected reply
becomes CRITICAL, or WARNING when the user said that code is merely a warning at
that verb (``--warning-codes 4xx`` for "transient failures page nobody").  QUIT is
the exception: a server that already accepted the recipient but fumbles the goodbye
is not down, so a bad or missing QUIT reply is at most WARNING (OK with -q).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import nagiosplugin
from nagiosplugin.state import ServiceState

from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.steps import StepResult

if TYPE_CHECKING:  # only TLS checks make certificate metrics
    import datetime


class ReplyContext(nagiosplugin.Context):
    """Judges each reply; a step's own key (``rcpt_2``) wins over its verb's (``rcpt``).

    ``banner_text`` is check_smtp's ``-e STRING``: a banner with the right code but
    without the text gets ``banner_text_state`` (WARNING, as check_smtp), the hint
    saying what was missing.
    """

    def __init__(
        self,
        warning_codes: Mapping[str, CodeSet],
        timeout_state: ServiceState = nagiosplugin.Critical,
        ignore_quit: bool = False,
        banner_text: str | None = None,
        banner_text_state: ServiceState = nagiosplugin.Warn,
    ) -> None:
        super().__init__("reply")
        self.warning_codes = warning_codes
        self.timeout_state = timeout_state
        self.ignore_quit = ignore_quit
        self.banner_text = banner_text
        self.banner_text_state = banner_text_state

    def lacks_banner_text(self, result: StepResult) -> bool:
        return (
            self.banner_text is not None
            and result.step.verb == "banner"
            and result.error is None
            and result.expected
            and self.banner_text not in "\n".join(result.lines)
        )

    def state(self, result: StepResult) -> ServiceState:
        if result.error is None and result.expected:
            return self.banner_text_state if self.lacks_banner_text(result) else nagiosplugin.Ok
        if result.step.verb == "quit":
            return nagiosplugin.Ok if self.ignore_quit else nagiosplugin.Warn
        if result.timed_out:
            return self.timeout_state
        if result.error is None:
            for key in (result.step.name, result.step.verb, "*"):
                codes = self.warning_codes.get(key)
                if codes is not None:
                    if codes.matches(result.code):
                        return nagiosplugin.Warn
                    if key == result.step.name != result.step.verb:
                        break  # the step's own list is the whole answer for it
        return nagiosplugin.Critical

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        result: StepResult = metric.value
        hint = None
        if self.lacks_banner_text(result):
            hint = f"the banner does not contain {self.banner_text!r}: {result.text}"
        return nagiosplugin.Result(self.state(result), hint, metric=metric)


def decimal(number: float) -> str:
    """A number in plain decimals, ``0.000001`` and never ``1e-06``.

    nagiosplugin prints numbers with str(), which switches to exponents below 1e-4 and
    from 1e16: not valid perfdata for every grapher, and not what the user typed.
    repr() is the shortest text that reads back as the same float, so no digit is
    invented or lost on the way; only its exponent is written out (the decimal module
    would do it too, at an import every plaintext check would pay for).
    """
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    text = repr(number)
    mantissa, e, exponent = text.partition("e")
    if not e:
        return text
    sign = "-" if mantissa.startswith("-") else ""
    whole, _, fraction = mantissa.lstrip("-").partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent)  # where the decimal point goes in digits
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def range_text(threshold: nagiosplugin.Range, omit_zero_start: bool = True) -> str:
    """A range as the plugin API writes it (nagiosplugin's own rules), in plain decimals."""
    text = "@" if threshold.invert else ""
    if threshold.start == -math.inf:
        text += "~:"
    elif not omit_zero_start or threshold.start != 0:
        text += f"{decimal(threshold.start)}:"
    if threshold.end != math.inf:
        text += decimal(threshold.end)
    return text


class TimeContext(nagiosplugin.ScalarContext):
    """Thresholds on one verb's time; perfdata rounded to the microsecond.

    nagiosplugin prints floats with repr(), which yields ``1e-05`` for ten
    microseconds: not valid perfdata for every grapher, hence the fixed format, and
    the thresholds (in perfdata and in the "outside range" hint) in plain decimals.
    """

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        for state, threshold in (
            (nagiosplugin.Critical, self.critical),
            (nagiosplugin.Warn, self.warning),
        ):
            if not threshold.match(metric.value):
                hint = f"outside range {range_text(threshold, omit_zero_start=False)}"
                return nagiosplugin.Result(state, hint, metric)
        return nagiosplugin.Result(nagiosplugin.Ok, None, metric)

    def performance(
        self, metric: nagiosplugin.Metric, resource: object
    ) -> nagiosplugin.Performance:
        return nagiosplugin.Performance(
            metric.name,
            f"{metric.value:.6f}",
            metric.uom,
            range_text(self.warning),
            range_text(self.critical),
            0,
        )


def time_contexts(
    labels: tuple[str, ...],
    warning: Mapping[str, nagiosplugin.Range],
    critical: Mapping[str, nagiosplugin.Range],
) -> list[TimeContext]:
    return [
        TimeContext(f"time_{label}", warning.get(label), critical.get(label)) for label in labels
    ]


def days_text(days: float) -> str:
    """-D's days as typed: ``30`` for 30.0, ``0.5``, never ``1e-06``."""
    return decimal(int(days) if float(days).is_integer() else days)


class CertificateDays(NamedTuple):
    """The value of the cert_days metric: the days and the certificate they belong to."""

    days: float
    subject: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    leaf: bool  # False: a chain certificate expires (or starts) first


class CertificateContext(nagiosplugin.Context):
    """Days until the certificate expires, with check_smtp's ``-D WARN[,CRIT]``.

    An expired (or not yet valid) certificate is CRITICAL whatever the thresholds,
    and also with --insecure: not verifying a self-signed gateway is a choice,
    letting its certificate run out is not.  The hint carries the date, because
    "when" is the first thing the admin needs.
    """

    def __init__(self, warning_days: float | None, critical_days: float | None) -> None:
        super().__init__("cert_days")
        self.warning_days = warning_days
        self.critical_days = critical_days

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        import datetime

        value: CertificateDays = metric.value
        which = "certificate" if value.leaf else f"chain certificate {value.subject}"
        end = value.not_after.strftime("%Y-%m-%d %H:%M:%S UTC")
        start = value.not_before.strftime("%Y-%m-%d %H:%M:%S UTC")
        days = value.days
        if value.not_before > datetime.datetime.now(datetime.timezone.utc):
            return nagiosplugin.Result(
                nagiosplugin.Critical, f"{which} not valid before {start}", metric
            )
        if days < 0:
            ago = math.floor(-days)
            return nagiosplugin.Result(
                nagiosplugin.Critical,
                f"{which} expired on {end} ({ago} day{'s' if ago != 1 else ''} ago)",
                metric,
            )
        left = math.floor(days)
        text = f"{which} expires in {left} day{'s' if left != 1 else ''} on {end}"
        if self.critical_days is not None and days < self.critical_days:
            return nagiosplugin.Result(
                nagiosplugin.Critical,
                f"{text} (critical below {days_text(self.critical_days)})",
                metric,
            )
        if self.warning_days is not None and days < self.warning_days:
            return nagiosplugin.Result(
                nagiosplugin.Warn, f"{text} (warning below {days_text(self.warning_days)})", metric
            )
        return nagiosplugin.Result(nagiosplugin.Ok, text, metric)

    def performance(
        self, metric: nagiosplugin.Metric, resource: object
    ) -> nagiosplugin.Performance:
        def low(days: float | None) -> str:
            return "" if days is None else f"{days_text(days)}:"

        return nagiosplugin.Performance(
            metric.name,
            # cut (not rounded) like the "expires in N days" text, so the two never disagree
            f"{math.trunc(metric.value.days * 100) / 100:.2f}",
            "",
            low(self.warning_days),
            low(self.critical_days),
        )


class VerdictContext(nagiosplugin.Context):
    """DANE, MTA-STS and TLS-RPT: their modules already weigh the facts against the RFCs
    and say the state and the words (dane.judge, mta_sts.judge, tlsrpt.judge); here the
    state becomes nagiosplugin's and the words the result's hint."""

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        from check_smtp_verbs.settings import STATES

        state, text = verdict_of(metric.value)
        return nagiosplugin.Result(STATES[state], text, metric)


def verdict_of(value: object) -> tuple[str, str]:
    """(state, text) of a DaneReport, an StsReport or a TlsRpt record."""
    verdict = getattr(value, "verdict", None)
    if verdict is not None:
        return verdict.state, verdict.text
    from check_smtp_verbs import tlsrpt

    return tlsrpt.judge(value)  # type: ignore[arg-type]


class PlainContext(nagiosplugin.Context):
    """A number for the graphs only (mta_sts_max_age_days): always OK, printed plainly."""

    def performance(
        self, metric: nagiosplugin.Metric, resource: object
    ) -> nagiosplugin.Performance:
        return nagiosplugin.Performance(metric.name, days_text(metric.value), "", None, None, 0)
