"""The plan and the walk: which verbs, in which order, and when to stop.

The walk is a plan (a list of steps chosen from the settings) carried out over one
connection under one deadline.  A step knows what to send and which codes let the
walk go on; adding STARTTLS, AUTH or DATA means adding steps to the plan, not
branches to the walk.  The walk stops at the first reply it did not expect and still
says QUIT when the connection is in a state to hear it.  It judges nothing beyond
"may I go on": states are the contexts' business.
"""

from __future__ import annotations

from collections.abc import Sequence

from check_smtp_verbs.conversation import Conversation
from check_smtp_verbs.core.deadline import Deadline, Resolve, clock, resolve
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.settings import EHLO_FALLBACK, Settings
from check_smtp_verbs.steps import Send, Step, StepResult, VersionProbe, Walk

# --quit-after VERB stops after the last step of any of these verbs, as swaks does:
# "ehlo" after the last greeting (the HELO fallback, LHLO, the EHLO after STARTTLS),
# "starttls" once TLS is up (after the handshake, not merely the 220).
_GREETINGS = frozenset({"ehlo", "helo", "lhlo", "ehlo_tls"})
QUIT_AFTER: dict[str, frozenset[str]] = {
    **dict.fromkeys(("ehlo", "helo", "lhlo"), _GREETINGS),
    "starttls": frozenset({"starttls", "tls"}),
}


def _step(name: str, verb: str, label: str, awaited: str, settings: Settings, send: Send) -> Step:
    return Step(name, verb, label, awaited, settings.expected_for(name, verb), send)


def plan(settings: Settings) -> list[Step]:
    """The steps after the banner, in order; QUIT is added by the walk itself."""
    helo = _step(
        "helo",
        "helo",
        f"HELO {settings.helo}",
        "the HELO reply",
        settings,
        lambda c: c.client.helo(settings.helo),
    )
    if settings.lmtp:
        steps = [
            _step(
                "lhlo",
                "lhlo",
                f"LHLO {settings.helo}",
                "the LHLO reply",
                settings,
                lambda c: c.client.greeting(settings.helo, "LHLO"),
            )
        ]
    elif settings.helo_only:
        steps = [helo]
    else:
        ehlo = _step(
            "ehlo",
            "ehlo",
            f"EHLO {settings.helo}",
            "the EHLO reply",
            settings,
            lambda c: c.client.greeting(settings.helo),
        )
        steps = [ehlo._replace(fallback=helo)]
    steps += before_tls_steps(settings)
    steps += secure_steps(settings)
    if settings.sender is not None or settings.recipients or settings.relay_tests:
        sender = settings.sender or ""
        steps.append(
            _step(
                "mail",
                "mail",
                f"MAIL FROM:<{sender}>",
                "the MAIL reply",
                settings,
                lambda c: c.client.mail(sender),
            )
        )
    steps += command_steps(settings, steps)
    for number, recipient in enumerate(settings.recipients, start=1):
        name = "rcpt" if number == 1 else f"rcpt_{number}"
        steps.append(
            _step(
                name,
                "rcpt",
                f"RCPT TO:<{recipient}>",
                "the RCPT reply",
                settings,
                lambda c, r=recipient: c.client.rcpt(r),
            )
        )
    if settings.data:
        steps += data_steps(settings)
    steps += relay_steps(settings)
    return steps


def before_tls_steps(settings: Settings) -> list[Step]:
    """What must be refused on the plaintext connection, right after the greeting:
    --no-plaintext-auth looks at the AUTH the greeting advertised (nothing is sent), and
    --starttls-required tries MAIL FROM, which must get 5xx (RSET after it if taken)."""
    steps = []
    if settings.no_plaintext_auth is not None:
        steps.append(
            Step(
                "plaintext_auth",
                "plaintext_auth",
                "AUTH before TLS",
                "",
                None,
                _auth_before_tls,
                context="plaintext_auth",
                timed=False,
            )
        )
    if settings.starttls_required:
        sender = settings.sender or ""
        mail = _step(
            "mail_plain",
            "mail_plain",
            f"MAIL FROM:<{sender}> before STARTTLS",
            "the MAIL reply before STARTTLS",
            settings,
            lambda c: c.client.mail(sender),
        )._replace(goes_on=True, context="starttls_required")
        rset = _step(
            "rset_plain",
            "rset",
            "RSET",
            "the RSET reply",
            settings,
            lambda c: c.client.command("RSET"),
        )

        def rset_if_taken(results: Sequence[StepResult]) -> list[Step]:
            code = next((r.code for r in reversed(results) if r.step.name == "mail_plain"), None)
            return [rset] if code is not None and 200 <= code < 300 else []

        steps += [mail, Step("rset_plain", "rset", "", "", None, expand=rset_if_taken)]
    return steps


def _auth_before_tls(conversation: Conversation) -> tuple[str, ...]:
    """The AUTH line of the greeting just read (``AUTH PLAIN LOGIN``), or nothing."""
    offered = dict.fromkeys(conversation.client.extensions.get("auth", "").upper().split())
    return (f"AUTH {' '.join(offered)}",) if offered else ()


def relay_steps(settings: Settings) -> list[Step]:
    """--relay-test: RCPT TO each address in the open transaction (a new one after
    --data's message, so that no relay-test recipient is ever in a message's envelope),
    each judged by the relay context, then RSET so nothing of it can be delivered."""
    if not settings.relay_tests:
        return []
    steps = []
    if settings.data:
        sender = settings.sender or ""
        steps.append(
            _step(
                "relay_mail",
                "mail",
                f"MAIL FROM:<{sender}> (relay test)",
                "the MAIL reply",
                settings,
                lambda c: c.client.mail(sender),
            )
        )
    for number, address in enumerate(settings.relay_tests, start=1):
        name = "relay" if number == 1 else f"relay_{number}"
        steps.append(
            _step(
                name,
                "relay",
                f"RCPT TO:<{address}> (relay test)",
                "the RCPT reply of the relay test",
                settings,
                lambda c, a=address: c.client.rcpt(a),
            )._replace(goes_on=True, context="relay")
        )
    steps.append(
        _step(
            "relay_rset",
            "rset",
            "RSET",
            "the RSET reply",
            settings,
            lambda c: c.client.command("RSET"),
        )
    )
    return steps


def secure_steps(settings: Settings) -> list[Step]:
    """STARTTLS, the handshake and the second EHLO, then AUTH: right after EHLO."""
    steps = []
    if settings.starttls is not None:
        from check_smtp_verbs import secure

        greeting = "LHLO" if settings.lmtp else "EHLO"

        steps += dane_steps(settings)
        steps += [
            _step(
                "starttls", "starttls", "STARTTLS", "the STARTTLS reply", settings, secure.starttls
            ),
            handshake_step(settings),
            _step(
                "ehlo_tls",
                "ehlo_tls",
                f"{greeting} {settings.helo} (after STARTTLS)",
                f"the {greeting} reply after STARTTLS",
                settings,
                lambda c: c.client.greeting(settings.helo, greeting),
            ),
        ]
    if settings.auth_mech is not None:
        from check_smtp_verbs import secure

        steps.append(
            _step(
                "auth",
                "auth",
                secure.label(settings.auth_mech, settings.auth_user),
                "the AUTH reply",
                settings,
                secure.authenticate,
            )
        )
    return steps


def dane_steps(settings: Settings) -> list[Step]:
    """--dane: the TLSA look-up, just before TLS (its answer decides how to verify)."""
    if settings.dane is None:
        return []
    from check_smtp_verbs import dane

    owner = f"_{settings.port}._tcp.{settings.host}"
    return [
        Step(
            "tlsa", "tlsa", f"TLSA {owner}", f"the TLSA records at {owner}", None, dane.lookup_step
        )
    ]


def command_steps(settings: Settings, before: list[Step]) -> list[Step]:
    """The -C/--command-expect verbs: after the greeting (and MAIL FROM, as check_smtp).

    Each is named by its verb (``noop``, ``vrfy_2``), skipping names already taken.
    """
    taken = {step.name for step in before} | {"rcpt", "data", "dot"}
    taken |= {f"rcpt_{n}" for n in range(2, len(settings.recipients) + 1)}
    steps = []
    for command in settings.commands:
        name, number = command.verb, 1
        while name in taken:
            number += 1
            name = f"{command.verb}_{number}"
        taken.add(name)
        steps.append(
            Step(
                name,
                command.verb,
                command.text,
                f"the {command.text.split(' ', 1)[0].upper()} reply",
                settings.expected_for(name, command.verb, command),
                lambda c, text=command.text: c.client.command(text),
                response=command.response,
            )
        )
    return steps


def handshake_step(settings: Settings) -> Step:
    """The TLS handshake: timed as "tls", no SMTP reply (its failure is StepResult.error)."""
    from check_smtp_verbs import secure

    return Step("tls", "tls", "TLS handshake", "the TLS handshake", None, secure.handshake)


def data_steps(settings: Settings) -> list[Step]:
    """DATA, then the message and its final dot; in LMTP one dot reply per recipient."""
    data = _step("data", "data", "DATA", "the DATA reply", settings, lambda c: c.start_data())
    dot = _step(
        "dot",
        "dot",
        "end of DATA",
        "the reply to the end of DATA",
        settings,
        lambda c: c.send_message(),
    )
    if not settings.lmtp:
        return [data, dot]
    recipients = {
        ("rcpt" if n == 1 else f"rcpt_{n}"): r for n, r in enumerate(settings.recipients, 1)
    }

    def per_recipient(results: Sequence[StepResult]) -> list[Step]:
        """RFC 2033 4.2: one reply after the dot for each recipient that got a 2xx."""
        accepted = [
            r.step.name
            for r in results
            if r.step.verb == "rcpt" and r.code is not None and 200 <= r.code < 300
        ]
        steps: list[Step] = []
        for rcpt in accepted:
            name = "dot" + rcpt[len("rcpt") :]
            recipient = recipients.get(rcpt, "")
            steps.append(
                dot._replace(
                    name=name,
                    expect=settings.expected_for(name, "dot"),
                    label=f"end of DATA for <{recipient}>",
                    awaited=f"the reply to the end of DATA for <{recipient}>",
                    send=(lambda c: c.send_message()) if not steps else (lambda c: c.next_reply()),
                    more_replies=True,
                )
            )
        if steps:
            steps[-1] = steps[-1]._replace(more_replies=False)
        return steps or [dot]

    return [data, dot._replace(expand=per_recipient)]


def steps_of(settings: Settings) -> list[Step]:
    """(TLS handshake,) banner and plan, cut after the last step of --quit-after's verb."""
    before = [*dane_steps(settings), handshake_step(settings)] if settings.implicit_tls else []
    steps = [*before, banner_step(settings), *plan(settings)]
    if settings.quit_after is None:
        return steps
    if settings.quit_after == "connect":
        return []
    wanted = QUIT_AFTER.get(settings.quit_after, {settings.quit_after})
    last = max((n for n, step in enumerate(steps) if step.verb in wanted), default=len(steps))
    return steps[: last + 1]


def planned_verbs(settings: Settings) -> set[str]:
    """Every verb this run may stop after: what --quit-after accepts for these options."""
    verbs = {"connect", *(step.verb for step in steps_of(settings._replace(quit_after=None)))}
    return verbs | {alias for alias, meant in QUIT_AFTER.items() if meant & verbs}


def banner_step(settings: Settings) -> Step:
    return _step(
        "banner", "banner", "banner", "the banner", settings, lambda c: c.client.read_reply()
    )


def quit_step(settings: Settings) -> Step:
    return _step(
        "quit", "quit", "QUIT", "the QUIT reply", settings, lambda c: c.client.command("QUIT")
    )


def walk(settings: Settings, deadline: Deadline | None = None, resolve: Resolve = resolve) -> Walk:
    """Carry out the whole conversation and return what each step saw.

    ``deadline`` and ``resolve`` let --mx run one walk per host, each with its own
    deadline inside the run's and with its addresses from the chosen DNS server.
    """
    started = clock()
    if deadline is None:
        deadline = Deadline(settings.timeout, start=started)
    transcript = Transcript()
    conversation = Conversation(settings, deadline, transcript, resolve)
    results = [conversation.connect()]
    try:
        if conversation.usable and settings.proxy is not None:
            problem = conversation.send_proxy_header()
            if problem is not None:
                results[0] = results[0]._replace(error=problem, expected=False)
                conversation.usable = False
        if conversation.usable:
            quit_ = quit_step(settings)
            steps = steps_of(settings)
            if settings.proxy is not None:
                # a server that rejects the header hangs up: say what it was waiting for
                awaited = f"the banner (after a PROXY v{settings.proxy} header)"
                steps = [s._replace(awaited=awaited) if s.verb == "banner" else s for s in steps]
            while steps:
                step = steps.pop(0)
                if step.name in conversation.skipped:
                    continue
                if step.expand is not None:
                    steps[:0] = step.expand(results)
                    continue
                result = conversation.run(step)
                if step.fallback is not None and EHLO_FALLBACK.matches(result.code):
                    results.append(result._replace(expected=True))
                    step = step.fallback
                    result = conversation.run(step)
                results.append(result)
                goes_on = (step.more_replies or step.goes_on) and result.error is None
                if not result.expected and not goes_on:
                    break
            # After DATA's 354 a QUIT would be message text: hang up instead, which makes
            # the server drop the unfinished message (RFC 5321 4.1.1.4).
            may_quit = settings.quit_after != "connect" and not conversation.data_mode
            if conversation.usable and may_quit:
                results.append(conversation.run(quit_))
    finally:
        conversation.close()
    if settings.dane is not None:
        from check_smtp_verbs import dane

        conversation.dane = dane.after_walk(conversation, results)
    probes = tuple(
        version_probe(settings, deadline, resolve, version)
        for version in settings.forbid_tls_versions
    )
    return Walk(
        settings.host,
        settings.port,
        conversation.address,
        tuple(results),
        clock() - started,
        transcript,
        conversation.tls,
        conversation.message_id,
        conversation.dane,
        data_done_at=conversation.data_done_at,
        version_probes=probes,
    )


def version_probe(
    settings: Settings, deadline: Deadline, resolve: Resolve, version: str
) -> VersionProbe:
    """--forbid-tls-version: one more connection, inside the same deadline, that goes only
    as far as a TLS handshake offering nothing but ``version``; the server must refuse it.
    Nothing else is sent (no MAIL, no AUTH), and the certificate is not judged again."""
    started = clock()
    only = settings._replace(
        tls_only_version=version,
        forbid_tls_versions=(),
        sender=None,
        recipients=(),
        relay_tests=(),
        data=False,
        commands=(),
        auth_mech=None,
        auth_user=None,
        auth_secret=None,
        no_plaintext_auth=None,
        starttls_required=False,
        dane=None,
        mta_sts=None,
        mailbox_url=None,
        quit_after="starttls",
    )
    done = walk(only, deadline, resolve)
    seconds = clock() - started
    handshake = next((r for r in done.results if r.step.name == "tls"), None)
    if handshake is None:  # STARTTLS refused, no connection, ...: nothing proven
        failed = next((r for r in done.results if not r.expected), None)
        reason = "the walk did not reach a TLS handshake"
        if failed is not None:
            reason = failed.error or f"{failed.step.label} answered {failed.code}"
        return VersionProbe(version, None, reason, seconds)
    if handshake.timed_out:
        return VersionProbe(version, None, handshake.error or "timeout", seconds)
    if handshake.error is not None:
        return VersionProbe(version, False, handshake.error, seconds)
    return VersionProbe(version, True, " ".join(handshake.lines), seconds)
