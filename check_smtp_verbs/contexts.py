"""The judgement: which state each reply and each time deserves.

The probe only knows whether a reply let the walk go on; here an unexpected reply
becomes CRITICAL, or WARNING when the user said that code is merely a warning at
that verb (``--warning-codes 4xx`` for "transient failures page nobody").  QUIT is
the exception: a server that already accepted the recipient but fumbles the goodbye
is not down, so a bad or missing QUIT reply is at most WARNING (OK with -q).
"""

from __future__ import annotations

from collections.abc import Mapping

import nagiosplugin
from nagiosplugin.state import ServiceState

from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.probe import StepResult


class ReplyContext(nagiosplugin.Context):
    def __init__(
        self,
        warning_codes: Mapping[str, CodeSet],
        timeout_state: ServiceState = nagiosplugin.Critical,
        ignore_quit: bool = False,
    ) -> None:
        super().__init__("reply")
        self.warning_codes = warning_codes
        self.timeout_state = timeout_state
        self.ignore_quit = ignore_quit

    def state(self, result: StepResult) -> ServiceState:
        if result.error is None and result.expected:
            return nagiosplugin.Ok
        if result.step.verb == "quit":
            return nagiosplugin.Ok if self.ignore_quit else nagiosplugin.Warn
        if result.timed_out:
            return self.timeout_state
        if result.error is None:
            for verb in (result.step.verb, "*"):
                codes = self.warning_codes.get(verb)
                if codes is not None and codes.matches(result.code):
                    return nagiosplugin.Warn
        return nagiosplugin.Critical

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        return nagiosplugin.Result(self.state(metric.value), metric=metric)


class TimeContext(nagiosplugin.ScalarContext):
    """Thresholds on one verb's time; perfdata rounded to the microsecond.

    nagiosplugin prints floats with repr(), which yields ``1e-05`` for ten
    microseconds: not valid perfdata for every grapher, hence the fixed format.
    """

    def performance(
        self, metric: nagiosplugin.Metric, resource: object
    ) -> nagiosplugin.Performance:
        return nagiosplugin.Performance(
            metric.name, f"{metric.value:.6f}", metric.uom, self.warning, self.critical, 0
        )


def time_contexts(
    labels: tuple[str, ...],
    warning: Mapping[str, nagiosplugin.Range],
    critical: Mapping[str, nagiosplugin.Range],
) -> list[TimeContext]:
    return [
        TimeContext(f"time_{label}", warning.get(label), critical.get(label)) for label in labels
    ]
