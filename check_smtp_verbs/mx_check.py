"""--mx as a nagiosplugin check: one Resource for all hosts, a DNS context, a Summary.

Each host's walk becomes the same metrics as a single-host run, with the host name as
label prefix (``mx2.example.net_rcpt``), so every verb of every host is judged by the
ordinary contexts and the worst state wins.  The status line then names the failing
host and verb first and says how many hosts were fine.
"""

from __future__ import annotations

import re

import nagiosplugin
from nagiosplugin.state import ServiceState

from check_smtp_verbs import mx
from check_smtp_verbs.core.dns import Lookup
from check_smtp_verbs.resource import metrics
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.summary import (
    clean,
    reply_problem,
    step_lines,
    tls_lines,
    transcript_lines,
)

_UNSAFE_LABEL = re.compile(r"[^A-Za-z0-9.-]")
DNS_STATES: dict[str, ServiceState] = {
    "ok": nagiosplugin.Ok,
    "critical": nagiosplugin.Critical,
    "unknown": nagiosplugin.Unknown,
}


def prefix(host: str) -> str:
    """The perfdata label prefix: nagiosplugin refuses labels with ' or =, and DNS names
    may carry any byte, so anything but letters, digits, dot and hyphen becomes _."""
    return _UNSAFE_LABEL.sub("_", host) + "_"


class MxVerbs(nagiosplugin.Resource):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run: mx.MxRun | None = None

    @property
    def name(self) -> str:
        return "SMTP_VERBS"

    def probe(self) -> list[nagiosplugin.Metric]:
        self.run = mx.walk_all(self.settings)
        lookup = self.run.lookup
        out = [
            nagiosplugin.Metric("dns", lookup, context="dns"),
            nagiosplugin.Metric("dns", lookup.seconds, "s", min=0, context="time_dns"),
        ]
        for host_walk in self.run.walks:
            out += metrics(host_walk.walk, prefix(host_walk.host.name))
        out.append(nagiosplugin.Metric("total", self.run.total, "s", min=0, context="time_total"))
        return out


class DnsContext(nagiosplugin.Context):
    """The MX look-up: NXDOMAIN, no MX/A or a null MX is CRITICAL, no answer UNKNOWN."""

    def __init__(self) -> None:
        super().__init__("dns")

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        lookup: Lookup = metric.value
        return nagiosplugin.Result(DNS_STATES[lookup.state], lookup.error or "", metric)


def host_states(run: mx.MxRun, results: nagiosplugin.Results) -> dict[str, ServiceState]:
    """The worst state of each host's metrics, in MX order."""
    states = {w.host.name: nagiosplugin.Ok for w in run.walks}
    for result in results:
        host = host_of(run, result)
        if host is not None:
            states[host] = max(states[host], result.state)
    return states


def host_of(run: mx.MxRun, result: nagiosplugin.Result) -> str | None:
    if result.metric is None:
        return None
    name = result.metric.name
    matches = [w.host.name for w in run.walks if name.startswith(prefix(w.host.name))]
    return max(matches, key=len) if matches else None


def _host_problem(run: mx.MxRun, host: str, result: nagiosplugin.Result) -> str:
    metric = result.metric
    if metric.context == "reply":
        return reply_problem(metric.value)
    if metric.context == "cert_days":
        return clean(result.hint)
    label = metric.name[len(prefix(host)) :]
    walk = next(w.walk for w in run.walks if w.host.name == host)
    what = (
        "the whole conversation"
        if label == "total"
        else next((r.step.label for r in walk.results if r.step.name == label), label)
    )
    return clean(f"{what} took {metric.value:.3f}s ({result.hint})")


def _hosts(run: mx.MxRun) -> str:
    if run.lookup.implicit:
        return f"no MX record, so its address record (RFC 5321 5.1): {run.lookup.domain}"
    return ", ".join(f"{w.host.name} ({w.host.preference})" for w in run.walks)


def _count(run: mx.MxRun, states: dict[str, ServiceState]) -> str:
    ok = sum(1 for state in states.values() if state == nagiosplugin.Ok)
    kind = "hosts" if run.lookup.implicit else "MX hosts"
    return f"{ok} of {len(states)} {kind} OK"


class MxSummary(nagiosplugin.Summary):
    def __init__(self, resource: MxVerbs, verbosity: int = 0) -> None:
        self.resource = resource
        self.verbosity = verbosity

    def ok(self, results: nagiosplugin.Results) -> str:
        run = self.resource.run
        if run is None:
            return super().ok(results)
        states = host_states(run, results)
        line = f"{run.lookup.domain}: {_count(run, states)}: {_hosts(run)} in {run.total:.3f}s"
        # OK despite a broken walk (e.g. --timeout 10:ok): still say what broke
        for host_walk in run.walks:
            broken = [
                r for r in host_walk.walk.results if r.error is not None and r.step.verb != "quit"
            ]
            if broken:
                line += f"; {host_walk.host.name}: {broken[0].error}"
        return clean(line, 1000)

    def problem(self, results: nagiosplugin.Results) -> str:
        run = self.resource.run
        first = results.first_significant
        if run is None or first.metric is None:
            return super().problem(results)
        if first.metric.context == "dns":
            return clean(run.lookup.error or "MX look-up failed")
        if first.metric.context == "time_dns":
            took = f"the MX look-up of {run.lookup.domain} took {first.metric.value:.3f}s"
            return clean(f"{took} ({first.hint}); {_count(run, host_states(run, results))}")
        host = host_of(run, first)
        states = host_states(run, results)
        if host is None:  # the overall total time
            return clean(
                f"the whole run took {first.metric.value:.3f}s ({first.hint}); "
                f"{_count(run, states)}"
            )
        others = [h for h, state in states.items() if state != nagiosplugin.Ok and h != host]
        also = f"; also failing: {', '.join(others)}" if others else ""
        return clean(f"{host}: {_host_problem(run, host, first)}; {_count(run, states)}{also}")

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        run = self.resource.run
        if run is None:
            return []
        states = host_states(run, results)
        lines = [f"MX look-up of {run.lookup.domain}: {run.lookup.seconds:.6f}s"]
        for host_walk in run.walks:
            host = host_walk.host
            preference = "" if host.preference is None else f" (MX {host.preference})"
            lines.append(f"{host.name}{preference}: {str(states[host.name]).upper()}")
            lines += step_lines(host_walk.walk, results, prefix(host.name))
            lines += tls_lines(host_walk.walk)
            if self.verbosity >= 3:
                lines += transcript_lines(host_walk.walk)
        return lines
