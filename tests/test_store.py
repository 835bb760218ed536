"""Stores, namespaces, names and aliases."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vecns
from tests.conftest import vector_objects
from vecns.catalog import SCHEMA_VERSION


def test_connect_creates_the_layout_and_reopens(tmp_path: Path):
    path = tmp_path / "s"
    with vecns.connect(path) as store:
        ns = store.create_namespace("docs", dim=4)
        ns.add(vector_objects(3, 4))
    assert (path / "vecns.duckdb").is_file()
    assert (path / "indexes").is_dir()
    with vecns.connect(path) as store:
        assert [n.name for n in store.namespaces()] == ["docs"]
        assert store.namespace("docs").count() == 3


def test_schema_version_and_history_are_recorded(store):
    rows = store._catalog.fetchall("SELECT version, vecns_version, duckdb_version FROM vecns_schema_history")
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert rows[0][1] == vecns.__version__
    assert store._catalog.fetchone("SELECT value FROM vecns_meta WHERE key = 'schema_version'") == (
        str(SCHEMA_VERSION),)


def test_an_older_store_is_upgraded_in_place(tmp_path: Path):
    path = tmp_path / "s"
    with vecns.connect(path) as store:
        store.create_namespace("docs", dim=4).add(vector_objects(3, 4))
        with store._catalog.atomic() as tx:  # make it look like a schema-1 store
            for table in ("migrations", "migration_failures", "evaluations"):
                tx.execute(f"DROP TABLE {table}")
            tx.execute("DELETE FROM vecns_schema_history WHERE version > 1")
            tx.execute("UPDATE vecns_meta SET value = '1' WHERE key = 'schema_version'")
    with vecns.connect(path) as store:
        assert store.namespace("docs").count() == 3
        versions = [r[0] for r in store._catalog.fetchall("SELECT version FROM vecns_schema_history ORDER BY 1")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        assert store._catalog.fetchone("SELECT count(*) FROM migrations") == (0,)


def test_a_store_from_a_newer_vecns_is_refused(tmp_path: Path):
    with vecns.connect(tmp_path / "s") as store, store._catalog.atomic() as tx:
        tx.execute("UPDATE vecns_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(vecns.StoreVersionError, match="99"):
        vecns.connect(tmp_path / "s")


def test_use_after_close_is_an_error(tmp_path: Path):
    store = vecns.connect(tmp_path / "s")
    ns = store.create_namespace("docs", dim=2)
    store.close()
    store.close()
    with pytest.raises(vecns.StoreClosedError):
        ns.count()


def test_a_file_path_is_refused(tmp_path: Path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(vecns.StoreError, match="is a file"):
        vecns.connect(tmp_path / "f")


def test_second_process_gets_store_locked_error_naming_the_holder(tmp_path: Path):
    path = tmp_path / "s"
    with vecns.connect(path):
        code = (
            "import sys, time, vecns\n"
            "t = time.time()\n"
            "try:\n"
            f"    vecns.connect({str(path)!r})\n"
            "except vecns.StoreLockedError as e:\n"
            "    print(round(time.time() - t, 3)); print(e); sys.exit(0)\n"
            "sys.exit(3)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seconds, message = out.stdout.split("\n", 1)
    assert float(seconds) < 1.0
    assert f"process {os.getpid()}" in message
    assert "read_only=True" in message


def test_read_only_open_reads_and_refuses_writes(tmp_path: Path):
    path = tmp_path / "s"
    with vecns.connect(path) as store:
        store.create_namespace("docs", dim=4).add(vector_objects(5, 4))
    with vecns.connect(path, read_only=True) as store:
        ns = store.namespace("docs")
        assert ns.count() == 5
        assert len(ns.search([1, 0, 0, 0], k=3)) == 3
        with pytest.raises(vecns.ReadOnlyError):
            ns.add(vector_objects(1, 4, prefix="new"))


def test_read_only_open_of_a_missing_store_is_an_error(tmp_path: Path):
    with pytest.raises(vecns.StoreError, match="no store"):
        vecns.connect(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", ".", "..", "", "a\x00b", "x" * 300, "trailing.",
                                  "sp ace", 'x"; DROP TABLE namespaces; --', "-lead", "a\\b"])
def test_bad_names_are_refused_before_touching_disk(store, name):
    before = sorted(p.name for p in store.path.rglob("*"))
    with pytest.raises(vecns.InvalidNameError):
        store.create_namespace(name, dim=4)
    with pytest.raises(vecns.InvalidNameError):
        store.aliases.set(name, "whatever")
    assert sorted(p.name for p in store.path.rglob("*")) == before
    assert store.namespaces() == []


def test_namespace_lookup_by_name_id_and_alias(store):
    ns = store.create_namespace("docs", dim=4)
    store.aliases.set("prod", "docs")
    assert store.namespace("docs") == ns
    assert store.namespace(ns.id) == ns
    assert store.namespace("prod") == ns
    with pytest.raises(vecns.NamespaceNotFoundError, match="docs"):
        store.namespace("nope")


def test_duplicate_namespace_and_alias_name_clash(store):
    store.create_namespace("docs", dim=4)
    with pytest.raises(vecns.NamespaceExistsError):
        store.create_namespace("docs", dim=8)
    store.aliases.set("prod", "docs")
    with pytest.raises(vecns.NamespaceExistsError):
        store.create_namespace("prod", dim=4)
    with pytest.raises(vecns.InvalidNameError):
        store.aliases.set("docs", "docs")


def test_namespace_exposes_its_locked_feature(store):
    ns = store.create_namespace("docs", dim=16, model_label="my-model", metric="ip", dtype="f32")
    (feature,) = ns.features
    assert (ns.dim, ns.model_id, feature.metric, feature.dtype) == (16, "my-model", "ip", "f32")
    assert feature.extractor is None
    column = store._catalog.fetchone(
        "SELECT data_type FROM information_schema.columns WHERE table_name = ? AND column_name = 'vec'",
        [feature.table_name],
    )
    assert column == ("FLOAT[16]",)
    with pytest.raises(dataclasses_frozen_error()):
        feature.dim = 8  # type: ignore[misc]


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize("kwargs", [{"dim": 0}, {"dim": -3}, {"dim": True}, {"dim": 4, "metric": "hamming"},
                                    {"dim": 4, "dtype": "f64"}, {"dim": 4, "model": "x"}])
def test_bad_namespace_arguments(store, kwargs):
    with pytest.raises(vecns.ValidationError):
        store.create_namespace("docs", **kwargs)
    assert store.namespaces() == []


def test_drop_namespace_removes_tables_and_files(store):
    ns = store.create_namespace("docs", dim=4)
    ns.add(vector_objects(10, 4))
    ns.search([1, 2, 3, 4], k=1)
    store.flush()
    assert list((store.path / "indexes").glob(f"{ns.id}.*"))
    store.drop_namespace("docs")
    assert store.namespaces() == []
    assert not list((store.path / "indexes").glob(f"{ns.id}.*"))
    tables = {r[0] for r in store._catalog.fetchall("SELECT table_name FROM information_schema.tables")}
    assert not any(ns.id in t for t in tables)
    with pytest.raises(vecns.NamespaceNotFoundError):
        store.namespace("docs")


def test_drop_refused_while_an_alias_points_at_it(store):
    store.create_namespace("docs", dim=4)
    store.aliases.set("prod", "docs")
    with pytest.raises(vecns.ValidationError, match="prod"):
        store.drop_namespace("docs")
    store.aliases.delete("prod")
    store.drop_namespace("docs")


def test_alias_set_move_rollback_delete(store):
    a = store.create_namespace("a", dim=4)
    b = store.create_namespace("b", dim=4)
    info = store.aliases.set("prod", "a")
    assert (info.namespace, info.previous_namespace_id) == ("a", None)
    with pytest.raises(vecns.ValidationError):
        store.aliases.rollback("prod")
    info = store.aliases.set("prod", b)
    assert (info.namespace, info.previous_namespace_id) == ("b", a.id)
    assert store.namespace("prod") == b
    info = store.aliases.rollback("prod")
    assert (info.namespace, info.previous_namespace_id) == ("a", b.id)
    assert [x.name for x in store.aliases.list()] == ["prod"]
    store.aliases.delete("prod")
    with pytest.raises(vecns.AliasNotFoundError):
        store.aliases.get("prod")
    with pytest.raises(vecns.NamespaceNotFoundError):
        store.aliases.set("x", "missing")


def test_two_namespaces_never_see_each_others_objects(store):
    a = store.create_namespace("a", dim=4)
    b = store.create_namespace("b", dim=4)
    a.add(vector_objects(20, 4, prefix="a"))
    b.add(vector_objects(20, 4, prefix="b", seed=1))
    assert {o.id for o in a} == {f"a{i}" for i in range(20)}
    assert all(h.id.startswith("b") for h in b.search([1, 1, 1, 1], k=20))
    assert all(h.id.startswith("a") for h in a.search([1, 1, 1, 1], k=20, filters={"collection_ids": ["odd"]}))
    with pytest.raises(vecns.ObjectNotFoundError):
        b.get("a1")
    assert a.delete(["b1", "b2"]) == 0
    assert b.count() == 20


def test_concurrent_searches_while_a_thread_writes(store):
    import threading

    ns = store.create_namespace("docs", dim=8)
    ns.add(vector_objects(200, 8))
    errors: list[BaseException] = []
    stop = time.monotonic() + 2.0

    def writer():
        i = 0
        try:
            while time.monotonic() < stop:
                ns.upsert(vector_objects(20, 8, seed=i, prefix=f"w{i}-"))
                ns.delete([f"w{i}-0"])
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader():
        try:
            while time.monotonic() < stop:
                hits = ns.search([1, 0, 0, 0, 0, 0, 0, 1], k=10, filters={"collection_ids": ["odd"]})
                assert all(h.collection == "odd" for h in hits)
                assert ns.count() >= 200
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_search_after_close_is_an_error_even_when_served_from_memory(tmp_path: Path):
    store = vecns.connect(tmp_path / "s")
    ns = store.create_namespace("docs", dim=4)
    ns.add(vector_objects(5, 4))
    assert ns.search([1, 1, 1, 1], k=2)  # index and hits now cached in memory
    store.close()
    with pytest.raises(vecns.StoreClosedError):
        ns.search([1, 1, 1, 1], k=2)
