"""Webhook events: delivery against a real local HTTP receiver, retries, hangs, redirects and URL rules."""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vecns.errors import ConfigError, ValidationError
from vecns.migrate.events import (
    EVENT_TYPES,
    Event,
    WebhookSender,
    redact_url,
    sign,
    validate_webhook_url,
    verify_signature,
)

SECRET = "s3cret"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    script: collections.deque[int] = field(default_factory=collections.deque)
    gate: threading.Event | None = None
    arrived: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.body) for request in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(Request(self.path, dict(self.headers.items()), body))
            state.arrived.release()
            if state.gate is not None:
                state.gate.wait(5)
            status = state.script.popleft() if state.script else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/redirected")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    if state.gate is not None:
        state.gate.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def events(count: int = 3, migration_id: str = "mig_1") -> list[Event]:
    made = [Event.new("migration.started", migration_id, data={"status": "in_progress"})]
    for index in range(1, count + 1):
        made.append(
            Event.new(
                "migration.progress",
                migration_id,
                data={"status": "in_progress", "processed": index, "total": count, "failed": 0,
                      "percent": 100.0 * index / count},
            )
        )
    made.append(Event.new("migration.completed", migration_id, data={"status": "completed"}))
    return made


def sender(url: str, fake: FakeTime | None = None, **options: Any) -> WebhookSender:
    fake = fake or FakeTime()
    options.setdefault("allow_private", True)
    options.setdefault("timeout", 2.0)
    return WebhookSender(url, clock=fake.clock, sleep=fake.sleep, **options)


def test_events_arrive_in_order_with_valid_signatures(receiver: Receiver) -> None:
    sent = events(5)

    with sender(receiver.url, secret=SECRET) as hooks:
        for event in sent:
            hooks.send(event)
    hooks.close(timeout=5)

    assert [body["event_id"] for body in receiver.bodies()] == [event.event_id for event in sent]
    assert hooks.delivered == [event.event_id for event in sent]
    assert (hooks.failures, hooks.dropped) == (0, 0)
    for request, event in zip(receiver.requests, sent, strict=True):
        headers = {key.lower(): value for key, value in request.headers.items()}
        assert request.path == "/hook"
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"].startswith("vecns/")
        assert headers["x-vecns-event-id"] == event.event_id
        assert verify_signature(request.body, SECRET, headers["x-vecns-signature"])
        assert json.loads(request.body) == event.to_dict()


def test_unsigned_without_a_secret(receiver: Receiver) -> None:
    hooks = sender(receiver.url)
    hooks.send(events(0)[0])
    hooks.close(timeout=5)

    assert len(receiver.requests) == 1
    assert "X-Vecns-Signature" not in receiver.requests[0].headers


def test_500_then_200_is_retried_and_delivered_once_acknowledged(receiver: Receiver) -> None:
    receiver.script.extend([500, 200])
    fake = FakeTime()
    event = events(0)[0]

    hooks = sender(receiver.url, fake, backoff=0.5)
    hooks.send(event)
    hooks.close(timeout=5)

    assert [body["event_id"] for body in receiver.bodies()] == [event.event_id, event.event_id]
    assert hooks.delivered == [event.event_id]
    assert fake.sleeps == [0.5]
    assert hooks.failures == 0


@pytest.mark.parametrize(
    ("status", "attempts", "sleeps"),
    [
        (500, 4, [0.5, 1.0, 2.0]),
        (503, 4, [0.5, 1.0, 2.0]),
        (429, 4, [0.5, 1.0, 2.0]),
        (408, 4, [0.5, 1.0, 2.0]),
        (400, 1, []),
        (404, 1, []),
        (410, 1, []),
    ],
)
def test_retries_are_bounded_and_only_for_transient_statuses(
    receiver: Receiver, status: int, attempts: int, sleeps: list[float]
) -> None:
    receiver.script.extend([status] * 10)
    fake = FakeTime()

    hooks = sender(receiver.url, fake, max_retries=3, backoff=0.5)
    hooks.send(events(0)[0])
    hooks.close(timeout=5)

    assert len(receiver.requests) == attempts
    assert fake.sleeps == sleeps
    assert (hooks.delivered, hooks.failures) == ([], 1)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_not_followed(receiver: Receiver, status: int) -> None:
    receiver.script.append(status)

    hooks = sender(receiver.url)
    hooks.send(events(0)[0])
    hooks.close(timeout=5)

    assert [request.path for request in receiver.requests] == ["/hook"]
    assert (hooks.delivered, hooks.failures) == ([], 1)


def test_hanging_receiver_never_slows_the_caller() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept_and_hold, daemon=True)
    acceptor.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        hooks = WebhookSender(url, allow_private=True, timeout=0.3, max_retries=5, backoff=0.05)
        durations = []
        for event in events(50):
            start = time.perf_counter()
            hooks.send(event)
            durations.append(time.perf_counter() - start)

        start = time.perf_counter()
        hooks.close(timeout=0.5)
        closing = time.perf_counter() - start

        # One send may lose the CPU to the scheduler on a loaded machine; a send that waited on the
        # receiver would take at least its 0.3 s timeout.
        assert sum(duration >= 0.010 for duration in durations) <= 1
        assert max(durations) < 0.1
        assert closing < 0.9
        assert hooks.delivered == []
        give_up = time.monotonic() + 3
        while hooks.failures + hooks.dropped < 52 and time.monotonic() < give_up:
            time.sleep(0.02)
        assert hooks.failures + hooks.dropped == 52
    finally:
        stop.set()
        acceptor.join(2)
        for conn in held:
            conn.close()
        listener.close()


def test_close_cuts_a_real_back_off_short(receiver: Receiver) -> None:
    receiver.script.extend([500] * 10)

    hooks = WebhookSender(receiver.url, allow_private=True, backoff=30.0, max_retries=3)
    hooks.send(events(0)[0])
    assert receiver.arrived.acquire(timeout=5)
    start = time.perf_counter()
    hooks.close(timeout=0.3)
    closing = time.perf_counter() - start

    assert closing < 1.0
    assert len(receiver.requests) == 1
    assert (hooks.delivered, hooks.failures) == ([], 1)


def test_dead_receiver_fails_after_bounded_retries() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    fake = FakeTime()

    hooks = sender(f"http://127.0.0.1:{port}/hook", fake, max_retries=2, backoff=0.25)
    start = time.perf_counter()
    hooks.send(events(0)[0])
    sent_in = time.perf_counter() - start
    hooks.close(timeout=5)

    assert sent_in < 0.1
    assert fake.sleeps == [0.25, 0.5]
    assert (hooks.delivered, hooks.failures) == ([], 1)


def test_full_queue_drops_oldest_progress_never_a_terminal_event(receiver: Receiver) -> None:
    receiver.gate = threading.Event()
    started, *progress, completed = events(5)

    hooks = sender(receiver.url, max_queue=3)
    hooks.send(started)
    assert receiver.arrived.acquire(timeout=5)
    for event in progress:
        hooks.send(event)
    hooks.send(completed)
    receiver.gate.set()
    hooks.close(timeout=5)

    expected = [started, progress[3], progress[4], completed]
    assert hooks.delivered == [event.event_id for event in expected]
    assert hooks.dropped == 3


def test_terminal_events_may_overfill_the_queue(receiver: Receiver) -> None:
    receiver.gate = threading.Event()
    started = Event.new("migration.started", "mig_1")
    failed = Event.new("migration.failed", "mig_1", data={"status": "failed"})
    cancelled = Event.new("migration.cancelled", "mig_1", data={"status": "cancelled"})
    late_progress = Event.new("migration.progress", "mig_1", data={"processed": 1})

    hooks = sender(receiver.url, max_queue=1)
    hooks.send(started)
    assert receiver.arrived.acquire(timeout=5)
    hooks.send(failed)
    hooks.send(cancelled)
    hooks.send(late_progress)
    receiver.gate.set()
    hooks.close(timeout=5)

    assert hooks.delivered == [started.event_id, failed.event_id, cancelled.event_id]
    assert hooks.dropped == 1


def test_send_never_raises(receiver: Receiver) -> None:
    hooks = sender(receiver.url)
    hooks.send(Event.new("migration.progress", "mig_1", data={"thing": object()}))
    hooks.close(timeout=5)
    hooks.send(Event.new("migration.completed", "mig_1"))

    assert receiver.requests == []
    assert (hooks.failures, hooks.dropped) == (1, 1)


def test_address_is_checked_again_at_connect_time(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    answers = iter(["8.8.8.8"])
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.example.com":
            return real(host, *args, **kwargs)
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    hooks = sender(f"http://hooks.example.com:{port}/hook", allow_private=False, allow_loopback=False)
    hooks.send(events(0)[0])
    hooks.close(timeout=5)

    assert receiver.requests == []
    assert (hooks.delivered, hooks.failures) == ([], 1)


def test_a_rebinding_to_a_private_address_is_refused_at_connect_time(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["8.8.8.8"])
    connected: list[Any] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "10.9.8.7"), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: connected.append(args))
    hooks = sender("http://hooks.example.com/hook", allow_private=False)  # loopback allowed, private not
    hooks.send(events(0)[0])
    hooks.close(timeout=5)

    assert connected == []
    assert (hooks.delivered, hooks.failures) == ([], 1)


LOOPBACK_URLS = ["http://localhost/", "http://api.localhost:8080/", "http://127.0.0.1:8765/hook", "http://[::1]/",
                 "http://[::ffff:127.0.0.1]/"]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/hook",
        "gopher://example.com/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/",
        "http://api.localhost:8080/",
        "http://127.0.0.1:8765/hook",
        "http://10.0.0.1/",
        "http://192.168.1.20/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1%25eth0]/",
        "http://[fc00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::7f00:1]/",  # NAT64, 6to4 and Teredo wrapping 127.0.0.1 go through relays elsewhere
        "http://[2002:7f00:1::]/",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:a00:1::]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://127.1/",
        "http://010.0.0.1/",
        "http://user:pw@example.com/",
        "https://:pw@example.com/",
        "http:///no-host",
        "http://exa mple.com/",
        "http://[::1/",
        "http://example.com:99999/",
    ],
)
def test_unsafe_urls_are_refused(url: str) -> None:
    strict = url in LOOPBACK_URLS  # a receiver on this machine is refused only when loopback is turned off
    with pytest.raises(ConfigError, match="webhook URL") as caught:
        validate_webhook_url(url, allow_loopback=not strict)

    message = str(caught.value)
    assert "pw" not in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("url", LOOPBACK_URLS)
def test_a_receiver_on_this_machine_is_allowed_unless_loopback_is_turned_off(url: str) -> None:
    assert validate_webhook_url(url) == url
    with pytest.raises(ConfigError, match=r"(loopback|localhost).*loopback_webhooks=False"):
        validate_webhook_url(url, allow_loopback=False)


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8765/hook", "http://127.0.0.1:8765/hook", "http://[::1]:80/", "http://10.0.0.1/",
     "http://2130706433/"],
)
def test_private_urls_allowed_when_asked(url: str) -> None:
    assert validate_webhook_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://user:pw@localhost/", "ftp://localhost/"])
def test_scheme_and_credentials_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(ConfigError):
        validate_webhook_url(url, allow_private=True)


def test_public_addresses_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        table = {"public.example": ["93.184.216.34"], "mixed.example": ["93.184.216.34", "10.1.2.3"]}
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    assert validate_webhook_url("https://public.example/hook") == "https://public.example/hook"
    assert validate_webhook_url("http://8.8.8.8/hook") == "http://8.8.8.8/hook"
    assert validate_webhook_url("http://[2001:4860:4860::8888]/") == "http://[2001:4860:4860::8888]/"
    assert validate_webhook_url("http://[::ffff:8.8.8.8]/") == "http://[::ffff:8.8.8.8]/"
    with pytest.raises(ConfigError, match=r"10\.1\.2\.3 \(private\).*allow_private_webhooks=true"):
        validate_webhook_url("https://mixed.example/hook")


def test_unresolvable_host_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)

    with pytest.raises(ConfigError, match="does not resolve") as caught:
        validate_webhook_url("https://nowhere.example/hook?token=abc")

    assert "abc" not in str(caught.value)
    assert isinstance(caught.value.__cause__, socket.gaierror)


def test_sender_refuses_an_unsafe_url() -> None:
    with pytest.raises(ConfigError, match="allow_private_webhooks=true"):
        WebhookSender("http://169.254.169.254/hook")


@pytest.mark.parametrize(
    ("option", "value"),
    [("timeout", 0), ("max_retries", -1), ("backoff", -0.1), ("max_queue", 0), ("max_retries", 1.5),
     ("secret", "")],
)
def test_sender_settings_are_checked(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=option.replace("max_", "")):
        WebhookSender("http://127.0.0.1/hook", allow_private=True, **{option: value})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@example.com/hook", "http://example.com/hook"),
        ("https://example.com/h?token=abc&x=1#frag", "https://example.com/h?token=***&x=***"),
        ("https://example.com/h?abc", "https://example.com/h?abc=***"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
        ("http://[::1/", "<unparsable url>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_verify_signature() -> None:
    body = b'{"event_id":"evt_1"}'
    header = sign(body, SECRET)

    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature(body, SECRET, header)
    assert not verify_signature(body + b" ", SECRET, header)
    assert not verify_signature(body, "other", header)
    assert not verify_signature(body, SECRET, None)
    assert not verify_signature(body, SECRET, "")
    assert not verify_signature(body, SECRET, header[7:])
    assert not verify_signature(body, SECRET, "sha256=é")


def test_event_shape() -> None:
    event = Event.new("migration.progress", "mig_1", data={"processed": 5, "total": 10, "percent": 50.0})

    data = event.to_dict()

    assert event.event_id.startswith("evt_") and len(event.event_id) == 36
    assert event.created_at.endswith("Z") and "T" in event.created_at
    assert data["data"] == {"processed": 5, "total": 10, "percent": 50.0}
    assert json.loads(json.dumps(data)) == data
    assert Event.new("migration.progress", "mig_1").event_id != event.event_id
    assert not event.terminal and Event.new("migration.failed", "mig_1").terminal
    assert EVENT_TYPES[0] == "migration.started" and len(EVENT_TYPES) == 5
    with pytest.raises(FrozenInstanceError):
        event.type = "migration.failed"  # type: ignore[misc]


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="migration.started"):
        Event.new("migration.exploded", "mig_1")
