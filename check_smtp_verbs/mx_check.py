"""--mx as a nagiosplugin check: the resource that walks every MX host, and a DNS context.

Each host's walk becomes the same metrics as a single-host run, with the host name as
label prefix (``mx2.example.net_rcpt``), so every verb of every host is judged by the
ordinary contexts and the worst state wins.  The text is the ordinary summary's: it
names the failing host and verb first and says how many hosts were fine.
"""

from __future__ import annotations

import nagiosplugin
from nagiosplugin.state import ServiceState

from check_smtp_verbs import mx
from check_smtp_verbs.core.dns import Lookup
from check_smtp_verbs.resource import Verbs
from check_smtp_verbs.steps import Run
from check_smtp_verbs.summary import RunSummary

DNS_STATES: dict[str, ServiceState] = {
    "ok": nagiosplugin.Ok,
    "critical": nagiosplugin.Critical,
    "unknown": nagiosplugin.Unknown,
}
prefix = mx.label_prefix
MxSummary = RunSummary  # the name cli.py builds the check with


class MxVerbs(Verbs):
    """--mx: one walk per MX host, all at once, after the look-up."""

    def execute(self) -> Run:
        return mx.walk_all(self.settings)


class DnsContext(nagiosplugin.Context):
    """The MX look-up: NXDOMAIN, no MX/A or a null MX is CRITICAL, no answer UNKNOWN."""

    def __init__(self) -> None:
        super().__init__("dns")

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        lookup: Lookup = metric.value
        return nagiosplugin.Result(DNS_STATES[lookup.state], lookup.error or "", metric)
