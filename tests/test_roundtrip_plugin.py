"""The round trip end to end: plugin -> Postfix -> Dovecot LMTP -> mailbox <- plugin.

The plugin runs as a process, as Nagios runs it; Postfix and Dovecot are the private
real ones of tests/postfix.py and tests/dovecot.py.  Late and lost mail are made by
holding the probe in Postfix's queue (``postsuper -h``/``-H``).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dovecot import (
    DOMAIN,
    NO_IDLE_HOST,
    PROBE_USER,
    UNICODE_SECRET,
    UNICODE_USER,
    USERS,
    PrivateDovecot,
)
from tests.plugin import Run, run_plugin, secret_pieces_in_base64
from tests.postfix import PrivatePostfix
from tests.test_startup_imports import loaded_modules

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def lmtp_route(postfix: PrivatePostfix, dovecot: PrivateDovecot) -> Iterator[PrivatePostfix]:
    postfix.deliver_over_lmtp(DOMAIN, dovecot.host, dovecot.ports.lmtp)
    yield postfix
    postfix.stop_delivering_over_lmtp(DOMAIN)


@pytest.fixture
def chain(lmtp_route: PrivatePostfix, dovecot: PrivateDovecot) -> Iterator[PrivatePostfix]:
    """Postfix delivering roundtrip.test to Dovecot; the probe mailbox empty before and after."""
    for user in USERS:
        dovecot.empty(user)
    yield lmtp_route
    lmtp_route.hold_incoming(False)
    if lmtp_route.held():
        lmtp_route.release_held()
    for user in USERS:
        dovecot.empty(user)


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on: a mailbox server that is down."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return closed.getsockname()[1]


def password_file(tmp_path: Path, user: str = PROBE_USER, password: str | None = None) -> Path:
    path = tmp_path / f"{user}.password"
    path.write_text((USERS[user] if password is None else password) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def round_trip_args(
    postfix: PrivatePostfix,
    dovecot: PrivateDovecot,
    tmp_path: Path,
    *more: str,
    scheme: str = "imaps",
    host: str | None = None,
    user: str = PROBE_USER,
    password: str | None = None,
) -> list[str]:
    protocol = scheme.rstrip("s")
    return [
        "-H",
        postfix.host,
        "-p",
        str(postfix.port),
        "-f",
        "probe@verbs.test",
        "--rcpt",
        user,
        "--ca-file",
        str(dovecot.ca_file),
        f"--{protocol}",
        dovecot.url(scheme, host),
        f"--{protocol}-user",
        user,
        f"--{protocol}-password-file",
        str(password_file(tmp_path, user, password)),
        *more,
    ]


def in_background(args: list[str]) -> tuple[threading.Thread, list[Run]]:
    done: list[Run] = []
    thread = threading.Thread(target=lambda: done.append(run_plugin(*args)))
    thread.start()
    return thread, done


@pytest.mark.parametrize(
    ("scheme", "host", "method"),
    [
        ("imaps", None, "IDLE"),
        ("imap", None, "IDLE"),
        ("imap", NO_IDLE_HOST, "polling"),
        ("pop3s", None, "polling"),
    ],
    ids=["imaps", "imap-starttls", "imap-without-idle", "pop3s"],
)
def test_a_probe_in_the_mailbox_is_ok_with_its_delivery_time(
    chain, dovecot, tmp_path, scheme, host, method
):
    chain.hold_incoming()  # delivered while the check waits, so that it has to wait
    release = threading.Timer(1.0, chain.release_held)
    release.start()
    run = run_plugin(*round_trip_args(chain, dovecot, tmp_path, scheme=scheme, host=host))
    release.join()
    assert run.returncode == 0, run.stdout
    assert re.search(rf"; in the mailbox after \d\.\d{{3}}s \({method}\)$", run.status)
    assert 0.4 < run.seconds_of("delivery") < 6.0  # released 1 s after the plugin started
    assert run.perfdata["delivery"].endswith(";;;0")
    assert dovecot.maildir_messages() == []  # found and deleted


def test_a_late_delivery_is_measured_and_judged_by_the_delivery_ranges(chain, dovecot, tmp_path):
    chain.hold_incoming()
    release = threading.Timer(2.0, chain.release_held)
    release.start()
    run = run_plugin(
        *round_trip_args(
            chain, dovecot, tmp_path, "--delivery-warning", "1", "--delivery-critical", "30"
        )
    )
    release.join()
    assert run.returncode == 1, run.stdout
    assert re.fullmatch(
        r"SMTP_VERBS WARNING - delivery to the mailbox took \d\.\d{3}s \(outside range 0:1\)",
        run.status,
    )
    assert 1.4 < run.seconds_of("delivery") < 6.0  # released 2 s after the plugin started
    assert run.perfdata["delivery"].endswith(";1;30;0")


def test_a_probe_held_past_the_deadline_is_critical_and_blames_the_hop(chain, dovecot, tmp_path):
    chain.hold_incoming()
    run = run_plugin(*round_trip_args(chain, dovecot, tmp_path, "-t", "3"))
    assert run.returncode == 2, run.stdout
    assert re.fullmatch(
        rf"SMTP_VERBS CRITICAL - accepted by SMTP, not in the mailbox "
        rf"{re.escape(dovecot.url('imaps'))} after 2\.\d s",
        run.status,
    )
    assert "delivery" not in run.perfdata
    assert run.perfdata["dot"]  # the SMTP side was measured as usual
    assert run.seconds < 4.5  # the one deadline bounds the wait
    assert len(chain.held()) == 1


def test_verbose_output_shows_the_mailbox_side_and_its_transcript_redacted(
    chain, dovecot, tmp_path
):
    run = run_plugin(*round_trip_args(chain, dovecot, tmp_path, "-vvv"))
    assert run.returncode == 0, run.stdout
    text = run.stdout
    assert "mailbox transcript:" in text
    assert "C: " + "<redacted>" in text  # the SASL PLAIN response
    assert re.search(r"C: \w+ UID STORE \d+ \+FLAGS\.SILENT \(\\Deleted\)", text)
    assert re.search(r"C: \w+ UID EXPUNGE \d+", text)
    assert USERS[PROBE_USER] not in text


def test_json_carries_the_round_trip(chain, dovecot, tmp_path):
    run = run_plugin(*round_trip_args(chain, dovecot, tmp_path, "--json"))
    document = json.loads(run.stdout)
    trip = document["round_trip"]
    assert trip["mailbox"] == dovecot.url("imaps")
    assert (trip["state"], trip["mode"], trip["found"], trip["error"]) == (
        "OK",
        "synchronous",
        True,
        None,
    )
    assert trip["delivery_seconds"] > 0
    assert document["hosts"][0]["message_id"]


def test_asynchronous_runs_count_pending_then_found_then_lost(chain, dovecot, tmp_path):
    state = tmp_path / "round-trip.json"
    args = round_trip_args(chain, dovecot, tmp_path, "--round-trip-state", str(state))

    chain.hold_incoming()
    first = run_plugin(*args, "--lost-after", "1h")
    assert first.returncode == 0, first.stdout
    assert (first.perfdata["pending"], first.perfdata["lost"]) == ("1;;;0", "0;;;0")
    assert "delivery" not in first.perfdata
    assert first.status.endswith(f"; mailbox {dovecot.url('imaps')}: 1 pending, 0 lost")

    chain.hold_incoming(False)
    chain.release_held()
    chain.wait_for_log(r"status=sent")
    second = run_plugin(*args, "--lost-after", "1h")
    assert second.returncode == 0, second.stdout
    assert second.perfdata["lost"] == "0;;;0"
    assert "delivery" in second.perfdata  # the first probe (or this run's) was found
    assert dovecot.maildir_messages() == []

    chain.hold_incoming()
    run_plugin(*args, "--lost-after", "1s")  # this probe will not come in time
    time.sleep(1.5)
    lost = run_plugin(*args, "--lost-after", "1s")
    assert lost.returncode == 2, lost.stdout
    assert lost.status == (
        f"SMTP_VERBS CRITICAL - 1 probe lost: accepted by SMTP, not in the mailbox "
        f"{dovecot.url('imaps')} within 1s"
    )
    assert lost.perfdata["lost"] == "1;;;0"


def test_a_corrupt_state_file_is_a_warning_and_replaced(chain, dovecot, tmp_path):
    state = tmp_path / "round-trip.json"
    state.write_text("{not json")
    args = round_trip_args(chain, dovecot, tmp_path, "--round-trip-state", str(state))
    run = run_plugin(*args)
    assert run.returncode == 1, run.stdout
    assert run.status.startswith(f"SMTP_VERBS WARNING - state file {state} is corrupt (")
    assert run.status.endswith("; starting afresh")
    assert json.loads(state.read_text())["version"] == 1
    assert run_plugin(*args).returncode == 0


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_a_wrong_mailbox_password_is_its_own_critical_message(chain, dovecot, tmp_path, scheme):
    wrong = "not-the-Passw0rd"
    run = run_plugin(
        *round_trip_args(chain, dovecot, tmp_path, "-v", scheme=scheme, password=wrong)
    )
    assert run.returncode == 2, run.stdout
    assert run.status.startswith(
        f"SMTP_VERBS CRITICAL - accepted by SMTP; mailbox login failed for {PROBE_USER}: "
    )
    assert "Authentication failed" in run.status
    assert wrong not in run.stdout + run.stderr


def test_a_mailbox_server_that_is_down_is_critical_after_an_accepted_probe(
    chain, dovecot, tmp_path, unused_port
):
    args = round_trip_args(chain, dovecot, tmp_path)
    args[args.index("--imap") + 1] = f"imaps://127.0.0.1:{unused_port}"
    run = run_plugin(*args)
    assert run.returncode == 2, run.stdout
    assert run.status == (
        "SMTP_VERBS CRITICAL - accepted by SMTP; cannot connect to the mailbox "
        f"imaps://127.0.0.1:{unused_port}: Connection refused"
    )


def test_a_silent_mailbox_server_gets_the_timeout_state(chain, dovecot, tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"imaps://127.0.0.1:{silent.getsockname()[1]}"
        args = round_trip_args(chain, dovecot, tmp_path, "-t", "2:warning")
        args[args.index("--imap") + 1] = url
        run = run_plugin(*args)
    assert run.returncode == 1, run.stdout
    assert run.status == (
        "SMTP_VERBS WARNING - accepted by SMTP; timeout in the TLS handshake with the mailbox "
        "127.0.0.1"
    )
    assert run.seconds < 3.5


def test_an_smtp_failure_is_reported_and_no_mailbox_is_visited(chain, dovecot, tmp_path):
    args = round_trip_args(chain, dovecot, tmp_path, "-v")
    args[args.index("--rcpt") + 1] = "nosuchuser@verbs.test"
    run = run_plugin(*args)
    assert run.returncode == 2, run.stdout
    assert "RCPT TO:<nosuchuser@verbs.test> answered 550" in run.status
    assert "in the mailbox" not in run.stdout and "mailbox imaps" not in run.stdout


@pytest.mark.parametrize("verbosity", ["", "-v", "-vvv", "--json", "--json -vvv"])
@pytest.mark.parametrize("outcome", ["accepted", "rejected"])
@pytest.mark.parametrize("scheme", ["imap", "imaps", "pop3", "pop3s"])
def test_no_mailbox_secret_reaches_any_output_at_any_verbosity(
    chain, dovecot, tmp_path, scheme, outcome, verbosity
):
    password = UNICODE_SECRET if outcome == "accepted" else UNICODE_SECRET + "x"
    args = round_trip_args(
        chain,
        dovecot,
        tmp_path,
        *verbosity.split(),
        scheme=scheme,
        user=UNICODE_USER,
        password=password,
    )
    run = run_plugin(*args)
    assert run.returncode == (0 if outcome == "accepted" else 2), run.stdout
    output = run.stdout + run.stderr
    assert password not in output
    raw = password.encode()
    forms = {base64.b64encode(raw).decode()}
    for pad in (b"\0", b"\0\0"):
        forms.add(base64.b64encode(pad + raw).decode()[4:-4])
    forms.add(base64.b64encode(f"\0{UNICODE_USER}\0{password}".encode()).decode())
    for form in forms:
        assert form not in output, form
    assert secret_pieces_in_base64(output, password) == []
    if "-vvv" in verbosity:
        assert "<redacted>" in output


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--imap", "imaps://mail.example.net"], "--imap needs --imap-user"),
        (
            ["--imap", "imaps://mail.example.net", "--imap-user", "u"],
            "--imap needs the password: --imap-password-file or --imap-password-env "
            "(never on the command line)",
        ),
        (["--imap-user", "u"], "--imap-* options need --imap URL"),
        (["--imap", "pop3://mail.example.net"], "does not start with imap:// or imaps://"),
        (
            ["--imap", "imaps://mail.example.net", "--pop3", "pop3s://mail.example.net"],
            "use either the --imap or the --pop3 options, not both",
        ),
        (["--delivery-warning", "5"], "--delivery-warning needs --imap or --pop3"),
        (["--round-trip-state", "/tmp/x"], "--round-trip-state needs --imap or --pop3"),
        (
            ["--imap", "imaps://u:secret@mail.example.net"],
            "give the user with its own option",
        ),
    ],
)
def test_bad_round_trip_options_are_one_unknown_line(more, message):
    run = run_plugin("-H", "127.0.0.1", "--rcpt", "probe@example.net", *more)
    assert run.returncode == 3
    assert len(run.lines) == 1
    assert run.status.startswith("SMTP_VERBS UNKNOWN - ")
    assert message in run.status
    assert "secret@" not in run.stdout


def test_round_trip_with_mx_or_lost_after_alone_is_refused(tmp_path):
    secret = password_file(tmp_path)
    base = ["--rcpt", PROBE_USER, "--imap", "imaps://mail.example.net", "--imap-user", "u"]
    base += ["--imap-password-file", str(secret)]
    run = run_plugin("--mx", "example.net", *base)
    assert run.returncode == 3 and "needs -H" in run.status
    run = run_plugin("-H", "127.0.0.1", *base, "--lost-after", "1h")
    assert run.returncode == 3 and "--lost-after needs --round-trip-state" in run.status
    run = run_plugin("-H", "127.0.0.1", *base, "--round-trip-state", "s", "--lost-after", "soon")
    assert run.returncode == 3 and "--lost-after wants a duration" in run.status


def test_imaplib_and_poplib_load_only_on_their_own_round_trip(chain, dovecot, tmp_path):
    imap_run = loaded_modules(
        "from check_smtp_verbs.cli import main\nmain()",
        *round_trip_args(chain, dovecot, tmp_path),
    )
    assert "imaplib" in imap_run and "poplib" not in imap_run
    pop_run = loaded_modules(
        "from check_smtp_verbs.cli import main\nmain()",
        *round_trip_args(chain, dovecot, tmp_path, scheme="pop3s"),
    )
    assert "poplib" in pop_run and "imaplib" not in pop_run
    plain_data = loaded_modules(
        "from check_smtp_verbs.cli import main\nmain()",
        "-H",
        chain.host,
        "-p",
        str(chain.port),
        "-f",
        "probe@verbs.test",
        "--rcpt",
        "postmaster@verbs.test",
        "--data",
    )
    assert not {"imaplib", "poplib", "check_smtp_verbs.roundtrip"} & plain_data
