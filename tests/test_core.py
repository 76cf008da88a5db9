"""The shared core: one client, one deadline, one AUTH for both programs (issue 10).

The notifier used to have its own smtplib client, whose deadline stopped at STARTTLS
and whose AUTH could not send a UTF-8 password; these prove it now stands on the
same core as the check, against the project's own test server.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.notifier import ADDRESSED, notify_env, problem, run_notify
from tests.plugin import ROOT, run_plugin, server_args
from tests.smtpd import Script

PACKAGE = ROOT / "check_smtp_verbs"


def test_the_notifier_ends_at_its_timeout_when_the_gateway_dribbles_after_starttls(
    smtp_server, certs, tmp_path
):
    gateway = smtp_server(Script(tls_context=certs.context(), dribble_after_tls=0.2))
    run = run_notify(
        *ADDRESSED,
        "--smtp-server",
        f"{gateway.host}:{gateway.port}",
        "--require-tls",
        "--tls-ca",
        str(certs.ca_file),
        "--timeout",
        "2",
        "--state-file",
        str(tmp_path / "state.json"),
        *problem(),
        env=notify_env(tmp_path),
    )
    assert run.returncode == 1
    assert "timeout after 2s waiting for the EHLO reply after STARTTLS" in run.stderr
    assert run.seconds < 2 + 1.5  # the deadline, plus interpreter start-up
    assert gateway.messages == []


def test_the_notifier_authenticates_with_a_utf8_user_and_password(smtp_server, certs, tmp_path):
    password = "pässwörd-ü€"
    gateway = smtp_server(
        Script(
            tls_context=certs.context(),
            auth_mechanisms=["PLAIN"],
            users={"jürgen@example.net": password},
        )
    )
    run = run_notify(
        *ADDRESSED,
        "--smtp-server",
        f"{gateway.host}:{gateway.port}",
        "--tls-ca",
        str(certs.ca_file),
        "--auth-user",
        "jürgen@example.net",
        "--auth-password-env",
        "GATEWAY_PASSWORD",
        "--state-file",
        str(tmp_path / "state.json"),
        *problem(),
        env=notify_env(tmp_path, GATEWAY_PASSWORD=password),
    )
    assert run.returncode == 0, run.stderr
    assert len(gateway.messages) == 1
    assert password not in run.stdout + run.stderr


def test_a_reply_that_arrives_one_step_late_is_out_of_sync_not_ok(smtp_server):
    # A server that does not expect a PROXY header answers it (500), so every later
    # reply is read one step late: the HELO fallback hid that slip, and the walk ended
    # OK with "RCPT 250" for a recipient the server had not yet answered.
    server = smtp_server()
    run = run_plugin(
        *server_args(server, "--proxy", "v1", "--from", "a@example.net", "--rcpt", "b@example.net")
    )
    assert run.returncode == 2, run.stdout
    assert "out of sync" in run.status
    assert "RCPT 250" not in run.status


def test_data_waiting_after_the_starttls_reply_is_refused_before_tls(smtp_server, certs):
    injected = b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
    server = smtp_server(Script(tls_context=certs.context(), replies={"STARTTLS": injected}))
    run = run_plugin(*server_args(server, "-S", "--ca-file", str(certs.ca_file)))
    assert run.returncode == 2
    assert "sent data after its STARTTLS reply" in run.status


def test_json_names_each_command_as_the_client_sent_it_in_upper_case(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--from", "a@example.net", "--json", "-vvv"))
    document = json.loads(run.stdout)
    assert [s["command"] for s in document["hosts"][0]["steps"]][:3] == [
        f"connect to {server.host}:{server.port}",
        "banner",
        f"EHLO {server.received[0].split()[1]}",
    ]
    assert server.received[1] == "MAIL FROM:<a@example.net>"


def _imports(path: Path) -> set[str]:
    """The check_smtp_verbs modules ``path`` imports, at module level or in functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("check_smtp_verbs"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("check_smtp_verbs"))
    return found


def _module_graph() -> dict[str, set[str]]:
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in PACKAGE.rglob("*.py")
    }
    return {
        name: {target for target in _imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def test_no_module_imports_one_that_imports_it_back():
    graph = _module_graph()
    cycles = []
    for start in graph:
        seen, stack = set(), [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_the_core_imports_nothing_of_the_two_programs():
    graph = _module_graph()
    for name, targets in graph.items():
        if name.startswith("check_smtp_verbs.core"):
            outside = {t for t in targets if not t.startswith("check_smtp_verbs.core")}
            assert outside == set(), name


def test_smtplib_is_gone_from_both_programs():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "smtplib" not in imported, path


def test_bidi_and_line_separator_characters_from_a_server_are_escaped_in_the_status(
    smtp_server,
):
    server = smtp_server(replies={"RCPT": "550 5.1.1 \u202eevil\u2028\u0085next"})
    run = run_plugin(*server_args(server, "--from", "a@example.net", "--rcpt", "b@example.net"))
    assert run.returncode == 2
    assert "\\u202eevil\\u2028\\x85next" in run.status
    assert not {"\u202e", "\u2028", "\u0085"} & set(run.stdout)


def test_a_truncated_final_reply_then_a_close_is_not_delivered(smtp_server, tmp_path):
    # smtplib took "250 2.0.0 Ok: que" followed by a hang-up as a complete 250 and
    # recorded the alert as sent; a reply without its line end is no reply.
    gateway = smtp_server(Script(replies={"DOT": b"250 2.0.0 Ok: que"}, close_after="DOT"))
    run = run_notify(
        *ADDRESSED,
        "--smtp-server",
        f"{gateway.host}:{gateway.port}",
        "--state-file",
        str(tmp_path / "state.json"),
        *problem(),
        env=notify_env(tmp_path),
    )
    assert run.returncode == 1
    assert "not sent" in run.stderr
    assert "reply line not terminated" in run.stderr
