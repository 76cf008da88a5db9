"""STARTTLS and AUTH towards the gateway, against aiosmtpd with trustme certificates.

aiosmtpd speaks correct STARTTLS and AUTH, which is all these tests need from a
gateway; the project's fault-injecting server covers the misbehaving ones.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword

from tests.notifier import ADDRESSED, notify_env, problem, run_notify

SECRET = "correct horse battery staple"


class Gateway:
    """An aiosmtpd server on 127.0.0.1 with STARTTLS (and AUTH when asked)."""

    def __init__(self, context: ssl.SSLContext, **smtp_options: Any) -> None:
        self.messages: list[Envelope] = []
        self.logins: list[tuple[str, bool]] = []
        self._loop = asyncio.new_event_loop()
        handler = self

        def factory() -> SMTP:
            return SMTP(
                handler,
                hostname="gateway.test",
                tls_context=context,
                authenticator=self._authenticate,
                **smtp_options,
            )

        self._server = self._loop.run_until_complete(
            self._loop.create_server(factory, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        assert isinstance(data, LoginPassword)
        ok = data.password.decode() == SECRET
        self.logins.append((data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # aiosmtpd then sends 535 itself

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 2.0.0 queued"

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def args(self) -> list[str]:
        return ["--smtp-server", f"127.0.0.1:{self.port}"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_gateway(ca: trustme.CA) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(**options: Any) -> Gateway:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        gateway = Gateway(context, **options)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def _notify(gateway: Gateway, tmp_path: Path, *more: str, **env: str):
    return run_notify(
        *ADDRESSED,
        *gateway.args,
        "--state-file",
        str(tmp_path / "s.json"),
        *more,
        *problem(),
        env=notify_env(tmp_path, **env),
    )


def test_starttls_is_used_when_offered(tls_gateway, tmp_path):
    gateway = tls_gateway(require_starttls=True)
    run = _notify(gateway, tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"via 127.0.0.1:{gateway.port}, TLS" in run.stdout
    assert len(gateway.messages) == 1


def test_no_tls_never_starts_tls(tls_gateway, tmp_path):
    gateway = tls_gateway()
    run = _notify(gateway, tmp_path, "--no-tls")
    assert run.returncode == 0, run.stderr
    assert ", TLS" not in run.stdout
    assert len(gateway.messages) == 1


def test_require_tls_verifies_the_certificate(tls_gateway, tmp_path, ca_file):
    gateway = tls_gateway()
    trusted = _notify(gateway, tmp_path, "--require-tls", "--tls-ca", ca_file)
    assert trusted.returncode == 0, trusted.stderr
    untrusted = _notify(gateway, tmp_path / "other", "--require-tls")
    assert untrusted.returncode == 1
    assert "certificate verify failed" in untrusted.stderr
    assert len(untrusted.stderr.splitlines()) == 1
    assert len(gateway.messages) == 1


def test_require_tls_refuses_a_gateway_without_starttls(smtp_server, tmp_path):
    server = smtp_server()
    run = run_notify(
        *ADDRESSED,
        "--smtp-server",
        f"127.0.0.1:{server.port}",
        "--state-file",
        str(tmp_path / "s.json"),
        "--require-tls",
        *problem(),
        env=notify_env(tmp_path),
    )
    assert run.returncode == 1
    assert "STARTTLS not offered (--require-tls)" in run.stderr
    assert server.messages == []
    assert not any(line.upper().startswith("MAIL") for line in server.received)


def test_auth_with_the_secret_from_an_environment_variable(tls_gateway, tmp_path, ca_file):
    gateway = tls_gateway(auth_required=True, auth_require_tls=True)
    run = _notify(
        gateway,
        tmp_path,
        "--auth-user",
        "alerts",
        "--auth-password-env",
        "SMS_SECRET",
        "--tls-ca",
        ca_file,
        SMS_SECRET=SECRET,
    )
    assert run.returncode == 0, run.stderr
    assert gateway.logins == [("alerts", True)]
    assert len(gateway.messages) == 1


def test_a_wrong_password_fails_without_showing_it(tls_gateway, tmp_path, ca_file):
    gateway = tls_gateway(auth_required=True, auth_require_tls=True)
    secret = tmp_path / "secret"
    secret.write_text("wrong-password-42\n")
    run = _notify(
        gateway,
        tmp_path,
        "--auth-user",
        "alerts",
        "--auth-password-file",
        str(secret),
        "--tls-ca",
        ca_file,
    )
    assert run.returncode == 1
    assert "AUTH answered 535" in run.stderr
    assert "wrong-password-42" not in run.stdout + run.stderr
    assert gateway.logins == [("alerts", False)]
    assert gateway.messages == []


def test_a_refused_starttls_goes_on_in_plain_text(smtp_server, tmp_path):
    capabilities = ["PIPELINING", "STARTTLS", "8BITMIME"]
    server = smtp_server(capabilities=capabilities)  # answers STARTTLS with 454
    run = run_notify(
        *ADDRESSED,
        "--smtp-server",
        f"127.0.0.1:{server.port}",
        "--state-file",
        str(tmp_path / "s.json"),
        *problem(),
        env=notify_env(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    assert ", TLS" not in run.stdout
    assert [line.split()[0].upper() for line in server.received[:3]] == ["EHLO", "STARTTLS", "MAIL"]
    assert len(server.messages) == 1


def test_a_failed_handshake_is_retried_without_tls_unless_tls_is_required(smtp_server, tmp_path):
    server = smtp_server(
        capabilities=["STARTTLS"],
        replies={"STARTTLS": "220 2.0.0 Ready to start TLS"},
        close_after="STARTTLS",  # and then no TLS at all: the handshake meets EOF
    )
    args = [*ADDRESSED, "--smtp-server", f"127.0.0.1:{server.port}"]
    run = run_notify(
        *args, "--state-file", str(tmp_path / "s.json"), *problem(), env=notify_env(tmp_path)
    )
    assert run.returncode == 0, run.stderr
    assert server.connections == 2
    assert len(server.messages) == 1
    required = run_notify(
        *args,
        "--require-tls",
        "--state-file",
        str(tmp_path / "r.json"),
        *problem(),
        env=notify_env(tmp_path),
    )
    assert required.returncode == 1
    assert "at the STARTTLS handshake" in required.stderr
    assert "without TLS" not in required.stderr
    assert len(server.messages) == 1
