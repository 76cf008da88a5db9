"""The check's TLS and AUTH steps: STARTTLS, the handshake, and AUTH, judged as steps.

The mechanics (context, bounded handshake, certificate facts, the AUTH exchange) live
in core/ and are shared with the notifier; what is here is the check's policy: what
"not offered" means with --starttls=optional, when QUIT can still be said after a
failure, and why AUTH is refused before anything is sent.  Imported only by checks
that use TLS or AUTH.
"""

from __future__ import annotations

from check_smtp_verbs.conversation import Conversation
from check_smtp_verbs.core import auth as core_auth
from check_smtp_verbs.core import tls
from check_smtp_verbs.steps import StepFailed, StepSkipped


class AuthRefused(StepFailed):
    """AUTH cannot be attempted; nothing was sent, the connection is still usable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, usable=True)


def starttls(conversation: Conversation) -> None:
    """Send STARTTLS if the server offers it (RFC 3207); its reply is judged as usual."""
    client = conversation.client
    if not client.has_extension("starttls"):
        if conversation.settings.starttls == "optional":
            conversation.skipped.update(("tls", "ehlo_tls"))
            raise StepSkipped("STARTTLS not offered, continuing in plaintext")
        raise StepFailed("STARTTLS not offered", usable=True)
    client.command("STARTTLS")


def handshake(conversation: Conversation) -> tuple[str, ...]:
    """Wrap the connection in TLS within the deadline; return the lines to show.

    Raises StepFailed with the reason (and whether QUIT can still be sent), or
    DeadlineExceeded.
    """
    settings = conversation.settings
    client = conversation.client
    server_name = settings.sni or settings.host
    # Bytes that arrived after the 220 to STARTTLS would be read as if they came over
    # TLS: the STARTTLS command-injection attack (CVE-2011-0411 and kin).  Refuse.
    if not settings.implicit_tls and client.waiting():
        raise StepFailed("the server sent data after its STARTTLS reply, before TLS began")
    verify = not settings.insecure
    if settings.dane is not None:
        from check_smtp_verbs import dane

        verify = verify and not dane.authenticates(conversation)
    try:
        context = tls.client_context(settings.ca_file, verify=verify)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StepFailed(f"cannot load the CA file {settings.ca_file}: {reason}") from None
    try:
        sock = tls.handshake(client.sock, context, server_name, conversation.deadline)
    except tls.TlsError as exc:
        client.sock = None  # closed with the failed handshake
        raise StepFailed(str(exc)) from None
    except BaseException:
        client.sock = None
        raise
    client.attach(sock)  # a fresh session: nothing learnt before STARTTLS is trusted
    usable = not settings.implicit_tls  # before the banner, a QUIT would only read the banner
    if settings.dane is not None:
        dane.after_handshake(conversation, sock)
    try:
        facts = tls.facts(sock, verify, server_name)
    except ImportError:
        raise StepFailed(
            "cannot read the certificate: the Python package cryptography is not installed",
            usable,
        ) from None
    except (ValueError, tls.TlsError) as exc:
        raise StepFailed(f"cannot read the server certificate: {exc}", usable) from None
    conversation.tls = facts
    minimum = settings.tls_min_version
    if minimum is not None and tls.version_number(facts.version) < float(minimum):
        raise StepFailed(f"{facts.version} negotiated, below --tls-min-version {minimum}", usable)
    if facts.verified:
        problem = tls.date_problem(facts)
        if problem:
            raise StepFailed(f"certificate verify failed: {problem}", usable)
    return (facts.version, facts.cipher)


def label(mechanism: str, user: str | None) -> str:
    return f"AUTH {mechanism}" + (f" as {user}" if user else "")


def authenticate(conversation: Conversation) -> None:
    """Run the AUTH exchange; the last reply (235, 535, ...) is the step's reply."""
    settings = conversation.settings
    client = conversation.client
    mechanism = settings.auth_mech
    assert mechanism is not None and settings.auth_secret is not None
    if conversation.tls is None and not settings.allow_plaintext_auth:
        raise AuthRefused(
            "AUTH refused over a plaintext connection (STARTTLS was not offered); "
            "nothing was sent (--allow-plaintext-auth to allow it)"
        )
    if not client.has_extension("auth"):
        raise AuthRefused("the server does not offer AUTH")
    offered = core_auth.offered(client)
    if mechanism not in offered:
        raise AuthRefused(
            f"the server does not offer AUTH {mechanism} (offers {' '.join(offered)})"
        )
    core_auth.exchange(client, mechanism, settings.auth_user or "", settings.auth_secret.reveal())
