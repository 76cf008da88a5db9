"""--json: the whole run as one JSON document, for scripts and dashboards.

The same check runs and the same contexts judge; only the presentation differs, so the
exit code and every state are exactly those of the plugin text.  Server text is given
as received (decoded, not cut or escaped): JSON quoting makes it safe, and a script
deserves the real thing.  Imported only with --json.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, NoReturn

import nagiosplugin
from nagiosplugin.runtime import with_timeout

from check_smtp_verbs import __version__
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Walk


def _states(results: nagiosplugin.Results) -> dict[str, str]:
    states: dict[str, nagiosplugin.state.ServiceState] = {}
    for result in results:
        if result.metric is not None:
            name = result.metric.name
            states[name] = max(states.get(name, nagiosplugin.Ok), result.state)
    return {name: str(state).upper() for name, state in states.items()}


def walk_document(
    walk: Walk, states: dict[str, str], prefix: str = "", transcript: bool = False
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
        # every metric of this host, its total time included
        "state": _worst(state for name, state in states.items() if _of(name, prefix, walk)),
        "total_seconds": round(walk.total, 6),
        "steps": steps,
    }
    if walk.message_id is not None:
        document["message_id"] = walk.message_id
    if walk.tls is not None:  # what the TLS handshake showed
        document["tls"] = _plain(walk.tls)
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


def _of(name: str, prefix: str, walk: Walk) -> bool:
    if prefix:
        return name.startswith(prefix)
    return name == "total" or any(r.step.name == name for r in walk.results)


def _worst(states: Any) -> str:
    return max(states, key=_ORDER.index, default="OK")


def document(check: nagiosplugin.Check, settings: Settings) -> dict[str, Any]:
    resource = check.resources[0] if check.resources else None
    states = _states(check.results)
    out: dict[str, Any] = {
        "plugin": "check_smtp_verbs",
        "version": __version__,
        "state": str(check.state).upper(),
        "exit_code": check.exitcode,
        "summary": check.summary_str,
    }
    run = getattr(resource, "run", None)
    walk = getattr(resource, "walk", None)
    if run is not None:  # --mx
        from check_smtp_verbs.mx_check import prefix

        lookup = run.lookup
        out["mx"] = {
            "domain": lookup.domain,
            "hosts": [{"name": h.name, "preference": h.preference} for h in lookup.hosts],
            "implicit": lookup.implicit,
            "seconds": round(lookup.seconds, 6),
            "state": states.get("dns", "OK"),
            "error": lookup.error,
        }
        out["hosts"] = []
        for host_walk in run.walks:
            entry = walk_document(
                host_walk.walk, states, prefix(host_walk.host.name), settings.verbosity >= 3
            )
            entry["mx_preference"] = host_walk.host.preference
            out["hosts"].append(entry)
        out["total_seconds"] = round(run.total, 6)
    elif walk is not None:
        out["hosts"] = [walk_document(walk, states, "", settings.verbosity >= 3)]
        out["total_seconds"] = round(walk.total, 6)
    return out


def emit(doc: dict[str, Any], exit_code: int) -> NoReturn:
    # default=str: a last resort for any value JSON has no type for
    print(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    sys.exit(exit_code)


def main(check: nagiosplugin.Check, settings: Settings) -> NoReturn:
    """Run the check as Check.main would, then print JSON instead of plugin text."""
    try:
        with_timeout(math.ceil(settings.timeout) + 2, check)
    except nagiosplugin.Timeout:  # the safety net only: the probe's deadline comes first
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
    emit(document(check, settings), check.exitcode)


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
