"""The HAProxy PROXY protocol header (v1 text, v2 binary), sent before the banner.

A server behind HAProxy with ``accept-proxy`` (or Postfix with
``smtpd_upstream_proxy_protocol``) waits for this header and hangs up on anyone who
does not send it, so checking such a port directly needs it.  The addresses default to
the real ends of the connection, as HAProxy itself would send them; --proxy-source
makes the server see another client, e.g. to test its per-client policy.
Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
Address = tuple[str, int]


def _same_family(
    source: Address, destination: Address
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """Both addresses in one family: an IPv4 one becomes IPv4-mapped when the other is v6."""
    a, b = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if a.version != b.version:
        a, b = (ipaddress.IPv6Address(f"::ffff:{x}") if x.version == 4 else x for x in (a, b))
    return a, b


def header(version: int, source: Address, destination: Address) -> bytes:
    """The header for a TCP connection from ``source`` to ``destination``."""
    src, dst = _same_family(source, destination)
    if version == 1:
        family = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {family} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")
    family = 0x11 if src.version == 4 else 0x21  # TCP over IPv4 / IPv6
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def describe(version: int, source: Address, destination: Address) -> str:
    """What the transcript shows: v1 as sent, v2 (binary) in the same words."""
    if version == 1:
        return header(1, source, destination).decode("ascii").rstrip("\r\n")
    src, dst = _same_family(source, destination)
    family = "TCP4" if src.version == 4 else "TCP6"
    return f"[PROXY v2 header: {family} {src} {dst} {source[1]} {destination[1]}]"
