"""Migration events reach a real HTTP receiver on 127.0.0.1, signed; a dead receiver costs no time."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import vecns
from tests.conftest import migration_body as body
from vecns.migrate.events import verify_signature

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver():
    got: list[tuple[dict, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), raw))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_events_arrive_signed_and_in_order(env, receiver):
    store, _ = env
    url, got = receiver
    status = vecns.migrate(store, body(webhook_url=url, webhook_secret=SECRET, allow_private_webhooks=True,
                                       batch_options={"batch_size": 10}))
    assert status.status == "completed"
    assert wait_for(lambda: any(b"migration.completed" in raw for _, raw in got))
    events = [json.loads(raw) for _, raw in got]
    types = [e["type"] for e in events]
    assert types[0] == "migration.started" and types[-1] == "migration.completed"
    assert "migration.progress" in types
    assert all(e["migration_id"] == status.id for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[-1]["data"]["status"] == "completed" and events[-1]["data"]["processed"] == status.total
    for headers, raw in got:
        assert verify_signature(raw, SECRET, headers.get("X-Vecns-Signature"))
        assert not verify_signature(raw, "wrong", headers.get("X-Vecns-Signature"))


def test_the_secret_is_never_shown(env, receiver):
    store, _ = env
    url, _ = receiver
    migration = store.migrations.create(body(webhook_url=url, webhook_secret=SECRET, allow_private_webhooks=True))
    assert SECRET not in repr(migration.config) and SECRET not in json.dumps(migration.config.to_dict())
    assert SECRET not in json.dumps(migration.status().to_dict())


def test_a_receiver_that_never_answers_costs_the_migration_no_time(env, monkeypatch):
    """The migration thread's time inside the webhook sender stays far below 5% of its wall time.

    (The wall-time ratio itself is measured in benchmarks/, not here: timing a whole run is noise-prone.)
    """
    from vecns.migrate import events

    store, _ = env
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(100)  # accepts connections, never reads or answers
    url = f"http://127.0.0.1:{hung.getsockname()[1]}/hook"
    spent = [0.0]
    migration_threads: set[int] = set()
    original_send = events.WebhookSender.send

    def timed_send(self, event):
        start = time.perf_counter()
        try:
            return original_send(self, event)
        finally:
            migration_threads.add(threading.get_ident())
            spent[0] += time.perf_counter() - start

    monkeypatch.setattr(events.WebhookSender, "send", timed_send)
    try:
        start = time.perf_counter()
        status = vecns.migrate(store, body(webhook_url=url, allow_private_webhooks=True,
                                           batch_options={"batch_size": 10}))
        wall = time.perf_counter() - start
        assert status.status == "completed"
        assert spent[0] < 0.05 * wall, (spent[0], wall)
        assert threading.get_ident() in migration_threads  # sends happen on the migration's own thread
    finally:
        hung.close()


def test_a_receiver_on_this_machine_needs_no_opt_in(env, receiver):
    store, _ = env
    url, got = receiver
    status = vecns.migrate(store, body(webhook_url=url))
    assert status.status == "completed"
    assert wait_for(lambda: any(b'"migration.completed"' in raw for _, raw in got))


def test_a_cancelled_and_a_failed_migration_send_their_terminal_events(env, receiver, monkeypatch):
    from vecns.migrate import engine

    store, _ = env
    url, got = receiver
    cancelled = vecns.migrate(store, body(webhook_url=url, webhook_secret=SECRET, batch_options={"batch_size": 10}),
                              progress=lambda status: status.processed < 20)
    assert cancelled.status == "cancelled"
    assert wait_for(lambda: any(b'"migration.cancelled"' in raw for _, raw in got))
    store.drop_namespace("dst")
    store.migrations.delete(cancelled.id)

    def exploding(self, window):
        raise RuntimeError("the tokeniser exploded")

    monkeypatch.setattr(engine.Engine, "_tokenise", exploding)
    failed = vecns.migrate(store, body(webhook_url=url, webhook_secret=SECRET))
    assert failed.status == "failed"
    assert wait_for(lambda: any(b'"migration.failed"' in raw for _, raw in got))
    by_type = {json.loads(raw)["type"]: (headers, json.loads(raw)) for headers, raw in got}
    assert by_type["migration.cancelled"][1]["migration_id"] == cancelled.id
    assert by_type["migration.failed"][1]["migration_id"] == failed.id
    assert "exploded" in by_type["migration.failed"][1]["data"]["error"]
    assert all(verify_signature(raw, SECRET, headers.get("X-Vecns-Signature")) for headers, raw in got)


def test_a_store_opened_without_loopback_webhooks_refuses_a_receiver_on_this_machine(tmp_path, tiny_models, docs,
                                                                                      receiver):
    url, got = receiver
    with vecns.connect(tmp_path / "strict", loopback_webhooks=False) as store:
        store.models.register(tiny_models[0], model_id="tiny-a")
        store.models.register(tiny_models[1], model_id="tiny-b")
        store.create_namespace("src", "tiny-a").add([{"id": d.id, "text": d.text} for d in docs[:20]])
        report = store.migrations.validate(body(webhook_url=url))
        assert not report.valid and "loopback_webhooks=False" in " ".join(report.errors)
        with pytest.raises(vecns.ValidationError, match="loopback"):
            store.migrations.create(body(webhook_url=url))
    assert got == []


def test_a_receiver_whose_host_stops_resolving_costs_the_events_not_the_migration(env, monkeypatch, caplog):
    store, _ = env
    real = socket.getaddrinfo

    def public(host, port, *args, **kwargs):
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", public)
    migration = store.migrations.create(body(webhook_url="https://hooks.example.com/vecns"))

    def gone(host, *args, **kwargs):
        if host == "hooks.example.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", gone)
    with caplog.at_level(logging.WARNING, logger="vecns.migrate"):
        migration.start()
        status = migration.wait(60)
    assert status.status == "completed", status
    assert any("runs without webhook events" in r.getMessage() and "does not resolve" in r.getMessage()
               for r in caplog.records)
