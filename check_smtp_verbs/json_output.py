"""--json: the whole run as one JSON document, for scripts and dashboards.

The same check runs and the same contexts judge; only the presentation differs, so the
exit code and every state are exactly those of the plugin text.  Server text is given
as received (decoded, not cut or escaped): JSON quoting makes it safe, and a script
deserves the real thing.  Imported only with --json.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import nagiosplugin

from check_smtp_verbs import __version__
from check_smtp_verbs.resource import Verbs
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Walk
from check_smtp_verbs.summary import label_states, walk_states


def walk_document(
    walk: Walk, states: dict[str, str], state: str, prefix: str = "", transcript: bool = False
) -> dict[str, Any]:
    steps = []
    for r in walk.results:
        steps.append(
            {
                "name": r.step.name,
                "verb": r.step.verb,
                "command": r.step.label,
                "code": r.code,
                "lines": list(r.lines),
                "seconds": None if r.seconds is None else round(r.seconds, 6),
                "expected": None if r.step.expect is None else str(r.step.expect),
                "response": None if r.step.response is None else r.step.response.pattern,
                "error": r.error,
                "timed_out": r.timed_out,
                "state": states.get(prefix + r.step.name, "OK"),
            }
        )
    document: dict[str, Any] = {
        "host": walk.host,
        "port": walk.port,
        "address": walk.address,
        "state": state,  # every metric of this host, its total time included
        "total_seconds": round(walk.total, 6),
        "steps": steps,
    }
    if walk.message_id is not None:
        document["message_id"] = walk.message_id
    if walk.tls is not None:  # what the TLS handshake showed
        document["tls"] = _plain(walk.tls)
    if walk.pkix_error is not None:  # --mta-sts: PKIX failed, the walk went on unverified
        document["pkix_error"] = walk.pkix_error
    if walk.dane is not None:  # --dane: the TLSA look-up, each record's fate, the verdict
        document["dane"] = dane_document(walk.dane, states.get(prefix + "dane", "OK"))
    if walk.version_probes:  # --forbid-tls-version
        document["forbidden_tls"] = [
            dict(
                _plain(probe),
                state=states.get(f"{prefix}tls_{probe.version.replace('.', '_')}", "OK"),
            )
            for probe in walk.version_probes
        ]
    if transcript:
        document["transcript"] = [f"{e.direction}: {e.text}" for e in walk.transcript.entries]
    return document


_ORDER = ["OK", "WARNING", "CRITICAL", "UNKNOWN"]


def _plain(value: Any) -> Any:
    """NamedTuples (TLS facts, certificates) as objects, all the way down; dates as ISO."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def document(check: nagiosplugin.Check, resource: Verbs, settings: Settings) -> dict[str, Any]:
    """The run as JSON, judged by the same contexts and in the same words as the text."""
    out: dict[str, Any] = {
        "plugin": "check_smtp_verbs",
        "version": __version__,
        "state": str(check.state).upper(),
        "exit_code": check.exitcode,
        "summary": check.summary_str,
    }
    run = resource.run
    if run is None:
        return out
    labels = {name: str(state).upper() for name, state in label_states(check.results).items()}
    hosts = walk_states(run, resource.parts, check.results)
    lookup = run.lookup
    if lookup is not None:  # --mx
        out["mx"] = {
            "domain": lookup.domain,
            "hosts": [{"name": h.name, "preference": h.preference} for h in lookup.hosts],
            "implicit": lookup.implicit,
            "seconds": round(lookup.seconds, 6),
            "state": labels.get("dns", "OK"),
            "error": lookup.error,
        }
    out["hosts"] = []
    for (target, walk), state in zip(run.walks, hosts):
        entry = walk_document(
            walk, labels, str(state).upper(), target.prefix, settings.verbosity >= 3
        )
        if lookup is not None:
            entry["mx_preference"] = target.preference
        if target.address is not None:  # --all-addresses
            from check_smtp_verbs.families import family_name, family_of

            entry["target"] = target.name
            entry["family"] = family_name(family_of(target.address))
        out["hosts"].append(entry)
    if run.mta_sts is not None:
        found = run.mta_sts.found
        out["mta_sts"] = {
            "domain": found.domain,
            "state": labels.get("mta_sts", "OK"),
            "text": run.mta_sts.verdict.text,
            "found": found.state,
            "id": None if found.txt is None else found.txt.id,
            "policy": None if found.policy is None else _plain(found.policy),
            "problems": list(run.mta_sts.verdict.problems),
            "error": found.error,
            "seconds": round(found.seconds, 6),
        }
    if run.tlsrpt is not None:
        out["tlsrpt"] = {
            "domain": run.tlsrpt.domain,
            "state": labels.get("tlsrpt", "OK"),
            "found": run.tlsrpt.state,
            "rua": list(run.tlsrpt.rua),
            "error": run.tlsrpt.error,
        }
    if run.addresses is not None:
        out["addresses"] = [
            {
                "host": found.host,
                "state": labels.get(f"{found.prefix}addresses", "OK"),
                "lookups": [
                    {
                        "family": lookup.name,
                        "addresses": list(lookup.addresses),
                        "error": lookup.error,
                    }
                    for lookup in found.lookups
                ],
            }
            for found in run.addresses
        ]
    out["total_seconds"] = round(run.total, 6)
    if run.round_trip is not None:  # --imap/--pop3
        from check_smtp_verbs.roundtrip import judge

        trip = judge.document(run.round_trip, labels.get("mailbox", "OK"))
        for name in ("delivery", "pending", "lost"):  # their own thresholds may be worse
            if _ORDER.index(labels.get(name, "OK")) > _ORDER.index(str(trip["state"])):
                trip["state"] = labels[name]
        if settings.verbosity >= 3 and run.round_trip.transcript is not None:
            trip["transcript"] = [
                f"{e.direction}: {e.text}" for e in run.round_trip.transcript.entries
            ]
        out["round_trip"] = trip
    return out


def dane_document(report: Any, state: str) -> dict[str, Any]:
    found, verdict = report.lookup, report.verdict
    records = []
    if verdict.result is not None:
        records = [
            {
                "record": str(v.record),
                "usage": v.record.usage,
                "selector": v.record.selector,
                "matching_type": v.record.mtype,
                "state": v.state,
                "reason": v.reason,
                "depth": v.depth,
            }
            for v in verdict.result.verdicts
        ]
    matched = None if verdict.result is None else verdict.result.matched
    return {
        "state": state,
        "text": verdict.text,
        "lookup": found.state,
        "tlsa_name": found.owner,
        "reference_names": list(found.names),
        "matched": None if matched is None else str(matched),
        "records": records,
        "error": found.error,
    }


def emit(doc: dict[str, Any], exit_code: int) -> NoReturn:
    # default=str: a last resort for any value JSON has no type for
    print(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    sys.exit(exit_code)


class _SafetyNet(Exception):
    """The run outlived its own deadline by seconds: a bug, but still one JSON document."""


@contextmanager
def _safety_net(seconds: int) -> Iterator[None]:
    """SIGALRM after ``seconds``, as Check.main's timeout does, through public API only.

    Only a net: every blocking call of the probe is bounded by its own deadline, which
    ends the run first and names the step it was waiting for.
    """

    def ring(signum: int, frame: object) -> None:
        raise _SafetyNet

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def main(check: nagiosplugin.Check, settings: Settings) -> NoReturn:
    """Run the check as Check.main would, then print JSON instead of plugin text."""
    resource = check.resources[0]
    assert isinstance(resource, Verbs)
    try:
        with _safety_net(math.ceil(settings.timeout) + 2):
            check()
    except _SafetyNet:
        emit(
            {
                "plugin": "check_smtp_verbs",
                "version": __version__,
                "state": "UNKNOWN",
                "exit_code": 3,
                "summary": "check execution aborted by the safety timeout",
            },
            3,
        )
    emit(document(check, resource, settings), check.exitcode)


def usage_error(message: str) -> NoReturn:
    emit(
        {
            "plugin": "check_smtp_verbs",
            "version": __version__,
            "state": "UNKNOWN",
            "exit_code": 3,
            "summary": message,
        },
        3,
    )
