"""--json: one JSON document instead of plugin text; the exit code stays the plugin's."""

import json

from tests.plugin import run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def test_json_has_every_step_with_code_text_time_and_state(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--json"))
    assert run.returncode == 0, run.stdout
    doc = json.loads(run.stdout)
    assert (doc["state"], doc["exit_code"]) == ("OK", 0)
    assert doc["summary"].startswith(f"127.0.0.1:{server.port} banner 220, EHLO 250")
    [host] = doc["hosts"]
    assert (host["host"], host["port"], host["state"]) == ("127.0.0.1", server.port, "OK")
    assert [s["name"] for s in host["steps"]] == [
        "connect",
        "banner",
        "ehlo",
        "mail",
        "rcpt",
        "quit",
    ]
    rcpt = host["steps"][4]
    assert rcpt["verb"] == "rcpt"
    assert rcpt["command"] == "RCPT TO:<postmaster@example.net>"
    assert (rcpt["code"], rcpt["lines"], rcpt["expected"]) == (250, ["2.1.5 Ok"], "250,251")
    assert rcpt["error"] is None and rcpt["state"] == "OK"
    assert 0 < rcpt["seconds"] < 5
    assert host["steps"][2]["lines"][0] == "smtpd.test"
    assert "transcript" not in host


def test_json_keeps_the_exit_code_and_names_the_failing_step(smtp_server):
    server = smtp_server(replies={"RCPT": "451 4.3.0 a|b"})
    run = run_plugin(*server_args(server, *FULL, "--json"))
    assert run.returncode == 2
    doc = json.loads(run.stdout)
    assert (doc["state"], doc["exit_code"]) == ("CRITICAL", 2)
    assert doc["summary"].startswith("RCPT TO:<postmaster@example.net> answered 451")
    rcpt = next(s for s in doc["hosts"][0]["steps"] if s["name"] == "rcpt")
    assert rcpt["state"] == "CRITICAL"
    assert rcpt["lines"] == ["4.3.0 a|b"]  # the real text: JSON quoting makes it safe


def test_json_reports_errors_and_timeouts(smtp_server):
    run = run_plugin(*server_args(smtp_server(silent=True), "--json", "-t", "0.3"))
    assert run.returncode == 2
    banner = json.loads(run.stdout)["hosts"][0]["steps"][1]
    assert banner["code"] is None and banner["timed_out"] is True
    assert banner["error"] == "timeout after 0.3s waiting for the banner"


def test_json_with_data_carries_the_message_id(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--data", "--json"))
    doc = json.loads(run.stdout)
    assert doc["hosts"][0]["message_id"] in server.messages[0].data.decode()


def test_json_with_transcript(smtp_server):
    run = run_plugin(*server_args(smtp_server(), "--json", "-vvv"))
    transcript = json.loads(run.stdout)["hosts"][0]["transcript"]
    assert transcript[1] == "S: 220 smtpd.test ESMTP test server"


def test_bad_input_with_json_is_a_json_unknown():
    run = run_plugin("-H", "127.0.0.1", "--rcpt", "a@b>", "--json")
    assert run.returncode == 3
    doc = json.loads(run.stdout)
    assert (doc["state"], doc["exit_code"]) == ("UNKNOWN", 3)
    assert doc["summary"].startswith("--rcpt is not a valid mail address")


def test_json_host_state_includes_its_total_time(smtp_server):
    run = run_plugin(*server_args(smtp_server(), "--json", "-c", "0:0"))
    assert run.returncode == 2
    doc = json.loads(run.stdout)
    assert doc["hosts"][0]["state"] == "CRITICAL"
    assert all(step["state"] == "OK" for step in doc["hosts"][0]["steps"])


def test_json_shows_the_regex_a_command_was_matched_against(smtp_server):
    run = run_plugin(*server_args(smtp_server(), "-C", "VRFY x", "-R", "^252", "--json"))
    assert run.returncode == 0, run.stdout
    vrfy = next(s for s in json.loads(run.stdout)["hosts"][0]["steps"] if s["verb"] == "vrfy")
    assert (vrfy["response"], vrfy["expected"], vrfy["code"]) == ("^252", "2xx,3xx,4xx,5xx", 252)


def test_json_carries_the_tls_facts(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    args = server_args(server, "--ca-file", str(certs.ca_file), "-S", "--json")
    run = run_plugin(*args)
    assert run.returncode == 0, run.stdout
    host = json.loads(run.stdout)["hosts"][0]
    tls = host["tls"]
    assert tls["version"] == "TLSv1.3" and tls["verified"] is True
    assert "DNS:smtpd.test" in tls["leaf"]["names"]
    assert tls["leaf"]["not_after"].startswith("20")  # ISO 8601
    assert [s["name"] for s in host["steps"]][3:6] == ["starttls", "tls", "ehlo_tls"]
