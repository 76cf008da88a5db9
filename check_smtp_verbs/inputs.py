"""What both programs read from the user besides plain option values, done once.

The check and the notifier both take a secret from a file or the environment, a CA
file, a HOST:PORT, a port and a default HELO name.  Each used to do it its own way,
and the weaker copy hung on a FIFO, ate memory on /dev/zero, accepted ``²`` as a port
or echoed a password in an argparse error.  Every reader here is bounded: a file is
opened without blocking, must be a regular file, and is read up to a fixed size.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping

from check_smtp_verbs import addresses
from check_smtp_verbs.usage import UsageError

MAX_SECRET = 16384
"""Far above any password or OAuth bearer token, far below what hurts."""

MAX_CA_FILE = 1 << 20
"""A CA bundle: Debian's whole ca-certificates.crt is about 220 KiB."""


def read_regular_file(path: str, option: str, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``, which must be a regular file.

    O_NONBLOCK keeps open() from waiting for a FIFO's writer; fstat on the opened
    descriptor (not the path, which could be swapped) refuses FIFOs, devices such as
    /dev/zero, and directories; the read is bounded, so a huge file costs nothing.
    Returns ``limit + 1`` bytes when the file is longer, so callers can say so.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{option}: {path} is not a regular file")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _check_secret(secret: str, where: str) -> str:
    if not secret:
        raise UsageError(f"the AUTH secret from {where} is empty")
    if len(secret.encode("utf-8", "surrogateescape")) > MAX_SECRET:
        raise UsageError(f"the AUTH secret from {where} is longer than {MAX_SECRET} bytes")
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in argv or the environment
        raise UsageError(f"the AUTH secret from {where} is not valid UTF-8") from None
    if "\0" in secret:
        raise UsageError(f"the AUTH secret from {where} contains a NUL byte")
    return secret


def secret_from_file(path: str, option: str = "--auth-password-file") -> str:
    """The first line of a regular file, UTF-8, without its line ending."""
    raw = read_regular_file(path, option, MAX_SECRET + 2)  # + CR LF
    line = raw.split(b"\n", 1)[0].removesuffix(b"\r")
    where = f"{option} {path}"
    if len(line) > MAX_SECRET:
        raise UsageError(f"the AUTH secret from {where} is longer than {MAX_SECRET} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{option}: {path} is not UTF-8 text") from None
    return _check_secret(text, where)


def secret_from_env(
    name: str, environ: Mapping[str, str], option: str = "--auth-password-env"
) -> str:
    if name not in environ:
        raise UsageError(f"{option}: the environment variable {name} is not set")
    return _check_secret(environ[name], f"the environment variable {name}")


def secret_from_argv(value: str, option: str = "-P") -> str:
    return _check_secret(value, option)


def ca_file(path: str, option: str = "--ca-file") -> str:
    """Check that ``path`` is a readable regular file holding a PEM certificate.

    The path (not the content) is what the TLS layer loads later; checking it here
    turns a typo or a FIFO into one line before anything is sent.
    """
    pem = read_regular_file(path, option, MAX_CA_FILE)
    if len(pem) > MAX_CA_FILE:
        raise UsageError(f"{option}: {path} is larger than {MAX_CA_FILE} bytes")
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise UsageError(f"{option}: {path} holds no PEM certificate")
    return path


def default_helo() -> str:
    """check_smtp's default: this machine's host name, when it is a usable HELO name."""
    import _socket  # gethostname() without the socket module's enums (core/deadline.py)

    try:
        return addresses.helo_name(_socket.gethostname())
    except addresses.InvalidInput:
        return "localhost"


def port(value: str, option: str, *, allow_zero: bool = False) -> int:
    """A TCP port: ASCII digits only (``int("²")`` would fail, ``"²".isdigit()`` is True)."""
    low = 0 if allow_zero else 1
    # ASCII digits only: str.isdigit() alone also admits "²"
    if 0 < len(value) <= 5 and value.isascii() and value.isdigit() and low <= int(value) <= 65535:
        return int(value)
    raise UsageError(f"{option} must be a number from {low} to 65535, not {value!r}")


def split_host_port(value: str, option: str) -> tuple[str, str | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    try:
        addresses.reject_control_characters(value, option)
    except addresses.InvalidInput as exc:
        raise UsageError(str(exc)) from None
    text = value.strip()
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise UsageError(f"{option}: want HOST:PORT or [IPv6]:PORT, not {value!r}")
        return host, rest[1:] if rest else None
    if text.count(":") == 1:
        host, _, number = text.partition(":")
        return host, number
    return text, None


def host_port(value: str, default_port: int, option: str) -> tuple[str, int]:
    """A server: a host name or IP address, and a port (``default_port`` unless given)."""
    host, number = split_host_port(value, option)
    try:
        host = addresses.hostname(host)
    except addresses.InvalidInput:
        raise UsageError(f"{option}: invalid host {value!r}") from None
    return host, default_port if number is None else port(number, f"{option} port")


def ip_port(value: str, option: str, *, allow_zero: bool = True) -> tuple[str, int | None]:
    """``IP[:PORT]`` or ``[IPv6][:PORT]``: an address, never a name to look up."""
    import ipaddress  # only --resolver and --proxy-source pay for it

    address, number = split_host_port(value, option)
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise UsageError(f"{option}: {address!r} is not an IP address") from None
    if number is None:
        return address, None
    return address, port(number, f"{option} port", allow_zero=allow_zero)


def _secret_values(argv: list[str], short: Iterable[str], long: Iterable[str]) -> list[str]:
    """The values given to secret options, however argparse would have read them."""
    longs = tuple(long)
    shorts = tuple(short)
    values = []
    for index, arg in enumerate(argv):
        name, eq, attached = arg.partition("=")
        short_hit = next((s for s in shorts if arg.startswith(s)), None)
        long_hit = (
            name.startswith("--") and len(name) > 6 and any(o.startswith(name) for o in longs)
        )
        if short_hit is not None and len(arg) > len(short_hit):
            values.append(arg[len(short_hit) :].removeprefix("="))
        elif long_hit and eq:
            values.append(attached)
        elif (short_hit is not None or long_hit) and index + 1 < len(argv):
            values.append(argv[index + 1])
    return [v for v in values if v]


SECRET_SHORT = ("-P",)
SECRET_LONG = ("--auth-password", "--authpass")


def scrub_argv(message: str, argv: list[str]) -> str:
    """Take every secret option's value out of an error message.

    argparse echoes unknown arguments and bad values, and schedulers log what a
    plugin or notification command prints.  The notifier has no -P at all, which is
    exactly when a user trying ``-P X`` needs its value hidden.
    """
    for secret in sorted(_secret_values(argv, SECRET_SHORT, SECRET_LONG), key=len, reverse=True):
        message = message.replace(secret, "<redacted>")
    return message
