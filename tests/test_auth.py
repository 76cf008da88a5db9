"""SMTP AUTH against the project's server, which really checks each mechanism's answer."""

import base64
import json

import pytest

from tests.plugin import run_plugin, secret_pieces_in_base64, server_args

MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]
SECRET = "Zq9€kx-7Yv!wT"  # not ASCII: RFC 4616 allows UTF-8 and smtplib would choke
USERS = {"alice@example.net": SECRET}


@pytest.fixture
def auth_server(smtp_server, certs):
    """STARTTLS with a trusted certificate and every mechanism, checking real credentials."""

    def start(**fields):
        fields.setdefault("tls_context", certs.context())
        fields.setdefault("auth_mechanisms", MECHANISMS)
        fields.setdefault("users", USERS)
        return smtp_server(**fields)

    return start


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def auth_args(server, certs, mechanism, secret_file, *more):
    return server_args(
        server,
        "-S",
        "--ca-file",
        str(certs.ca_file),
        "-A",
        mechanism,
        "-U",
        "alice@example.net",
        "--auth-password-file",
        str(secret_file),
        *more,
    )


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_mechanism_authenticates_after_starttls_and_is_timed_as_auth(
    auth_server, certs, secret_file, mechanism
):
    server = auth_server()
    run = run_plugin(*auth_args(server, certs, mechanism, secret_file))
    assert run.returncode == 0, run.stdout
    assert "STARTTLS 220, TLSv1.3, EHLO 250, AUTH 235, QUIT 221" in run.status
    assert "auth" in run.perfdata
    commands = [c.split()[0].upper() for c in server.received if c and c[0].isalpha()]
    assert commands[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_secret_is_critical_authentication_failed(auth_server, certs, tmp_path, mechanism):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    server = auth_server()
    run = run_plugin(*auth_args(server, certs, mechanism, wrong, "-f", "probe@example.net"))
    assert run.returncode == 2, run.stdout
    assert run.status.startswith(
        f"SMTP_VERBS CRITICAL - authentication failed: AUTH {mechanism} as alice@example.net "
        "answered 535 (expected 235): 5.7.8"
    )
    assert not any(c.upper().startswith("MAIL") for c in server.received)
    assert server.received[-1].upper() == "QUIT"


def test_auth_454_follows_warning_codes(auth_server, certs, secret_file):
    server = auth_server(replies={"AUTH": "454 4.7.0 Temporary authentication failure"})
    run = run_plugin(*auth_args(server, certs, "PLAIN", secret_file))
    assert run.returncode == 2
    assert "AUTH PLAIN as alice@example.net answered 454 (expected 235)" in run.status
    warned = run_plugin(*auth_args(server, certs, "PLAIN", secret_file, "--warning-codes", "4xx"))
    assert warned.returncode == 1
    assert warned.status.startswith("SMTP_VERBS WARNING - AUTH PLAIN")


def test_mechanism_the_server_does_not_offer_is_critical_and_nothing_is_sent(
    auth_server, certs, secret_file
):
    server = auth_server(auth_mechanisms=["PLAIN", "LOGIN"])
    run = run_plugin(*auth_args(server, certs, "CRAM-MD5", secret_file))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - the server does not offer AUTH CRAM-MD5 (offers PLAIN LOGIN)"
    )
    assert not any(c.upper().startswith("AUTH") for c in server.received)
    assert server.received[-1].upper() == "QUIT"


def test_server_without_auth_is_critical(auth_server, certs, secret_file):
    server = auth_server(auth_mechanisms=[])
    run = run_plugin(*auth_args(server, certs, "PLAIN", secret_file))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - the server does not offer AUTH"


def test_auth_without_tls_is_refused_before_connecting(auth_server, secret_file):
    server = auth_server()
    run = run_plugin(
        *server_args(server, "-A", "PLAIN", "-U", "alice@example.net"),
        "--auth-password-file",
        str(secret_file),
    )
    assert run.returncode == 3
    assert run.lines == [
        "SMTP_VERBS UNKNOWN - AUTH without TLS would send the secret in plaintext: "
        "add -S/--starttls or --tls (or --allow-plaintext-auth)"
    ]
    assert server.connections == 0


def test_auth_after_optional_starttls_that_was_not_offered_is_refused_on_the_wire(
    auth_server, secret_file
):
    server = auth_server(tls_context=None)
    run = run_plugin(
        *server_args(server, "--starttls=optional", "-A", "PLAIN", "-U", "alice@example.net"),
        "--auth-password-file",
        str(secret_file),
    )
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - AUTH refused over a plaintext connection")
    assert [c.split()[0].upper() for c in server.received] == ["EHLO", "QUIT"]


def test_allow_plaintext_auth_sends_it_without_tls(auth_server, secret_file):
    server = auth_server(tls_context=None)
    run = run_plugin(
        *server_args(server, "-A", "LOGIN", "-U", "alice@example.net", "--allow-plaintext-auth"),
        "--auth-password-file",
        str(secret_file),
    )
    assert run.returncode == 0, run.stdout
    assert "EHLO 250, AUTH 235, QUIT 221" in run.status


def test_secret_from_the_environment(auth_server, certs):
    server = auth_server()
    args = server_args(server, "-S", "--ca-file", str(certs.ca_file), "-A", "XOAUTH2")
    run = run_plugin(
        *args,
        "-U",
        "alice@example.net",
        "--auth-password-env",
        "PROBE_TOKEN",
        env={"PROBE_TOKEN": SECRET},
    )
    assert run.returncode == 0, run.stdout


def test_secret_on_the_command_line_still_works_for_check_smtp_compatibility(auth_server, certs):
    server = auth_server()
    run = run_plugin(
        *server_args(server, "-S", "--ca-file", str(certs.ca_file)),
        "-A",
        "login",
        "-U",
        "alice@example.net",
        "-P",
        SECRET,
    )
    assert run.returncode == 0, run.stdout


def test_implicit_tls_with_auth(auth_server, certs, secret_file):
    server = auth_server(implicit_tls=True)
    args = auth_args(server, certs, "PLAIN", secret_file)
    args[args.index("-S")] = "--tls"
    run = run_plugin(*args)
    assert run.returncode == 0, run.stdout
    assert "TLSv1.3, banner 220, EHLO 250, AUTH 235, QUIT 221" in run.status


def _base64_forms(secret: str, *blobs: bytes) -> set[str]:
    """Every way the secret can show up base64-encoded: alone, at each of the three
    byte alignments inside a longer string, and the mechanisms' whole blobs."""
    raw = secret.encode()
    forms = {base64.b64encode(raw).decode(), *(base64.b64encode(b).decode() for b in blobs)}
    for pad in (b"\0", b"\0\0"):
        encoded = base64.b64encode(pad + raw).decode()
        forms.add(encoded[4:-4])
    return forms


@pytest.mark.parametrize("verbosity", ["", "-v", "-vvv", "--json", "--json -vvv"])
@pytest.mark.parametrize("outcome", ["accepted", "rejected and echoed by the server"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_no_secret_reaches_any_output_at_any_verbosity(
    auth_server, certs, secret_file, mechanism, outcome, verbosity
):
    users = USERS if outcome == "accepted" else {"alice@example.net": "something else"}
    server = auth_server(users=users, echo_credentials=True)
    extra = tuple(verbosity.split())
    run = run_plugin(*auth_args(server, certs, mechanism, secret_file, *extra))
    assert run.returncode == (0 if outcome == "accepted" else 2), run.stdout
    output = run.stdout + run.stderr
    blobs = (
        f"\0alice@example.net\0{SECRET}".encode(),
        f"user=alice@example.net\x01auth=Bearer {SECRET}\x01\x01".encode(),
    )
    assert SECRET not in output
    for form in _base64_forms(SECRET, *blobs):
        assert form not in output, form
    assert secret_pieces_in_base64(output, SECRET) == []
    if verbosity == "-vvv":
        assert any(
            line in ("C: <redacted>", f"C: AUTH {mechanism} <redacted>") for line in run.lines
        )
    if verbosity == "--json -vvv":
        transcript = json.loads(run.stdout)["hosts"][0]["transcript"]
        assert any(
            line in ("C: <redacted>", f"C: AUTH {mechanism} <redacted>") for line in transcript
        )
    if outcome != "accepted" and mechanism != "CRAM-MD5":
        # the server echoed the secret (CRAM-MD5 never sends it): scrubbed, not shown
        status = json.loads(run.stdout)["summary"] if "--json" in extra else run.status
        assert "<redacted>" in status


@pytest.mark.parametrize(
    "given",
    [("-P", SECRET), (f"-P{SECRET}",), (f"--authpass={SECRET}",), ("--authpa", SECRET)],
    ids=["-P", "-Pattached", "--authpass=", "abbreviated"],
)
def test_a_password_in_an_argument_error_is_not_echoed(smtp_server, given):
    run = run_plugin(*server_args(smtp_server()), *given, SECRET)
    assert run.returncode == 3
    assert SECRET not in run.stdout + run.stderr
    assert "unrecognized arguments: <redacted>" in run.status


def test_secret_not_in_a_traceback_of_settings():
    from check_smtp_verbs.cli import settings_from

    settings = settings_from(["-H", "127.0.0.1", "-S", "-A", "PLAIN", "-U", "a", "-P", SECRET])
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.auth_secret is not None and settings.auth_secret.reveal() == SECRET


@pytest.mark.parametrize("mode", [("--ca-file",), ("--insecure",)])
def test_a_secret_in_the_server_certificate_is_not_shown_either(
    auth_server, certs, secret_file, mode
):
    server = auth_server(tls_context=certs.context(organization=f"Evil {SECRET} Inc"))
    args = auth_args(server, certs, "PLAIN", secret_file, "-vvv")
    if mode == ("--insecure",):
        position = args.index("--ca-file")
        args[position : position + 2] = ["--insecure"]
    run = run_plugin(*args)
    assert run.returncode == 0, run.stdout
    assert "certificate subject: " in run.stdout
    assert SECRET not in run.stdout + run.stderr
    assert "Evil <redacted> Inc" in run.stdout
