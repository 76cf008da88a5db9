"""Every address of a name, IPv4 and IPv6, walked at once (check_smtp_verbs.families).

A name with an A record (127.0.0.1) and an AAAA record (::1) in the loopback DNS
server, a test SMTP server on each address with one port, and the ordinary walk: a
broken family must show as broken however well the other one works.
"""

from __future__ import annotations

import re
import socket

import pytest

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.core.dns import make_resolver, resolve_with
from check_smtp_verbs.families import AddressRun, label_prefix, walk_every_address
from check_smtp_verbs.settings import Settings
from tests.relay_fixtures import DUAL_NAME, IPV4, IPV6, REFUSED_BANNER, DualStack
from tests.smtpd import Script


def resolver_of(servers: DualStack):
    host, port = servers.dns.address.rsplit(":", 1)
    return resolve_with(make_resolver((host, int(port))))


def run(servers: DualStack, timeout: float = 5.0, **fields) -> AddressRun:
    settings = Settings(
        host=fields.pop("host", DUAL_NAME),
        port=servers.port,
        sender="probe@example.net",
        recipients=("postmaster@example.test",),
        timeout=timeout,
        **fields,
    )
    return walk_every_address(settings, Deadline(timeout), resolver_of(servers))


def by_address(result: AddressRun) -> dict[str, list[tuple[str, int | None]]]:
    return {w.address: [(r.step.name, r.code) for r in w.walk.results] for w in result.walks}


def first_error(result: AddressRun, address: str) -> str | None:
    walk = next(w.walk for w in result.walks if w.address == address)
    return next((r.error for r in walk.results if r.error), None)


# --- labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "prefix"),
    [
        ("127.0.0.1", "127_0_0_1_"),
        ("192.0.2.25", "192_0_2_25_"),
        ("::1", "__1_"),
        ("2001:db8::25", "2001_db8__25_"),
        ("2001:DB8:0:0:0:0:0:25", "2001_db8__25_"),  # one address, one prefix
        ("[2001:db8::25]", "2001_db8__25_"),
        ("2001:db8:0:1:0:0:0:1", "2001_db8_0_1__1_"),  # RFC 5952: the longer zero run
        ("1:2:3:4:5:6:7:8", "1_2_3_4_5_6_7_8_"),
        ("::ffff:192.0.2.25", "__ffff_c000_219_"),  # never the dotted tail
    ],
)
def test_an_address_prefix_is_its_standard_form_with_every_separator_an_underscore(address, prefix):
    assert label_prefix(address) == prefix


def test_prefixes_are_plain_words_and_never_shared_by_two_addresses():
    addresses = [
        "1.2.3.4", "1:2:3:4::", "::1:2:3:4", "1:2::3:4", "::ffff:1.2.3.4", "::ffff:1:2:3",
        "10.0.0.1", "10::1", "1:0:0:1::", "1::1:0:0:1", "fe80::1", "127.0.0.1", "::1",
    ]  # fmt: skip
    prefixes = [label_prefix(address) for address in addresses]
    assert all(re.fullmatch(r"\w+", prefix) for prefix in prefixes)
    assert len(set(prefixes)) == len(addresses)


# --- the fan-out -----------------------------------------------------------------------


def test_both_families_are_walked_each_on_its_own_address(dual_stack):
    servers = dual_stack()
    result = run(servers)
    assert [(w.address, w.family_name) for w in result.walks] == [
        (IPV4, "IPv4"),
        (IPV6, "IPv6"),
    ]
    assert [w.walk.address for w in result.walks] == [
        f"{IPV4}:{servers.port}",
        f"[{IPV6}]:{servers.port}",
    ]
    assert by_address(result) == {
        address: [("connect", None), ("banner", 220), ("ehlo", 250), ("mail", 250),
                  ("rcpt", 250), ("quit", 221)]
        for address in (IPV4, IPV6)
    }  # fmt: skip
    assert servers.ipv4.connections == servers.ipv6.connections == 1
    assert [w.shown for w in result.walks] == ["127.0.0.1 (IPv4)", "::1 (IPv6)"]
    assert [w.prefix for w in result.walks] == ["127_0_0_1_", "__1_"]
    assert result.error is None and result.missing({socket.AF_INET, socket.AF_INET6}) == []
    assert {(DUAL_NAME, "A"), (DUAL_NAME, "AAAA")} <= set(servers.dns.queries)


@pytest.mark.parametrize("broken", ["ipv4", "ipv6"])
def test_a_family_answering_421_is_seen_while_the_other_is_fine(dual_stack, broken):
    servers = dual_stack(**{broken: Script(banner=REFUSED_BANNER)})
    result = run(servers)
    codes = {w.family_name: w.walk.results[1].code for w in result.walks}
    assert codes == {
        "IPv4": 421 if broken == "ipv4" else 220,
        "IPv6": 421 if broken == "ipv6" else 220,
    }
    fine = IPV6 if broken == "ipv4" else IPV4
    assert by_address(result)[fine][-1] == ("quit", 221)


@pytest.mark.parametrize("stopped", ["ipv4", "ipv6"])
def test_a_family_whose_listener_is_gone_is_seen_while_the_other_is_fine(dual_stack, stopped):
    servers = dual_stack()
    getattr(servers, stopped).stop()
    result = run(servers)
    down, up = (IPV4, IPV6) if stopped == "ipv4" else (IPV6, IPV4)
    shown = f"[{down}]" if ":" in down else down
    assert (
        first_error(result, down) == f"cannot connect to {shown}:{servers.port}: connection refused"
    )
    assert first_error(result, up) is None
    assert by_address(result)[up][-1] == ("quit", 221)


@pytest.mark.parametrize(
    ("family", "walked", "asked"),
    [(socket.AF_INET, [IPV4], "A"), (socket.AF_INET6, [IPV6], "AAAA")],
)
def test_minus_4_and_minus_6_look_up_and_walk_one_family_only(dual_stack, family, walked, asked):
    servers = dual_stack()
    result = run(servers, family=family)
    assert [w.address for w in result.walks] == walked
    assert [lookup.family for lookup in result.lookups] == [family]
    assert {kind for name, kind in servers.dns.queries if name == DUAL_NAME} == {asked}
    untouched = servers.ipv6 if family == socket.AF_INET else servers.ipv4
    assert untouched.connections == 0


def test_a_name_with_only_an_a_record_is_fine_unless_ipv6_is_required(dual_stack):
    servers = dual_stack(records={DUAL_NAME: {"A": [IPV4]}})
    result = run(servers)
    assert [w.address for w in result.walks] == [IPV4]
    assert [(lookup.name, lookup.error) for lookup in result.lookups] == [
        ("IPv4", None),
        ("IPv6", "no AAAA record"),
    ]
    assert result.error is None
    assert result.missing({socket.AF_INET}) == []
    assert result.missing({socket.AF_INET6}) == ["IPv6"]
    assert servers.ipv6.connections == 0


def test_a_name_that_does_not_exist_has_no_address_and_says_why(dual_stack):
    servers = dual_stack()
    result = run(servers, host="nosuch.example.test")
    assert result.walks == ()
    assert result.error == (
        "no address for nosuch.example.test (IPv4: name does not exist (NXDOMAIN); "
        "IPv6: name does not exist (NXDOMAIN))"
    )
    assert result.missing({socket.AF_INET}) == ["IPv4"]


def test_addresses_are_walked_concurrently_within_one_deadline(dual_stack):
    late = Script(delays={"BANNER": 0.8})
    servers = dual_stack(ipv4=late, ipv6=late)
    started = clock()
    result = run(servers, timeout=1.5)  # one after the other they would need 1.6 s
    assert clock() - started < 1.5
    assert [w.walk.results[-1].code for w in result.walks] == [221, 221]


def test_a_silent_family_times_out_at_the_deadline_and_the_other_is_complete(dual_stack):
    servers = dual_stack(ipv6=Script(silent=True))
    started = clock()
    result = run(servers, timeout=1.0)
    assert clock() - started < 1.5
    assert first_error(result, IPV6) == "timeout after 1s waiting for the banner"
    assert by_address(result)[IPV4][-1] == ("quit", 221)


def test_a_hung_aaaa_query_does_not_hold_up_the_ipv4_walk(dual_stack, dns_server):
    servers = dual_stack()
    silent = dns_server({DUAL_NAME: {"AAAA": [IPV6]}})
    silent.silent = True
    host, port = silent.address.rsplit(":", 1)
    answering, hanging = resolver_of(servers), resolve_with(make_resolver((host, int(port))))

    def resolve(name, port, family, deadline):
        return (hanging if family == socket.AF_INET6 else answering)(name, port, family, deadline)

    settings = Settings(host=DUAL_NAME, port=servers.port, timeout=1.0)
    started = clock()
    result = walk_every_address(settings, Deadline(1.0), resolve)
    assert clock() - started < 1.5
    assert [w.address for w in result.walks] == [IPV4]
    assert result.walks[0].walk.results[-1].code == 221
    assert [(lookup.name, lookup.error) for lookup in result.lookups] == [
        ("IPv4", None),
        ("IPv6", "timeout after 1s waiting for the IPv6 address"),
    ]
    assert result.missing({socket.AF_INET6}) == ["IPv6"]
