"""One HTTP attempt of one event, to the address that was checked: no second resolution, no redirect followed.

The URL's name is resolved once per attempt; every address it resolves to must pass the policy (one refused
address refuses the attempt: a resolver answering a public and a private address gets neither), and the
connection goes to those checked addresses, with TLS's server name and the Host header still the URL's name, so
the certificate is verified against the name the operator wrote (the system's CAs, or
TOOLRUNNER_WEBHOOK_CA_BUNDLE). Connect and read have their own timeouts; only the status line and headers are
read (bounded by http.client), the body is never read and the connection is closed. Nothing the receiver sent
(its body, a malformed status line) reaches the outcome or a log line: an error says only what kind it was.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tasks.errors import ToolrunnerError
from tasks.webhooks.policy import Address, AddressPolicy, Target

Resolver = Callable[[str, int], Sequence[Address]]
USER_AGENT = "toolrunner-webhooks/1"


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: the receiver's status, or why there was none; how long it took; where it went."""

    status: int | None
    error: str | None
    latency_ms: int
    address: str | None = None
    refused: bool = False  # the policy refused an address: nothing was sent


@dataclass(frozen=True)
class Sender:
    """How attempts are made: the address policy, the TLS context, the timeouts, and the resolver."""

    policy: AddressPolicy
    tls: ssl.SSLContext
    connect_timeout: float
    read_timeout: float
    resolve: Resolver

    def send(self, target: Target, body: bytes, headers: Mapping[str, str]) -> Attempt:
        """POST the body to the target's checked addresses (the first that accepts a connection)."""
        started = time.monotonic()
        try:
            addresses = list(dict.fromkeys(self.resolve(target.host, target.port)))
        except OSError as exc:
            return Attempt(None, f"the name did not resolve ({type(exc).__name__})", _since(started))
        if not addresses:
            return Attempt(None, "the name resolved to no address", _since(started))
        for found in addresses:
            why = self.policy.refusal(found)
            if why is not None:
                return Attempt(None, f"refused: {why}", _since(started), str(found), refused=True)
        error = "no address accepted a connection"
        for found in addresses:
            try:
                status = self._post(target, found, body, headers)
            except _Unconnected as exc:
                error = str(exc)
                continue
            except (OSError, http.client.HTTPException) as exc:
                return Attempt(None, _kind(exc), _since(started), str(found))
            return Attempt(status, None, _since(started), str(found))
        return Attempt(None, error, _since(started))

    def _post(self, target: Target, found: Address, body: bytes, headers: Mapping[str, str]) -> int:
        connection = _PinnedConnection(target, found, self)
        try:
            connection.connect()
            sent = {
                **headers, "content-type": "application/json", "user-agent": USER_AGENT, "connection": "close",
            }  # fmt: skip
            connection.request("POST", target.path, body=body, headers=sent)
            return connection.getresponse().status  # the body is never read: capped at nothing, discarded
        finally:
            connection.close()


class _Unconnected(ToolrunnerError):
    """This address took no connection: the next one is tried."""


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one checked address, speaking to the URL's name (TLS server name, Host)."""

    def __init__(self, target: Target, found: Address, sender: Sender) -> None:
        super().__init__(target.host, target.port, timeout=sender.connect_timeout)
        self._address, self._tls = str(found), sender.tls if target.scheme == "https" else None
        self._read_timeout = sender.read_timeout

    def connect(self) -> None:
        try:
            raw = socket.create_connection((self._address, self.port), self.timeout)
        except OSError as exc:
            raise _Unconnected(f"connection to {self._address} failed ({_kind(exc)})") from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The handshake runs under the connect timeout; the request and response under the read timeout.
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host) if self._tls is not None else raw
            self.sock.settimeout(self._read_timeout)
        except BaseException:
            raw.close()
            raise


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificates and names verified, against the system's CAs or the bundle's only."""
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def system_resolve(host: str, port: int) -> list[Address]:
    """The addresses the system's resolver (getaddrinfo) gives a name, for TCP; a literal address is itself."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _kind(exc: BaseException) -> str:
    """An error's kind, never its text when it may quote the receiver (a bad status line, a header)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the certificate did not verify ({exc.verify_message})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
