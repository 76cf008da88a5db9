"""MTA-STS (RFC 8461): the domain's published promise that its MX hosts offer TLS.

A domain announces a policy with a TXT record at ``_mta-sts.DOMAIN`` and serves it at
``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``.  Senders that honour it (large
providers do) cache the policy and, in ``enforce`` mode, refuse to deliver to an MX
host the policy does not list or that cannot show a certificate valid for its name.
The failures that bite are on the domain's side and invisible to an SMTP check: a
new MX host missing from the ``mx:`` lines, an expired certificate on the policy web
server, a policy that stopped parsing.  This module finds the policy and parses it;
judging the MX hosts against it belongs to the check.

The fetch follows RFC 8461 section 3.3: verified TLS (the system's CAs, or --ca-file's),
no redirects, HTTP 200 with ``text/plain`` only, a bounded size, all of it inside the
check's one deadline, and the policy host's address taken from the same resolver as
everything else (--resolver), never from /etc/hosts.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from check_smtp_verbs.core.deadline import (
    AddrInfo,
    Deadline,
    DeadlineExceeded,
    clock,
    connect,
)

PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 3.3: "a reasonable upper bound, e.g. 64 KB"
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: at most one year
MODES = ("enforce", "testing", "none")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")

Resolve = Callable[[str, int, int, Deadline], list[AddrInfo]]


class StsTxt(NamedTuple):
    """What ``_mta-sts.DOMAIN`` says: "present" (with the policy id), "absent" or
    "malformed" (senders then assume the domain has no policy, RFC 8461 3.1)."""

    state: str
    id: str | None = None
    error: str | None = None
    record: str | None = None


def parse_txt(texts: Sequence[str]) -> StsTxt:
    """The MTA-STS TXT record among a name's TXT records (others are ignored)."""
    candidates = [text for text in texts if text.startswith("v=STSv1")]
    if not candidates:
        return StsTxt("absent")
    if len(candidates) > 1:
        return StsTxt(
            "malformed",
            error=f"{len(candidates)} TXT records start with v=STSv1; senders take that "
            "as no policy (RFC 8461 3.1)",
        )
    record = candidates[0]
    fields = [field.strip(" \t") for field in record.split(";")]
    if fields and fields[-1] == "":
        fields.pop()  # a trailing ";" is allowed
    if fields[0] != "v=STSv1":
        return StsTxt("malformed", error=f"the record does not start with v=STSv1;: {record!r}")
    found: str | None = None
    for field in fields[1:]:
        name, equals, value = field.partition("=")
        if not equals or not name:
            return StsTxt("malformed", error=f"{field!r} is not name=value", record=record)
        if name == "id":
            if not _ID.fullmatch(value):
                return StsTxt(
                    "malformed",
                    error=f"id={value!r} is not 1 to 32 letters and digits",
                    record=record,
                )
            found = found or value
    if found is None:
        return StsTxt("malformed", error="the record has no id=", record=record)
    return StsTxt("present", found, record=record)


class Policy(NamedTuple):
    """A parsed policy (RFC 8461 3.2)."""

    version: str
    mode: str
    max_age: int  # seconds
    mx: tuple[str, ...]

    def covers(self, host: str) -> bool:
        return any(mx_pattern_matches(pattern, host) for pattern in self.mx)

    @property
    def max_age_days(self) -> float:
        return self.max_age / 86400


class PolicyError(Exception):
    """The policy could not be fetched or parsed; the message says why in one line."""


def parse_policy(text: str) -> Policy:
    """RFC 8461 3.2: ``key: value`` lines (CRLF or LF); ``mx`` may repeat, unknown
    keys are extensions and ignored, the first of a repeated key counts."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip(" \t")
        if not line:
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(" \t").lower(), value.strip(" \t")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise PolicyError(f"line {number} is not 'key: value': {_shown(line)}")
        if name == "mx":
            pattern = value.lower().rstrip(".")
            if not _valid_pattern(pattern):
                raise PolicyError(f"mx: {_shown(value)} is not a host name or *.domain pattern")
            mx.append(pattern)
        else:
            fields.setdefault(name, value)
    for required in ("version", "mode", "max_age"):
        if required not in fields:
            raise PolicyError(f"the policy has no {required}: field")
    if fields["version"] != "STSv1":
        raise PolicyError(f"version: {_shown(fields['version'])} is not STSv1")
    mode = fields["mode"].lower()
    if mode not in MODES:
        raise PolicyError(f"mode: {_shown(fields['mode'])} is not enforce, testing or none")
    max_age = fields["max_age"]
    if not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
        raise PolicyError(f"max_age: {_shown(max_age)} is not a number of seconds")
    if int(max_age) > MAX_AGE_LIMIT:
        raise PolicyError(f"max_age: {max_age} is more than a year ({MAX_AGE_LIMIT})")
    if mode != "none" and not mx:
        raise PolicyError(f"a policy in {mode} mode lists no mx: host")
    return Policy("STSv1", mode, int(max_age), tuple(mx))


def _shown(text: str, limit: int = 60) -> str:
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _valid_pattern(pattern: str) -> bool:
    labels = pattern.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def mx_pattern_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: ``*.example.com`` covers ``mail.example.com`` but neither
    ``example.com`` nor ``a.mail.example.com``; otherwise names match exactly."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return pattern == host


# -- the HTTPS fetch ---------------------------------------------------------------


def policy_url(domain: str) -> str:
    return f"https://mta-sts.{domain}{PATH}"


def fetch_policy(
    domain: str,
    resolve: Resolve,
    deadline: Deadline,
    *,
    cafile: str | None = None,
    family: int = socket.AF_UNSPEC,
    port: int = 443,
) -> str:
    """The policy text of ``domain``, fetched as RFC 8461 3.3 says; PolicyError with a
    one-line reason otherwise.  ``port`` is for tests; RFC 8461 fixes 443."""
    host = f"mta-sts.{domain}"
    url = policy_url(domain)
    try:
        sock = _open(host, port, resolve, family, deadline, cafile)
    except DeadlineExceeded:
        raise PolicyError(f"timeout after {deadline.seconds:g}s connecting to {host}") from None
    try:
        return _get(host, sock)
    except DeadlineExceeded:
        raise PolicyError(f"timeout after {deadline.seconds:g}s fetching {url}") from None
    finally:
        sock.close()


def _open(
    host: str,
    port: int,
    resolve: Resolve,
    family: int,
    deadline: Deadline,
    cafile: str | None,
) -> ssl.SSLSocket:
    """A verified TLS connection to the policy host, through the core's TLS layer (the
    same context rules and deadline-bounded handshake as the SMTP servers get)."""
    from check_smtp_verbs.core import tls

    try:
        # cafile replaces the system store, as it does for the SMTP servers; OpenSSL
        # checks the dates itself (own_date_check=False): only the verdict matters here
        context = tls.client_context(cafile, verify=True, own_date_check=False)
    except (OSError, ValueError) as exc:
        raise PolicyError(f"cannot load the CA file {cafile}: {exc}") from None
    try:
        addresses = resolve(host, port, family, deadline)
    except OSError as exc:
        raise PolicyError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    failures: list[str] = []
    for address in addresses:
        ip = address[4][0]
        shown = f"{ip}:{port}" if address[0] == socket.AF_INET else f"[{ip}]:{port}"
        try:
            raw = connect(address, deadline)
        except OSError as exc:
            failures.append(f"{shown}: {exc.strerror or exc}")
            continue
        try:
            return tls.handshake(raw, context, host, deadline)
        except tls.TlsError as exc:
            reason = str(exc)
            verify = "certificate verify failed: "
            if reason.startswith(verify):
                raise PolicyError(
                    f"the certificate of {host} is not valid: {reason[len(verify) :]}"
                ) from None
            failures.append(f"{shown}: {reason}")
    raise PolicyError(f"cannot connect to {host} ({'; '.join(failures) or 'no address'})")


def _get(host: str, sock: ssl.SSLSocket) -> str:
    """GET the policy; errors name the host (the path is always the same)."""
    import http.client

    connection = http.client.HTTPConnection(host)
    connection.sock = sock  # already connected through the deadline: no second connect
    try:
        connection.request(
            "GET",
            PATH,
            headers={
                "Host": host,
                "User-Agent": "check_smtp_verbs (MTA-STS policy check)",
                "Accept": "text/plain",
                "Connection": "close",
            },
        )
        response = connection.getresponse()
        if 300 <= response.status < 400:
            where = response.getheader("Location") or "nowhere"
            raise PolicyError(
                f"{host} redirects (HTTP {response.status} to {_shown(where)}), "
                "not followed (RFC 8461)"
            )
        if response.status != 200:
            raise PolicyError(f"{host} answered HTTP {response.status} {response.reason}")
        media = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if media != "text/plain":
            raise PolicyError(
                f"{host} serves the policy as {_shown(media or 'no Content-Type')}, not text/plain"
            )
        declared = (response.getheader("Content-Length") or "").strip()
        if declared.isdigit() and int(declared) > MAX_POLICY_BYTES:
            raise PolicyError(_too_big(host, int(declared)))
        body = response.read(MAX_POLICY_BYTES + 1)
        if len(body) > MAX_POLICY_BYTES:
            raise PolicyError(_too_big(host, None))
    except http.client.HTTPException as exc:
        raise PolicyError(f"{host}: invalid HTTP response ({type(exc).__name__}: {exc})") from None
    except ssl.SSLError as exc:
        raise PolicyError(f"{host}: TLS failed ({exc.reason or exc})") from None
    except OSError as exc:
        raise PolicyError(f"{host}: {exc.strerror or exc}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{host}: the policy is not UTF-8 text") from None


def _too_big(host: str, size: int | None) -> str:
    told = f"{size} bytes, " if size is not None else ""
    return f"{host}: the policy is too big ({told}more than {MAX_POLICY_BYTES // 1024} KiB)"


# -- the whole look-up ---------------------------------------------------------------


class MtaSts(NamedTuple):
    """What a domain publishes: the TXT record and, if there is one, the policy.

    ``state``: "none" (no TXT record: no MTA-STS), "malformed" (a TXT record senders
    ignore), "ok" (a valid policy), "failed" (TXT present, policy unreachable or invalid:
    senders keep a cached policy and may refuse mail), "unknown" (DNS gave no answer).
    """

    domain: str
    state: str
    txt: StsTxt | None = None
    policy: Policy | None = None
    error: str | None = None
    seconds: float = 0.0


def lookup(
    domain: str,
    resolver: Any,
    deadline: Deadline,
    *,
    cafile: str | None = None,
    family: int = socket.AF_UNSPEC,
    port: int = 443,
) -> MtaSts:
    """TXT record, then policy, of ``domain`` through ``resolver`` (dnspython)."""
    from check_smtp_verbs.core.dns import resolve_with, txt

    started = clock()

    def result(state: str, **fields: Any) -> MtaSts:
        return MtaSts(domain, state, seconds=clock() - started, **fields)

    name = f"_mta-sts.{domain}"
    try:
        answer = txt(resolver, name, deadline)
    except DeadlineExceeded:
        return result(
            "unknown", error=f"timeout after {deadline.seconds:g}s waiting for TXT {name}"
        )
    if answer.state != "answer":
        return result("unknown", error=f"cannot get TXT {name}: {answer.error}")
    record = parse_txt(answer.records)
    if record.state == "absent":
        return result("none", txt=record, error=f"no MTA-STS TXT record at {name}")
    if record.state == "malformed":
        return result("malformed", txt=record, error=f"TXT {name}: {record.error}")
    try:
        text = fetch_policy(
            domain, resolve_with(resolver), deadline, cafile=cafile, family=family, port=port
        )
        policy = parse_policy(text)
    except PolicyError as exc:
        return result("failed", txt=record, error=str(exc))
    return result("ok", txt=record, policy=policy)


# -- the verdict for a domain and its MX hosts ---------------------------------------------


class HostTls(NamedTuple):
    """What the check saw at one MX host, as MTA-STS cares: a TLS session, and a
    certificate PKIX-valid for the MX host name (``pkix_error`` None)."""

    host: str
    tls: bool
    pkix_error: str | None = None
    error: str | None = None  # why there was no TLS session


class Verdict(NamedTuple):
    state: str  # "ok", "warning", "critical", "unknown"
    text: str
    problems: tuple[str, ...] = ()


REFUSED = "senders keep a cached policy and may refuse mail"


def judge(found: MtaSts, hosts: Sequence[HostTls], *, required: bool = False) -> Verdict:
    """The issue's outcomes: ``enforce`` with an MX host uncovered or failing TLS is
    CRITICAL, the same in ``testing`` is WARNING; a TXT record without a usable policy
    is CRITICAL; no MTA-STS at all is OK unless ``required``."""
    domain = found.domain
    if found.state == "unknown":
        return Verdict("unknown", f"MTA-STS {domain}: {found.error}")
    if found.state == "none":
        if required:
            return Verdict("critical", f"MTA-STS {domain}: {found.error} (--mta-sts=required)")
        return Verdict("ok", f"MTA-STS {domain}: {found.error}")
    if found.state == "malformed":
        text = f"MTA-STS {domain}: {found.error}; senders ignore it"
        return Verdict("critical" if required else "warning", text)
    if found.state == "failed" or found.policy is None:
        return Verdict("critical", f"MTA-STS {domain}: {found.error}: {REFUSED}")
    policy = found.policy
    if policy.mode == "none":
        text = f"MTA-STS {domain}: policy mode none (withdrawn: senders do not enforce it)"
        if required:
            return Verdict("critical", f"{text} (--mta-sts=required)")
        return Verdict("ok", text)
    problems: list[str] = []
    for host in hosts:
        if not policy.covers(host.host):
            problems.append(f"{host.host} is not covered by mx: {', '.join(policy.mx)}")
        elif not host.tls:
            problems.append(f"{host.host} has no TLS: {host.error or 'STARTTLS not offered'}")
        elif host.pkix_error is not None:
            problems.append(f"{host.host}: certificate not valid: {host.pkix_error}")
    if not problems:
        days = f"{policy.max_age_days:g}"
        return Verdict(
            "ok",
            f"MTA-STS {domain}: mode {policy.mode}, {len(hosts)} MX host(s) covered "
            f"with valid TLS, max_age {days} days",
        )
    state = "critical" if policy.mode == "enforce" else "warning"
    consequence = (
        "senders that honour MTA-STS will not deliver there"
        if policy.mode == "enforce"
        else "senders in testing mode will report it"
    )
    text = f"MTA-STS {domain} (mode {policy.mode}): {'; '.join(problems)}: {consequence}"
    return Verdict(state, text, tuple(problems))


# -- the check's part: look-ups beside the MX walks, and the verdict after them -------------


class StsReport(NamedTuple):
    """What --mta-sts found and what it means for the MX hosts that were walked."""

    found: MtaSts
    verdict: Verdict


def domain_lookups(settings: Any, deadline: Deadline) -> tuple[MtaSts | None, Any]:
    """The domain's MTA-STS policy (--mta-sts) and TLS-RPT record (--mta-sts or --dane),
    run in a thread of its own beside the walks, under the run's deadline."""
    from check_smtp_verbs import tlsrpt
    from check_smtp_verbs.core.dns import make_resolver, validating

    resolver = validating(make_resolver(settings.resolver))
    found = None
    if settings.mta_sts is not None:
        found = lookup(
            settings.host, resolver, deadline, cafile=settings.ca_file, family=settings.family
        )
    return found, tlsrpt.lookup(settings.host, resolver, deadline)


VERIFY_FAILED = "certificate verify failed: "


def again_without_pkix(walked: Any, settings: Any, deadline: Deadline, resolve: Any) -> Any:
    """A walk whose handshake failed PKIX, repeated without verification.

    With --mta-sts and opportunistic STARTTLS (implied by --mx, or -S optional), a
    certificate PKIX rejects is the policy's business: CRITICAL under ``enforce``,
    WARNING under ``testing``, nothing a sender minds without a policy.  The failed
    handshake closed the connection, so the walk is done again unverified (the
    failure case only: one connection more) and carries the PKIX failure with it.
    """
    failure = next(
        (r.error for r in walked.results if r.step.verb == "tls" and r.error is not None), None
    )
    if failure is None or not failure.startswith(VERIFY_FAILED):
        return walked
    from check_smtp_verbs.probe import walk

    again = walk(settings._replace(insecure=True), deadline, resolve)
    return again._replace(pkix_error=failure[len(VERIFY_FAILED) :])


def host_tls(name: str, walk: Any) -> HostTls:
    """What a walk showed about the host's TLS, as MTA-STS asks it."""
    if walk.pkix_error is not None:
        return HostTls(name, True, pkix_error=walk.pkix_error)
    for result in walk.results:
        if result.step.verb == "tls" and result.error is not None:
            if result.error.startswith(VERIFY_FAILED):
                return HostTls(name, True, pkix_error=result.error[len(VERIFY_FAILED) :])
            return HostTls(name, False, error=result.error)
    if walk.tls is not None:
        return HostTls(name, True)
    for result in walk.results:
        if result.step.verb == "starttls":
            if result.error is not None:
                return HostTls(name, False, error=result.error)
            if result.lines:
                return HostTls(name, False, error=result.lines[0].split(",")[0])
    broken = next((r.error for r in walk.results if r.error is not None), None)
    return HostTls(name, False, error=broken or "the walk ended before STARTTLS")


def report(found: MtaSts, walks: Sequence[Any], required: bool) -> StsReport:
    """``walks``: (host name, Walk) of every MX host."""
    hosts = [host_tls(name, walk) for name, walk in walks]
    return StsReport(found, judge(found, hosts, required=required))
