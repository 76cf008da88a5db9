"""--proxy v1|v2: a HAProxy PROXY header goes out right after connect, before the banner."""

import ipaddress

import pytest

from check_smtp_verbs import proxy
from tests import smtpd
from tests.plugin import run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


@pytest.mark.parametrize("version", [1, 2])
def test_header_carries_the_real_addresses_by_default(smtp_server, version):
    server = smtp_server(expect_proxy=True)
    run = run_plugin(*server_args(server, *FULL, "--proxy", f"v{version}"))
    assert run.returncode == 0, run.stdout
    [header] = server.proxy_headers
    assert header["version"] == version
    assert header["protocol"] == "TCP4"
    assert header["source_address"] == header["dest_address"] == "127.0.0.1"
    assert header["dest_port"] == server.port
    assert header["source_port"] not in (0, server.port)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_source_sets_the_client_the_server_sees(smtp_server, version):
    server = smtp_server(expect_proxy=True)
    run = run_plugin(*server_args(server, "--proxy", version, "--proxy-source", "192.0.2.7:4242"))
    assert run.returncode == 0, run.stdout
    header = server.proxy_headers[0]
    assert (header["source_address"], header["source_port"]) == ("192.0.2.7", 4242)
    assert header["dest_port"] == server.port


def test_ipv6_source_over_ipv4_maps_the_destination(smtp_server):
    server = smtp_server(expect_proxy=True)
    run = run_plugin(*server_args(server, "--proxy", "v1", "--proxy-source", "[2001:db8::7]"))
    assert run.returncode == 0, run.stdout
    header = server.proxy_headers[0]
    assert header["protocol"] == "TCP6"
    assert header["source_address"] == "2001:db8::7"
    mapped = ipaddress.IPv6Address(header["dest_address"]).ipv4_mapped
    assert mapped == ipaddress.IPv4Address("127.0.0.1")


def test_header_over_ipv6(smtp_server):
    server = smtp_server(expect_proxy=True, host="::1")
    run = run_plugin(*server_args(server, "--proxy", "v2"))
    assert run.returncode == 0, run.stdout
    assert server.proxy_headers[0]["protocol"] == "TCP6"
    assert server.proxy_headers[0]["source_address"] == "::1"


def test_transcript_shows_the_header(smtp_server):
    server = smtp_server(expect_proxy=True)
    run = run_plugin(
        *server_args(server, "--proxy", "v2", "--proxy-source", "192.0.2.7:4242", "-vvv")
    )
    assert any(
        line.startswith("C: [PROXY v2 header: TCP4 192.0.2.7 127.0.0.1 4242 ") for line in run.lines
    )


def test_header_the_server_rejects_is_critical_naming_the_banner(smtp_server):
    server = smtp_server(expect_proxy=True, proxy_version=2)
    run = run_plugin(*server_args(server, *FULL, "--proxy", "v1"))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - connection closed by the server while waiting for the banner "
        "(after a PROXY v1 header)"
    )


def test_header_is_not_sent_without_the_option(smtp_server):
    server = smtp_server(expect_proxy=True)
    run = run_plugin(*server_args(server, "-t", "0.5"))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - timeout after 0.5s waiting for the banner"
    assert server.proxy_headers == []


@pytest.mark.parametrize(
    "args, message",
    [
        (("--proxy", "v3"), "argument -r/--proxy: invalid choice: 'v3'"),
        (("--proxy-source", "192.0.2.1"), "--proxy-source needs --proxy v1 or v2"),
        (("--proxy", "v1", "--proxy-source", "mx.example.net"), "is not an IP address"),
        (
            ("--proxy", "v1", "--proxy-source", "192.0.2.1:99999"),
            "port must be a number from 0 to 65535, not '99999'",
        ),
    ],
)
def test_bad_proxy_options_are_unknown(args, message):
    run = run_plugin("-H", "127.0.0.1", *args)
    assert run.returncode == 3
    assert message in run.status


@pytest.mark.parametrize("version", [1, 2])
def test_our_headers_parse_with_the_test_servers_independent_parser(version):
    for source, dest in [(("192.0.2.1", 1), ("198.51.100.2", 25)), (("::1", 65535), ("::2", 0))]:
        raw = proxy.header(version, source, dest)
        parsed = smtpd.parse_proxy_v1(raw) if version == 1 else smtpd.parse_proxy_v2(raw)
        assert parsed is not None
        assert (parsed["source_address"], parsed["source_port"]) == source
        assert (parsed["dest_address"], parsed["dest_port"]) == dest


def test_bare_r_sends_a_v1_header_like_check_smtp(smtp_server):
    server = smtp_server(expect_proxy=True)
    run = run_plugin(*server_args(server, "-r"))
    assert run.returncode == 0, run.stdout
    assert server.proxy_headers[0]["version"] == 1
