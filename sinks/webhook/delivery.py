"""One webhook request: allowlist, address check, signature, POST, and what the answer means.

- Only hosts in `webhook_allowed_hosts` are called (`*.example.com` allows subdomains).
- The host is resolved once per request; unless private addresses are allowed, every
  address must be public (no loopback, private, link-local, multicast or reserved one:
  server-side request forgery). The request then goes to the address that was checked
  (TLS still verifies the certificate for the host name), so a DNS answer that changes
  between check and connect cannot redirect it. Redirects are never followed.
- The body is signed: header `X-CRM-Automation-Signature: t=<unix seconds>,v1=<hex>`,
  where hex is HMAC-SHA256 of `<t>.<body>` under the shared secret; a receiver recomputes
  it and rejects old timestamps (replays). `Idempotency-Key` is the action id.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from automation_core.model import Action, CallWebhook
from automation_core.webhook import document, url_problem_of

SIGNATURE_HEADER = "X-CRM-Automation-Signature"
MAX_RETRY_AFTER = 300.0
"""A Retry-After longer than this is capped (the action is retried at least that often)."""

Resolver = Callable[[str, int], Sequence[str]]


class Refused(Exception):
    """The webhook can never be delivered as it is: dead-letter it with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Unavailable(Exception):
    """The receiver could not take it now (5xx, 429, network): retry, after
    `retry_after` seconds at the earliest if the receiver said so."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]:
            return True
        if host == entry:
            return True
    return False


def address_allowed(address: str) -> bool:
    """A public unicast address (what a webhook may reach without special permission)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def body_of(action: Action) -> bytes:
    return json.dumps(document(action), ensure_ascii=False, separators=(",", ":")).encode()


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class WebhookConfig:
    allowed_hosts: tuple[str, ...]
    secret: bytes
    allow_private_addresses: bool = False
    ca_file: Path | None = None
    timeout: float = 10.0
    user_agent: str = "crm-automation"


class WebhookClient:
    """Sends webhook actions; thread-safe (one connection pool per host)."""

    def __init__(
        self,
        config: WebhookConfig,
        resolver: Resolver = resolve,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._resolve = resolver
        self._clock = clock
        self._ssl = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None
        )
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def send(self, action: Action) -> int:
        """POST the action's document; the HTTP status on success (2xx). Raises `Refused`
        or `Unavailable`."""
        if not isinstance(action.payload, CallWebhook):
            raise Refused("unexpected_record", f"not a webhook action: {action.kind}")
        url = action.payload.url
        problem = url_problem_of(url)  # also for actions not written by our engine
        if problem is not None:
            raise Refused("webhook_url_not_allowed", problem)
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        if not host_allowed(host, self._config.allowed_hosts):
            raise Refused(
                "webhook_host_not_allowed",
                f"host {host} is not in CRM_AUTOMATION_WEBHOOK_ALLOWED_HOSTS",
            )
        address = self._checked_address(host, port)
        body = body_of(action)
        now = int(self._clock())
        headers = {
            "Host": parts.netloc,
            "Content-Type": "application/json",
            "User-Agent": self._config.user_agent,
            "Idempotency-Key": action.action_id,
            SIGNATURE_HEADER: signature(self._config.secret, now, body),
        }
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        pinned = urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))
        try:
            response = self._client(host).post(
                pinned, content=body, headers=headers, extensions={"sni_hostname": host}
            )
        except httpx.TransportError as exc:
            raise Unavailable(f"{type(exc).__name__} from {host}") from None
        status = response.status_code
        if 200 <= status < 300:
            return status
        if status == 429 or status >= 500 or status == 408:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            raise Unavailable(f"HTTP {status} from {host}", retry_after)
        if 300 <= status < 400:
            raise Refused(
                "webhook_redirect", f"HTTP {status} from {host}: redirects are not followed"
            )
        raise Refused("webhook_rejected", f"HTTP {status} from {host}")

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _checked_address(self, host: str, port: int) -> str:
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise Unavailable(f"cannot resolve {host}: {exc.strerror or exc}") from None
        if not addresses:
            raise Unavailable(f"cannot resolve {host}")
        if not self._config.allow_private_addresses:
            for address in addresses:
                if not address_allowed(address):
                    raise Refused(
                        "webhook_address_not_allowed",
                        f"host {host} resolves to {address}, not a public address "
                        "(CRM_AUTOMATION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES allows it)",
                    )
        return addresses[0]

    def _client(self, host: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                client = httpx.Client(
                    verify=self._ssl,
                    timeout=self._config.timeout,
                    follow_redirects=False,
                    trust_env=False,  # no proxy from the environment: the address is pinned
                )
                self._clients[host] = client
            return client


def verify_signature(
    secret: bytes, header: str, body: bytes, now: float, tolerance: float = 300.0
) -> bool:
    """A receiver's check of the signature header (for Python receivers; docs/webhooks.md
    gives the same steps for any language): the HMAC matches and the timestamp is
    within `tolerance` seconds of `now`."""
    fields: dict[str, Any] = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, str(fields.get("v1", "")))
