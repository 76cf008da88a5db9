"""Where the check starts the round trip: after the walk, with what the walk showed.

Apart from trip.py so that the step types (steps.py, which names RoundTrip) and the
round trip itself do not import each other.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.roundtrip.connection import MailboxFailed
from check_smtp_verbs.roundtrip.trip import Mailbox, RoundTrip, asynchronous, synchronous
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Walk


def after_walk(settings: Settings, walk: Walk, deadline: Deadline) -> RoundTrip | None:
    """The round trip of a check run, or None when there is none to make.

    Only a probe the server accepted (every reply to the final dot as expected) can be
    looked for; when SMTP failed, that failure is the whole story.
    """
    if settings.mailbox_url is None or settings.mailbox_secret is None:
        return None
    dots = [r for r in walk.results if r.step.verb == "dot"]
    if not dots or not all(r.expected for r in dots) or walk.message_id is None:
        return None
    if walk.data_done_at is None:
        return None
    from check_smtp_verbs.roundtrip.connection import client_context

    transcript = Transcript()
    mailbox = Mailbox(
        settings.mailbox_url,
        settings.mailbox_user or "",
        settings.mailbox_secret.reveal(),
        settings.mailbox_folder,
        settings.mailbox_starttls,
    )
    transcript.add_secret(mailbox.password)
    try:
        context = client_context(settings.ca_file, settings.insecure)
    except (OSError, ssl.SSLError) as exc:
        failed = MailboxFailed("tls", f"cannot load the CA file {settings.ca_file}: {exc}")
        return RoundTrip(str(mailbox.url), "", False, None, 0.0, error=failed)
    if settings.round_trip_state is not None:
        sent = time.time() - (clock() - walk.data_done_at)
        return asynchronous(
            mailbox,
            Path(settings.round_trip_state),
            settings.lost_after,
            walk.message_id,
            sent,
            deadline,
            context,
            transcript,
        )
    return synchronous(mailbox, walk.message_id, walk.data_done_at, deadline, context, transcript)
