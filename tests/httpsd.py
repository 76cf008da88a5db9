"""An HTTPS server on loopback that serves an MTA-STS policy, or fails to the way real
policy hosts do.

RFC 8461 fixes the URL (``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``, port 443),
so the server listens on port 443 of an address of its own in 127.0.0.0/8 and the test
DNS says ``mta-sts.DOMAIN A`` that address; binding port 443 needs root, like the other
private daemons.  Faults a test can set (and change between requests):

* ``context``: any certificate, e.g. an expired one from tests/certs.py;
* ``status``/``location``: a redirect or an error page;
* ``content_type``: ``text/html`` instead of ``text/plain``;
* ``body`` as big as you like, with or without a Content-Length (``chunked``);
* ``dribble``: seconds between single bytes of the response (a slow server).
"""

from __future__ import annotations

import errno
import random
import socket
import ssl
import threading
import time

PATH = "/.well-known/mta-sts.txt"


def policy_text(mode: str = "enforce", *mx: str, max_age: int = 604800) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


class PolicyServer:
    """Serves ``body`` at PATH over TLS with ``context``; 404 for any other path."""

    def __init__(self, context: ssl.SSLContext, host: str | None = None, port: int = 443) -> None:
        self.context = context
        self.body: bytes = b""
        self.status = 200
        self.location: str | None = None
        self.content_type: str | None = "text/plain; charset=utf-8"
        self.chunked = False
        self.dribble: float | None = None
        self.requests: list[str] = []
        """Request lines received, in order (``GET /.well-known/mta-sts.txt HTTP/1.1``)."""
        self.hosts: list[str] = []
        """Host headers received."""
        self.errors: list[BaseException] = []
        """Bugs in the server itself, so a test cannot pass on a broken server."""
        self._listener = self._bind(host, port)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="httpsd", daemon=True)

    @staticmethod
    def _bind(host: str | None, port: int) -> socket.socket:
        """Port 443 on the given address, or on a random free one in 127.0.0.0/8."""
        for _ in range(50):
            address = host or f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.1"
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                listener.bind((address, port))
            except OSError as exc:
                listener.close()
                if exc.errno == errno.EADDRINUSE and host is None:
                    continue
                raise
            listener.listen(16)
            return listener
        raise OSError(errno.EADDRINUSE, "no free loopback address for port 443")

    def serve(self, text: str | bytes) -> PolicyServer:
        self.body = text.encode() if isinstance(text, str) else text
        return self

    def start(self) -> PolicyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            with socket.create_connection((self.host, self.port), timeout=2):
                pass
        except OSError:
            pass
        self._thread.join(timeout=10)
        self._listener.close()

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            connection, _ = self._listener.accept()
            if self._stopping.is_set():
                connection.close()
                return
            threading.Thread(
                target=self._handle, args=(connection,), name="httpsd-conn", daemon=True
            ).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        try:
            tls = self.context.wrap_socket(connection, server_side=True)
        except (OSError, ssl.SSLError):
            connection.close()  # the client refused our certificate: what some tests want
            return
        with tls:
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                self.requests.append(lines[0])
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "host":
                        self.hosts.append(value.strip())
                self._respond(tls, lines[0])
            except (OSError, ssl.SSLError):
                return  # the client hung up (a deadline, a size bound): fine
            except Exception as error:
                self.errors.append(error)

    def _respond(self, tls: ssl.SSLSocket, request: str) -> None:
        parts = request.split()
        found = len(parts) == 3 and parts[0] == "GET" and parts[1] == PATH
        status = self.status if found else 404
        body = self.body if found else b"not found\n"
        headers = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}"]
        if self.location is not None and found:
            headers.append(f"Location: {self.location}")
        if self.content_type is not None:
            headers.append(f"Content-Type: {self.content_type}")
        if self.chunked:
            headers.append("Transfer-Encoding: chunked")
            payload = b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + 4096]), body[i : i + 4096])
                for i in range(0, len(body), 4096)
            )
            payload += b"0\r\n\r\n"
        else:
            headers.append(f"Content-Length: {len(body)}")
            payload = body
        headers.append("Connection: close")
        data = ("\r\n".join(headers) + "\r\n\r\n").encode() + payload
        if self.dribble is None:
            tls.sendall(data)
            return
        for index in range(len(data)):
            if self._stopping.is_set():
                return
            tls.sendall(data[index : index + 1])
            time.sleep(self.dribble)


_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    404: "Not Found",
    500: "Internal Server Error",
}
