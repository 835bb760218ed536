"""Migration events and the webhook sender that delivers them.

A migration emits ``migration.started``, ``migration.progress`` and one terminal event (``completed``,
``failed`` or ``cancelled``). ``WebhookSender`` POSTs each as JSON from a daemon thread, so a receiver that
hangs, errors or is gone never slows the migration: ``send()`` only enqueues.

Each request carries ``X-Vecns-Event-Id`` (receivers de-duplicate on it: delivery is at least once) and,
when a secret is set, ``X-Vecns-Signature: sha256=<hex HMAC-SHA256 of the body>``; receivers check it with
``verify_signature``. Redirects are never followed, and unless private receivers are allowed, every address
the host resolves to must be public or this machine's loopback, both when the sender is made and again at
each connection. Loopback is allowed by default because the usual receiver of a local migration is a
script on the same machine, and the config usually comes from the process's own owner. What reaches
other machines (private networks, link-local and the cloud metadata address, shared, multicast, reserved,
and loopback wrapped in 6to4, NAT64 or Teredo) needs the opt-in. A service that runs configs from other
parties opens its store with ``vecns.connect(path, loopback_webhooks=False)``, which refuses loopback too.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vecns._crash import crashpoint
from vecns.errors import ConfigError, ValidationError

__all__ = [
    "EVENT_TYPES", "Event", "TERMINAL_EVENT_TYPES", "WebhookSender", "redact_url", "sign",
    "validate_webhook_url", "verify_signature",
]

EVENT_TYPES = (
    "migration.started", "migration.progress", "migration.completed", "migration.failed", "migration.cancelled"
)
"""Every event type a migration emits, in lifecycle order."""

TERMINAL_EVENT_TYPES = ("migration.completed", "migration.failed", "migration.cancelled")
"""Event types that end a migration; the sender never drops one of these to make room."""

_PROGRESS = "migration.progress"
_MAX_BACKOFF_S = 30.0
_MAX_RESPONSE_BYTES = 64 * 1024
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_PRIVATE_FIX = "Set allow_private_webhooks=true to deliver to a receiver on a private network."
_LOOPBACK_FIX = ("This store refuses receivers on this machine (opened with loopback_webhooks=False, as for "
                 "configs from other parties).")

logger = logging.getLogger("vecns.webhooks")


@dataclass(frozen=True)
class Event:
    """One migration event, as sent to webhooks.

    Attributes:
        event_id: Unique id (``evt_`` + 32 hex digits); receivers de-duplicate on it.
        type: One of ``EVENT_TYPES``.
        migration_id: The migration the event belongs to.
        created_at: When the event was made, ISO 8601 UTC (``2025-01-01T12:00:00.000000Z``).
        data: JSON-able details: ``status``, ``processed``, ``total``, ``failed``, ``percent`` and more.
    """

    event_id: str
    type: str
    migration_id: str
    created_at: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValidationError(
                f"event type {self.type!r} is not known; expected one of {', '.join(EVENT_TYPES)}."
            )

    @classmethod
    def new(
        cls, type: str, migration_id: str, *, data: Mapping[str, Any] | None = None, now: dt.datetime | None = None
    ) -> Event:
        """Make an event with a fresh id and the current UTC time.

        Args:
            type: One of ``EVENT_TYPES``.
            migration_id: The migration the event belongs to.
            data: Details to send (copied).
            now: The event time; the current time when None. A naive datetime is taken as UTC.

        Returns:
            The new event.

        Raises:
            ValidationError: If ``type`` is not one of ``EVENT_TYPES``.
        """
        moment = now or dt.datetime.now(dt.timezone.utc)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        created_at = moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return cls(f"evt_{uuid.uuid4().hex}", type, migration_id, created_at, dict(data or {}))

    @property
    def terminal(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled`` events."""
        return self.type in TERMINAL_EVENT_TYPES

    def to_dict(self) -> dict[str, Any]:
        """Return the event as the JSON object a webhook receives.

        Returns:
            A dict with ``event_id``, ``type``, ``migration_id``, ``created_at`` and ``data``.
        """
        return {"event_id": self.event_id, "type": self.type, "migration_id": self.migration_id,
                "created_at": self.created_at, "data": dict(self.data)}


def redact_url(url: str) -> str:
    """Return ``url`` safe to log: user info removed, query values replaced by ``***``, fragment dropped.

    Args:
        url: Any URL string.

    Returns:
        The redacted URL, or ``"<unparsable url>"`` when it cannot be parsed.
    """
    try:
        parts = urllib.parse.urlsplit(str(url))
        netloc = parts.netloc.rpartition("@")[2]
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparsable url>"
    query = "&".join(f"{urllib.parse.quote(key, safe='')}=***" for key, _ in pairs)
    if parts.query and not pairs:
        query = "***"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def validate_webhook_url(url: str, *, allow_private: bool = False, allow_loopback: bool = True) -> str:
    """Check that a webhook URL is safe to POST to.

    Only ``http`` and ``https`` are accepted, with a host and without user info. Unless ``allow_private``
    is set, the host must not be written as a bare, hex or octal number (``2130706433``, ``0x7f.1``), and
    every address it resolves to must be public, or loopback (``localhost``, ``127.0.0.1``, ``[::1]``) while
    ``allow_loopback`` holds: private, shared, link-local (cloud metadata at 169.254.169.254 included),
    multicast, reserved and unspecified addresses are refused, also when wrapped in IPv6
    (``[::ffff:10.0.0.1]``). Resolution happens only when ``allow_private`` is False.

    Args:
        url: The receiver's URL.
        allow_private: Allow receivers on private networks and other non-public addresses.
        allow_loopback: Allow a receiver on this machine (the default; a server taking configs from other
            parties turns it off).

    Returns:
        ``url``, unchanged.

    Raises:
        ConfigError: If the URL is malformed or not allowed; the message shows it redacted.
    """
    shown = redact_url(url)
    if not isinstance(url, str):
        raise ConfigError(f"webhook URL must be a string; got {type(url).__name__}.")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"webhook URL {shown!r} cannot be parsed ({exc}); expected http(s)://host[:port]/path."
        ) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(
            f"webhook URL {shown!r} uses scheme {scheme or '(none)'!r}; expected http or https, "
            "e.g. https://example.com/hooks/vecns."
        )
    if "@" in parts.netloc:
        raise ConfigError(
            f"webhook URL {shown!r} carries user info (credentials); expected none. "
            "Authenticate receivers with webhook_secret (an HMAC signature) instead."
        )
    if not host:
        raise ConfigError(f"webhook URL {shown!r} has no host; expected http(s)://host[:port]/path.")
    if not set(host) <= _HOST_CHARS and not _is_ip_literal(host):
        raise ConfigError(
            f"webhook URL {shown!r} has host {host!r} with characters a host name cannot hold; expected a "
            "DNS name (international names in their xn-- form) or an IP address."
        )
    if allow_private:
        return url
    _check_host(host, port or (443 if scheme == "https" else 80), shown, allow_loopback=allow_loopback)
    return url


def sign(body: bytes, secret: str) -> str:
    """Return the ``X-Vecns-Signature`` header value for a request body.

    Args:
        body: The exact request body bytes.
        secret: The shared webhook secret.

    Returns:
        ``"sha256=<hex HMAC-SHA256 of body keyed by secret>"``.
    """
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header: str | None) -> bool:
    """Check a webhook request's ``X-Vecns-Signature`` header, in constant time.

    Args:
        body: The exact request body bytes, as received.
        secret: The shared webhook secret.
        header: The ``X-Vecns-Signature`` header value (None when absent).

    Returns:
        True when the header is the body's signature under ``secret``.
    """
    if not header or not isinstance(header, str):
        return False
    expected = sign(body, secret).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


class WebhookSender:
    """Deliver events to one webhook URL from a background thread.

    ``send()`` never blocks and never raises. Events go out in the order they were sent; each is retried
    with exponential back-off on connection errors, timeouts, 5xx, 408 and 429 (at most ``max_retries``
    retries), and given up on other 4xx and on any 3xx (redirects are never followed: one could point at
    an internal address). When ``max_queue`` events wait, the oldest progress event is dropped to make
    room; start and terminal events are never dropped.

    Attributes:
        url: The receiver URL (log it only through ``redact_url``).
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        timeout: float = 5.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_queue: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        allow_private: bool = False,
        allow_loopback: bool = True,
    ) -> None:
        """Check the URL and start the delivery thread.

        Args:
            url: The receiver's URL; checked with ``validate_webhook_url``.
            secret: Shared secret for ``X-Vecns-Signature``; no signature when None.
            timeout: Seconds to wait for a connection or a response, per attempt.
            max_retries: Retries after the first attempt, per event.
            backoff: Seconds before the first retry; doubled for each next one (capped at 30 s).
            max_queue: Most events waiting for delivery.
            clock: Monotonic clock in seconds (injectable for tests).
            sleep: Sleeps between retries (injectable for tests).
            allow_private: Allow receivers on private networks and other non-public addresses.
            allow_loopback: Allow a receiver on this machine.

        Raises:
            ConfigError: If the URL is not allowed or a setting is out of range.
        """
        self.url = validate_webhook_url(url, allow_private=allow_private, allow_loopback=allow_loopback)
        _check_setting("timeout", timeout, minimum=0.0, exclusive=True)
        _check_setting("max_retries", max_retries, minimum=0, integer=True)
        _check_setting("backoff", backoff, minimum=0.0)
        _check_setting("max_queue", max_queue, minimum=1, integer=True)
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ConfigError("webhook secret must be a non-empty string, or None for unsigned requests.")
        self._parts = urllib.parse.urlsplit(url)
        self._shown = redact_url(url)
        self._secret = secret
        self._timeout = float(timeout)
        self._max_retries = max_retries
        self._backoff = float(backoff)
        self._max_queue = max_queue
        self._clock = clock
        self._sleep = sleep
        self._allow_private = allow_private
        self._allow_loopback = allow_loopback
        self._user_agent = f"vecns/{_vecns_version()}"
        self._tls: ssl.SSLContext | None = None
        self._cond = threading.Condition()
        self._wake = threading.Event()
        # Insertion-ordered (FIFO) queue plus the order of its progress events, so that dropping the
        # oldest progress event and taking the next event are both O(1).
        self._queue: collections.OrderedDict[int, tuple[Event, bytes]] = collections.OrderedDict()
        self._progress: collections.deque[int] = collections.deque()
        self._next_seq = 0
        self._closing = False
        self._deadline: float | None = None
        self._delivered: list[str] = []
        self._failures = 0
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="vecns-webhooks", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return (
            f"WebhookSender({self._shown!r}, delivered={len(self._delivered)}, "
            f"failures={self._failures}, dropped={self._dropped})"
        )

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def delivered(self) -> list[str]:
        """Ids of the events a receiver acknowledged with a 2xx, in delivery order (a copy)."""
        with self._cond:
            return list(self._delivered)

    @property
    def failures(self) -> int:
        """Events given up on after their attempts (or that could not be serialised)."""
        with self._cond:
            return self._failures

    @property
    def dropped(self) -> int:
        """Events never attempted: pushed out of a full queue, sent after close, or left at close."""
        with self._cond:
            return self._dropped

    @property
    def pending(self) -> int:
        """Events waiting in the queue (not counting one being delivered)."""
        with self._cond:
            return len(self._queue)

    def send(self, event: Event) -> None:
        """Queue an event for delivery; returns at once and never raises.

        Args:
            event: The event to deliver.
        """
        try:
            body = json.dumps(
                event.to_dict(), separators=(",", ":"), sort_keys=True, default=_json_default
            ).encode("utf-8")
        except Exception:  # noqa: BLE001 - send() must never raise into the migration
            logger.warning("webhook %s: event %r is not JSON-able; skipped", self._shown, event)
            with self._cond:
                self._failures += 1
            return
        pushed_out: Event | None = None
        with self._cond:
            why = "sent after close" if self._closing else "queue full"
            if self._closing:
                self._dropped += 1
                pushed_out = event
            elif len(self._queue) >= self._max_queue and self._progress:
                pushed_out = self._queue.pop(self._progress.popleft())[0]
                self._dropped += 1
            elif len(self._queue) >= self._max_queue and event.type == _PROGRESS:
                self._dropped += 1
                pushed_out = event
            # Start and terminal events are few and must arrive, so they may overfill the queue.
            if pushed_out is not event:
                seq = self._next_seq
                self._next_seq += 1
                self._queue[seq] = (event, body)
                if event.type == _PROGRESS:
                    self._progress.append(seq)
                self._cond.notify()
        if pushed_out is not None:
            level = logging.WARNING if why == "sent after close" else logging.DEBUG
            logger.log(level, "webhook %s: %s; dropped %s %s", self._shown, why, pushed_out.type, pushed_out.event_id)

    def close(self, *, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, then stop the thread.

        Events still queued when the time is up are counted in ``dropped``. Returns within ``timeout``
        (plus scheduling noise) even when the receiver hangs; the daemon thread then ends on its own after
        its current attempt.

        Args:
            timeout: Seconds to wait for the queue to drain.
        """
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = self._clock() + max(0.0, timeout)
            self._cond.notify_all()
        self._wake.set()
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            logger.warning("webhook %s: receiver still busy after %.1f s; %d queued event(s) abandoned",
                           self._shown, timeout, self.pending)

    def _time_left(self) -> float | None:
        if self._deadline is None:
            return None
        return self._deadline - self._clock()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                left = self._time_left()
                if not self._queue or (left is not None and left <= 0):
                    self._dropped += len(self._queue)
                    self._queue.clear()
                    self._progress.clear()
                    return
                seq, (event, body) = self._queue.popitem(last=False)
                if self._progress and self._progress[0] == seq:
                    self._progress.popleft()
            try:
                ok = self._deliver(event, body)
            except Exception:  # noqa: BLE001 - the thread must survive anything a receiver does
                logger.exception("webhook %s: unexpected error delivering %s", self._shown, event.event_id)
                ok = False
            with self._cond:
                if ok:
                    self._delivered.append(event.event_id)
                else:
                    self._failures += 1

    def _deliver(self, event: Event, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", "User-Agent": self._user_agent,
                   "X-Vecns-Event-Id": event.event_id, "X-Vecns-Event-Type": event.type}
        if self._secret is not None:
            headers["X-Vecns-Signature"] = sign(body, self._secret)
        what = f"{event.type} {event.event_id}"
        for attempt in range(self._max_retries + 1):
            left = self._time_left()
            if left is not None and left <= 0:
                break
            timeout = self._timeout if left is None else max(0.05, min(self._timeout, left))
            try:
                status = self._post(body, headers, timeout)
            except _RefusedAddress as exc:
                return self._give_up(what, str(exc))
            except (OSError, http.client.HTTPException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    logger.debug("webhook %s: delivered %s", self._shown, what)
                    return True
                if status < 500 and status not in (408, 429):
                    hint = " (redirects are not followed)" if 300 <= status < 400 else ""
                    return self._give_up(what, f"HTTP {status}{hint}")
                reason = f"HTTP {status}"
            if attempt == self._max_retries:
                return self._give_up(what, f"{reason} after {attempt + 1} attempts")
            delay = min(self._backoff * 2**attempt, _MAX_BACKOFF_S)
            logger.info("webhook %s: %s; retrying %s in %.2f s", self._shown, reason, what, delay)
            if not self._pause(delay):
                break
        return self._give_up(what, "the sender closed first")

    def _give_up(self, what: str, reason: str) -> bool:
        logger.warning("webhook %s: %s; %s not delivered", self._shown, reason, what)
        return False

    def _pause(self, seconds: float) -> bool:
        until = self._clock() + seconds
        while True:
            wait = until - self._clock()
            left = self._time_left()
            if left is not None and wait >= left:
                return False  # close()'s deadline comes first: no attempt could follow this pause
            if wait <= 0:
                return True
            if self._sleep is not time.sleep:
                self._sleep(wait)
                return True
            # The real sleep becomes an Event wait so that close() can end a back-off early.
            if not self._wake.wait(wait):
                return True
            self._wake.clear()

    def _post(self, body: bytes, headers: dict[str, str], timeout: float) -> int:
        parts = self._parts
        host = parts.hostname or ""
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        conn: http.client.HTTPConnection
        if parts.scheme.lower() == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
        if not self._allow_private:
            # Check the addresses again at connect time, so a DNS answer that changed since the URL
            # was validated cannot steer the request to an internal address.
            conn._create_connection = functools.partial(  # type: ignore[attr-defined]
                _guarded_connect, allow_loopback=self._allow_loopback)
        try:
            crashpoint("webhook_in_flight")
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(_MAX_RESPONSE_BYTES)
            return response.status
        finally:
            conn.close()


class _RefusedAddress(OSError):
    """The receiver's host resolved to an address that is not allowed."""


def _guarded_connect(
    address: tuple[str, int], timeout: float | None = None, source_address: tuple[str, int] | None = None, *,
    allow_loopback: bool,
) -> socket.socket:
    host, port = address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host!r}: {exc}") from exc
    for info in infos:
        reason = _refusal(ipaddress.ip_address(info[4][0].split("%", 1)[0]), allow_loopback=allow_loopback)
        if reason:
            raise _RefusedAddress(f"host {host!r} now resolves to {info[4][0]} ({reason})")
    error: OSError | None = None
    for _family, _type, _proto, _name, sockaddr in infos:
        try:
            return socket.create_connection((sockaddr[0], port), timeout, source_address)
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address for {host!r}")


def _check_host(host: str, port: int, shown: str, *, allow_loopback: bool) -> None:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        if allow_loopback:
            return  # loopback by definition (RFC 6761); the connection checks the addresses it really gets
        raise ConfigError(
            f"webhook URL {shown!r} points at localhost; expected a public host. {_LOOPBACK_FIX}"
        )
    if _is_ip_literal(host):
        addresses = [ipaddress.ip_address(host.split("%", 1)[0])]
    elif _is_numeric_ipv4(host):
        raise ConfigError(
            f"webhook URL {shown!r} writes its IPv4 address as {host!r} (a bare, hex or octal number); "
            f"expected dotted decimal such as 203.0.113.7, or a host name. {_PRIVATE_FIX}"
        )
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ConfigError(
                f"webhook URL {shown!r}: host {host!r} does not resolve ({exc}); expected a reachable "
                "host name. Check the spelling and this machine's DNS."
            ) from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    for address in addresses:
        reason = _refusal(address, allow_loopback=allow_loopback)
        if reason:
            fix = _LOOPBACK_FIX if reason.endswith("loopback") and not allow_loopback else _PRIVATE_FIX
            expected = "a public or loopback address" if allow_loopback else "a public address"
            raise ConfigError(f"webhook URL {shown!r} resolves to {address} ({reason}); expected {expected}. {fix}")


def _refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool) -> str | None:
    if allow_loopback and address.is_loopback:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            # Only an IPv4-mapped address is this machine; 6to4, NAT64 and Teredo addresses go through a
            # relay elsewhere, so their embedded loopback is refused like any non-public address.
            inner = _refusal(embedded, allow_loopback=allow_loopback and address.ipv4_mapped is not None)
            return f"IPv6 wrapping {embedded}: {inner}" if inner else None
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("private", address.is_private), ("reserved", address.is_reserved),
              ("not globally routable", not address.is_global))
    for name, hit in checks:
        if hit:
            return name
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    # ipaddress accepts only dotted decimal for IPv4, so "127.1" or "0x7f.1" never gets here.
    return isinstance(address, ipaddress.IPv6Address) or str(address) == host


def _is_numeric_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def _check_setting(
    name: str, value: Any, *, minimum: float, integer: bool = False, exclusive: bool = False
) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"webhook {name} must be {kind}; got {value!r}.")
    if value < minimum or (exclusive and value == minimum):
        bound = f"> {minimum}" if exclusive else f">= {minimum}"
        raise ConfigError(f"webhook {name} must be {bound}; got {value!r}.")


def _json_default(value: Any) -> Any:
    # numpy scalars (counts, percentages) carry .item(); vecns does not import numpy here.
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _vecns_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("vecns")
    except metadata.PackageNotFoundError:
        return "0+unknown"
