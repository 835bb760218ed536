"""The bad inputs and faults vecns must survive, one test (or case) per checklist item not covered elsewhere.

Each test names its item (``item N``) from the reliability checklist: names and paths (1-4), vectors and
ids (9-15), payloads (16-20), models (21-25), process faults (28-34), disk faults (35-39), usage faults
(40-42). Items covered by other files are not repeated here.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import vecns
from tests.conftest import random_vectors, vector_objects
from tests.tiny_model import build_tiny_model
from vecns.models import file_sha256, spec_from_folder
from vecns.validation import MAX_TEXT_BYTES


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _snapshot(ns: vecns.Namespace, query) -> tuple[int, list[str]]:
    return ns.count(), [h.id for h in ns.search(query, k=5)]


# -- names and paths -------------------------------------------------------------------------------


def test_item2_names_are_case_sensitive_and_never_normalised(store):
    """item 2: 'Docs' and 'docs' are two namespaces; NFC and NFD spellings are not names at all."""
    upper = store.create_namespace("Docs", dim=4)
    lower = store.create_namespace("docs", dim=4)
    upper.add([{"id": "u", "vector": [1, 0, 0, 0]}])
    assert upper.id != lower.id
    assert (store.namespace("Docs").count(), store.namespace("docs").count()) == (1, 0)
    with pytest.raises(vecns.NamespaceNotFoundError):
        store.namespace("DOCS")
    # Names are ASCII-only, so the two Unicode spellings of 'café' cannot collide on any filesystem.
    for spelling in (unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")):
        with pytest.raises(vecns.InvalidNameError):
            store.create_namespace(spelling, dim=4)
    # Index files are named by namespace id, never by name, so case-folding filesystems cannot merge them.
    store.flush()
    assert all(p.name.startswith("ns_") for p in (store.path / "indexes").iterdir())
    assert sorted(n.name for n in store.namespaces()) == ["Docs", "docs"]


def test_item4_a_symlink_planted_for_another_file_is_not_followed(tmp_path: Path):
    """item 4: a symlink in indexes/ pointing at another namespace's valid file is refused and rebuilt."""
    path = tmp_path / "s"
    with vecns.connect(path) as store:
        mine = store.create_namespace("mine", dim=8)
        mine.add(vector_objects(50, 8, prefix="m"))
        other = store.create_namespace("other", dim=8)
        other.add(vector_objects(50, 8, prefix="x", seed=3))
        other.search(np.ones(8), k=1)  # both namespaces now have an index file
        query = random_vectors(50, 8)[7]
        before = _snapshot(mine, query)
    files = {p.name.split(".")[0]: p for p in (path / "indexes").glob("*.usearch")}
    victim = files[mine.id]
    victim.unlink()
    os.symlink(files[other.id], victim)
    with vecns.connect(path) as store:
        ns = store.namespace("mine")
        assert _snapshot(ns, query) == before
        assert all(h.id.startswith("m") for h in ns.search(query, k=50))
    assert not victim.is_symlink()
    assert files[other.id].is_file() and not files[other.id].is_symlink()


# -- vectors and ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [
    np.ones((1, 1, 4)),
    np.ones((2, 2, 4)),
    np.array([1, 2, 3, 4], dtype=object),
    np.array([1.0, "2", 3, 4], dtype=object),
    np.array([1 + 0j, 2, 3, 4]),
    np.array(["1", "2", "3", "4"]),
    np.ones((1, 4)),
], ids=["3d-1x1x4", "3d-2x2x4", "object-ints", "object-mixed", "complex", "str", "2d-as-one-vector"])
def test_item12_shapes_and_dtypes_that_are_refused(store, vector):
    """item 12: 3-D arrays, object, complex and string dtypes are refused, on add and on search."""
    ns = store.create_namespace("docs", dim=4)
    ns.add([{"id": "keep", "vector": [1, 2, 3, 4]}])
    with pytest.raises(vecns.InvalidVectorError):
        ns.add([{"id": "x", "vector": vector}])
    with pytest.raises(vecns.InvalidVectorError):
        ns.search(vector)
    assert _snapshot(ns, [1, 2, 3, 4]) == (1, ["keep"])


@pytest.mark.parametrize("vector", [
    np.array([1, 2, 3, 4], dtype=np.float16),
    np.array([1, 2, 3, 4], dtype=">f8"),
    np.array([1, 2, 3, 4], dtype=np.int8),
    np.array([1, 2, 3, 4], dtype=np.uint64),
    np.arange(8, dtype=np.float64)[::2] + 1,
    np.asfortranarray(np.array([[1.0, 2.0, 3.0, 4.0]]))[0],
], ids=["float16", "big-endian-f8", "int8", "uint64", "strided", "fortran-row"])
def test_item12_other_real_dtypes_and_layouts_are_stored_as_float32(store, vector):
    """item 12: real dtypes, byte orders and non-contiguous views are cast to float32 exactly."""
    ns = store.create_namespace("docs", dim=4, dtype="f32")
    ns.add([{"id": "x", "vector": vector}])
    stored = ns.get("x", include_vector=True).vector
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, np.asarray(vector, dtype=np.float32))
    assert ns.search(vector, k=1)[0].id == "x"


@pytest.mark.parametrize("vector", [[70000.0, 1, 1, 1], [1e-9, 1e-9, 1e-9, 1e-9]], ids=["beyond-f16", "f16-zero"])
def test_item12_a_vector_the_f16_index_cannot_hold_is_refused_before_writing(store, vector):
    """item 12: a float32-valid vector that overflows (or rounds to zero in) an f16 index never poisons it."""
    ns = store.create_namespace("docs", dim=4, dtype="f16")
    ns.add([{"id": "keep", "vector": [1, 2, 3, 4]}])
    with pytest.raises(vecns.InvalidVectorError, match="f16|float16"):
        ns.add([{"id": "x", "vector": vector}])
    assert _snapshot(ns, [1, 2, 3, 4]) == (1, ["keep"])


def test_item12_a_float32_overflow_is_refused_without_a_raw_warning(store):
    """item 12: 1e39 overflows float32; the caller sees InvalidVectorError, not numpy's RuntimeWarning."""
    ns = store.create_namespace("docs", dim=4)
    with pytest.raises(vecns.InvalidVectorError, match="infinite"):
        ns.add([{"id": "x", "vector": [1e39, 1, 1, 1]}])
    with pytest.raises(vecns.InvalidVectorError):
        ns.search(np.array([1e300, 1, 1, 1]))
    assert ns.count() == 0


@pytest.mark.parametrize("object_id", ["-1", "-9223372036854775808", "18446744073709551615", "9" * 400, "0x10",
                                       "1e308", "-0", "0", " 7", "NaN"])
def test_item14_ids_that_look_like_numbers_are_plain_strings(store, object_id):
    """item 14: ids are strings; internal keys come from a sequence and stay small and non-negative."""
    ns = store.create_namespace("docs", dim=4)
    ns.add([{"id": "first", "vector": [4, 3, 2, 1]}, {"id": object_id, "vector": [1, 2, 3, 4]}])
    assert ns.get(object_id).id == object_id
    assert ns.search([1, 2, 3, 4], k=1)[0].id == object_id
    keys = store._catalog.fetchall(f'SELECT key FROM "o_{ns.id}" ORDER BY key')
    assert [k for (k,) in keys] == [1, 2]
    assert ns.delete([object_id]) == 1
    assert _snapshot(ns, [1, 2, 3, 4]) == (1, ["first"])


# -- payloads --------------------------------------------------------------------------------------


BIG_BATCH_CHILD = """
import resource, sys, time, numpy as np, vecns
n = int(sys.argv[2])
with vecns.connect(sys.argv[1]) as store:
    ns = store.create_namespace("docs", dim=4, dtype="f32")
    base = np.random.default_rng(0).standard_normal((1024, 4)).astype(np.float32) + 1e-3
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    objects = ({"id": f"o{i}", "vector": base[i % 1024], "metadata": {"i": i}} for i in range(n))
    added = ns.add(objects, batch_size=10_000)
    seconds = time.monotonic() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(added, ns.count(), ns.get(f"o{n - 1}").metadata["i"], grown // 1024, round(seconds, 1))
"""


def test_item16_a_batch_of_100k_objects_completes_with_bounded_memory(tmp_path: Path):
    """item 16: 100k small objects from a generator, in a fresh process: peak RSS grows by a bounded amount."""
    n = 100_000
    out = subprocess.run([sys.executable, "-c", BIG_BATCH_CHILD, str(tmp_path / "s"), str(n)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    added, count, last, grown_mib, seconds = out.stdout.split()
    assert (int(added), int(count), int(last)) == (n, n, n - 1)
    # add() validates the whole iterable before writing (all-or-nothing), so memory grows with n: about
    # 140 MiB here (1.4 KiB per small object). The bound catches a leak or a second full copy.
    assert int(grown_mib) < 400, f"peak RSS grew {grown_mib} MiB for {n} objects in {seconds} s"


def test_item17_a_10mb_text_is_refused_and_nothing_is_written(text_store):
    """item 17: one 10 MB text is refused with InvalidObjectError naming the limit."""
    ns = text_store.create_namespace("docs")
    ns.add([{"id": "keep", "text": "a small text"}])
    with pytest.raises(vecns.InvalidObjectError, match=str(MAX_TEXT_BYTES)):
        ns.add([{"id": "big", "text": "word " * 2_000_000}])
    assert _snapshot(ns, "a small text") == (1, ["keep"])


def test_item17_a_text_beyond_the_token_limit_is_truncated_and_stored_whole(text_store):
    """item 17: the vector reads the first max_tokens tokens; the stored text is the caller's, unshortened."""
    ns = text_store.create_namespace("docs")
    head = " ".join(f"alpha{i % 50}" for i in range(400))
    long_text = head + " " + "omega " * 2000
    ns.add([{"id": "long", "text": long_text}, {"id": "head", "text": head}])
    long_vec = ns.get("long", include_vector=True).vector
    np.testing.assert_allclose(long_vec, ns.get("head", include_vector=True).vector, rtol=1e-6, atol=1e-6)
    assert ns.get("long").text == long_text
    assert ns.search("omega " * 10, k=2, include_text=True)[0].text in (head, long_text)


def test_item18_empty_batches_are_no_ops_and_empty_text_is_kept_in_vector_namespaces(store):
    """item 18: empty add/upsert/delete write nothing; '' is a text like any other where none is extracted."""
    ns = store.create_namespace("docs", dim=4)
    seq = store._catalog.current_seq()
    assert ns.add(iter([])) == 0
    assert ns.upsert([]) == 0
    assert ns.delete([]) == 0
    assert store._catalog.current_seq() == seq
    ns.add([{"id": "a", "vector": [1, 1, 1, 1], "text": ""}])
    assert ns.get("a").text == ""
    assert ns.search([1, 1, 1, 1], k=1, include_text=True)[0].text == ""


@pytest.mark.parametrize("obj", [
    {"id": "x", "vector": [1, 1, 1, 1], "text": "ok\ud800"},
    {"id": "x", "vector": [1, 1, 1, 1], "metadata": {"k": "v\udfff"}},
    {"id": "x", "vector": [1, 1, 1, 1], "metadata": {"k\ud83d": 1}},
    {"id": "x", "vector": [1, 1, 1, 1], "metadata": {"k": ["a", {"deep": "\udc80"}]}},
], ids=["text", "metadata-value", "metadata-key", "metadata-nested"])
def test_item19_lone_surrogates_are_refused(store, obj):
    """item 19: text and metadata holding lone surrogates get InvalidObjectError; nothing is written."""
    ns = store.create_namespace("docs", dim=4)
    ns.add([{"id": "keep", "vector": [1, 2, 3, 4]}])
    with pytest.raises(vecns.InvalidObjectError, match="UTF-8|surrogate"):
        ns.add([obj])
    with pytest.raises(vecns.FilterError):
        ns.search([1, 1, 1, 1], filters={"metadata": {"k": "v\udfff"}})
    assert _snapshot(ns, [1, 2, 3, 4]) == (1, ["keep"])


def test_item19_a_surrogate_query_text_is_refused(text_store):
    """item 19: a text query with a lone surrogate is a ValidationError, never a tokenizer exception."""
    ns = text_store.create_namespace("docs")
    ns.add([{"id": "a", "text": "hello"}])
    with pytest.raises(vecns.VecnsError):
        ns.search("hello \ud800")
    assert ns.count() == 1


def _nested(depth: int, container: str):
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value} if container == "dict" else [value]
    return {"root": value}


def _cycle():
    loop: dict = {}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize("metadata, match", [
    (_nested(100_000, "dict"), "deeper"),
    (_nested(100_000, "list"), "deeper"),
    (_cycle(), "deeper"),
    ({"x": {1, 2}}, "not JSON"),
    ({"x": b"bytes"}, "not JSON"),
    ({"x": np.int64(3)}, "not JSON"),
    ({"x": float("inf")}, "non-finite"),
    ({("a", "b"): 1}, "keys must be str"),
    ({"x": "y" * (1024 * 1024)}, "bytes of metadata"),
], ids=["depth-1e5-dict", "depth-1e5-list", "cycle", "set", "bytes", "numpy-int", "inf", "tuple-key", "over-1mb"])
def test_item20_metadata_that_is_not_json_deep_or_huge_is_refused(store, metadata, match):
    """item 20: no RecursionError, no raw TypeError: InvalidObjectError, and nothing written."""
    ns = store.create_namespace("docs", dim=4)
    with pytest.raises(vecns.InvalidObjectError, match=match):
        ns.add([{"id": "x", "vector": [1, 1, 1, 1], "metadata": metadata}])
    assert ns.count() == 0


# -- models ----------------------------------------------------------------------------------------

REGISTER_IN_CHILD = """
import sys, vecns
with vecns.connect(sys.argv[1]) as store:
    try:
        store.models.register(sys.argv[2], model_id="bad", **({"dim": 8} if sys.argv[3] == "dim" else {}))
        ns = store.create_namespace("docs", "bad")
        ns.add([{"id": "a", "text": "hello"}])
    except vecns.ModelLoadError as exc:
        print("ModelLoadError:", exc)
        print("count", store.namespace("docs").count() if store.namespaces() else 0)
        sys.exit(0)
sys.exit(3)
"""


@pytest.mark.parametrize("how", ["random", "half"])
@pytest.mark.parametrize("probe", ["probe", "dim"])
def test_item21_a_corrupt_graph_is_a_model_load_error_never_a_crash(tmp_path: Path, how, probe):
    """item 21: random bytes or a graph cut in half: ModelLoadError in a child process that exits cleanly."""
    folder = build_tiny_model(tmp_path / "m", dim=8)
    graph = folder / "model.onnx"
    data = graph.read_bytes()
    graph.write_bytes(np.random.default_rng(0).bytes(len(data)) if how == "random" else data[: len(data) // 2])
    out = subprocess.run([sys.executable, "-c", REGISTER_IN_CHILD, str(tmp_path / "s"), str(folder), probe],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "ModelLoadError:" in out.stdout and "model.onnx" in out.stdout
    assert "count 0" in out.stdout


def test_item22_a_card_that_lies_about_dim_is_refused_before_any_write(store, tmp_path: Path):
    """item 22: the card says dim 8, the graph makes 16: the first add fails and writes nothing."""
    folder = build_tiny_model(tmp_path / "m", dim=16)
    card = folder / "vecns.json"
    card.write_text(card.read_text().replace('"max_tokens"', '"dim": 8,\n  "max_tokens"'))
    store.models.register(folder, model_id="liar")
    ns = store.create_namespace("docs", "liar")
    assert ns.dim == 8
    seq = store._catalog.current_seq()
    with pytest.raises(vecns.ModelError, match="16"):
        ns.add([{"id": "a", "text": "hello world"}])
    with pytest.raises(vecns.ModelError):
        ns.search("hello")
    assert ns.count() == 0
    assert store._catalog.current_seq() == seq


def test_item23_a_builtin_whose_file_differs_from_its_pin_is_refused(store, tmp_path: Path, tiny_folder: Path):
    """item 23: a builtin model's graph is changed on disk: new namespaces and existing ones refuse it."""
    folder = build_tiny_model(tmp_path / "pinned", dim=8)
    spec = spec_from_folder(folder, model_id="pinned-builtin", dim=8)
    pinned = dataclasses.replace(spec, source="builtin", graph_sha256=file_sha256(spec.graph_path),
                                 tokenizer_sha256=file_sha256(spec.tokenizer_path))
    store.models._builtins["pinned-builtin"] = pinned
    ns = store.create_namespace("docs", "pinned-builtin")
    ns.add([{"id": "a", "text": "hello world"}])
    build_tiny_model(folder, dim=8, seed=4)  # same shape, other weights: only the pin can tell
    with pytest.raises(vecns.ModelLoadError, match="sha256"):
        store.create_namespace("other", "pinned-builtin")
    with pytest.raises(vecns.ModelMismatchError, match="sha256"):  # a ModelFileChangedError
        ns.search("hello world")
    with pytest.raises(vecns.ModelMismatchError, match="sha256"):
        ns.add([{"id": "b", "text": "more"}])
    assert [n.name for n in store.namespaces()] == ["docs"]
    assert ns.count() == 1 and ns.search(ns.get("a", include_vector=True).vector, k=1)[0].id == "a"


def _external_weight(folder: Path, location: str) -> None:
    """Rewrite the tiny graph so its 8x8 weight is read from ``location`` as external data."""
    model = onnx.load(str(folder / "model.onnx"))
    weight = next(t for t in model.graph.initializer if t.name == "weight")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "256")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(folder / "model.onnx"))


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "../outside.bin"])
def test_item24_a_graph_whose_external_data_escapes_is_refused(store, tmp_path: Path, location):
    """item 24: an initializer stored as external data outside the model's folder: ModelLoadError."""
    (tmp_path / "outside.bin").write_bytes(bytes(256))
    folder = build_tiny_model(tmp_path / "m", dim=8)
    _external_weight(folder, location)
    with pytest.raises(vecns.ModelLoadError, match="External data"):
        store.models.register(folder, model_id="evil")
    store.models.register(folder, model_id="evil-dim", dim=8)  # skips the probe: the first use refuses
    ns = store.create_namespace("docs", "evil-dim")
    with pytest.raises(vecns.ModelLoadError, match="External data"):
        ns.add([{"id": "a", "text": "hello"}])
    assert ns.count() == 0


def test_item24_external_data_is_read_from_the_model_folder_never_the_working_directory(
        store, tmp_path: Path, monkeypatch):
    """item 24: a graph naming 'weights.bin' reads the file beside it, not one in the caller's directory."""
    folder = build_tiny_model(tmp_path / "m", dim=8)
    _external_weight(folder, "weights.bin")
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    (workdir / "weights.bin").write_bytes(np.eye(8, dtype=np.float32).tobytes())
    monkeypatch.chdir(workdir)
    with pytest.raises(vecns.ModelLoadError, match="weights.bin"):
        store.models.register(folder, model_id="beside")
    (folder / "weights.bin").write_bytes((2 * np.eye(8, dtype=np.float32)).tobytes())
    store.models.register(folder, model_id="beside")
    ns = store.create_namespace("docs", "beside")
    ns.add([{"id": "a", "text": "hello world"}])
    assert ns.search("hello world", k=1)[0].id == "a"


# -- process faults --------------------------------------------------------------------------------

READ_ONLY_CHILD = """
import sys, time, vecns
started = time.monotonic()
try:
    vecns.connect(sys.argv[1], read_only=True)
except vecns.StoreLockedError as exc:
    print(round(time.monotonic() - started, 3)); print(exc); sys.exit(0)
sys.exit(3)
"""


def test_item32_a_read_only_opener_while_a_writer_is_active_gets_store_locked_error(tmp_path: Path):
    """item 32: another process opening read-only while we write gets StoreLockedError naming our PID."""
    path = tmp_path / "s"
    with vecns.connect(path) as store:
        ns = store.create_namespace("docs", dim=4)
        ns.add(vector_objects(5, 4))
        out = subprocess.run([sys.executable, "-c", READ_ONLY_CHILD, str(path)], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        seconds, message = out.stdout.split("\n", 1)
        assert float(seconds) < 1.0
        assert f"process {os.getpid()}" in message
        ns.add(vector_objects(2, 4, prefix="after"))
        assert ns.count() == 7


def test_item33_opening_an_open_store_again_in_the_same_process(tmp_path: Path):
    """item 33: a second connect() of a store this process has open is refused; read-only included."""
    path = tmp_path / "s"
    with vecns.connect(path) as store:
        store.create_namespace("docs", dim=4).add(vector_objects(3, 4))
        for read_only in (False, True):
            with pytest.raises(vecns.StoreLockedError, match="this process"):
                vecns.connect(path, read_only=read_only)
        assert store.namespace("docs").count() == 3
    with vecns.connect(path) as again:  # closing frees it
        assert again.namespace("docs").count() == 3


def _child_uses_store_after_fork(store: vecns.Store, ns: vecns.Namespace, results) -> None:
    seen = []
    for name, call in (("count", ns.count), ("search", lambda: ns.search([1, 2, 3, 4], k=1)),
                       ("add", lambda: ns.add([{"id": "child", "vector": [1, 1, 1, 1]}])),
                       ("get", lambda: ns.get("o1")), ("close", store.close)):
        try:
            call()
            seen.append((name, "ok"))
        except vecns.StoreClosedError:
            seen.append((name, "StoreClosedError"))
        except BaseException as exc:  # noqa: BLE001 - report whatever it was to the parent
            seen.append((name, f"{type(exc).__name__}: {exc}"))
    results.put(seen)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork() on this platform")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_item34_a_store_used_after_fork_refuses_and_the_parent_is_unharmed(tmp_path: Path):
    """item 34: in a forked child every use raises StoreClosedError; close() there leaves the file alone."""
    path = tmp_path / "s"
    context = multiprocessing.get_context("fork")
    with vecns.connect(path) as store:
        ns = store.create_namespace("docs", dim=4)
        ns.add(vector_objects(10, 4))
        ns.search([1, 2, 3, 4], k=1)  # a live index in the cache, inherited by the child
        ns.upsert([{"id": "unsaved", "vector": [4, 4, 4, 1]}])
        before = _snapshot(ns, [1, 2, 3, 4])
        listing = _listing(path)
        results = context.Queue()
        child = context.Process(target=_child_uses_store_after_fork, args=(store, ns, results))
        child.start()
        seen = results.get(timeout=60)
        child.join(60)
        assert child.exitcode == 0
        assert seen == [("count", "StoreClosedError"), ("search", "StoreClosedError"), ("add", "StoreClosedError"),
                        ("get", "StoreClosedError"), ("close", "ok")]
        assert _listing(path) == listing
        assert _snapshot(ns, [1, 2, 3, 4]) == before
        ns.add([{"id": "parent", "vector": [1, 1, 1, 1]}])
    with vecns.connect(path) as store:
        assert store.namespace("docs").count() == 12


# -- disk faults -----------------------------------------------------------------------------------


REFERENCE_OBJECTS = 1000


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, np.ndarray, list]:
    """A closed store of REFERENCE_OBJECTS objects, fixed queries, and the answers a full read gives."""
    path = tmp_path_factory.mktemp("reference") / "s"
    queries = random_vectors(5, 8, seed=11)
    with vecns.connect(path) as store:
        store.create_namespace("docs", dim=8).add(vector_objects(REFERENCE_OBJECTS, 8), batch_size=250)
    # Every read below rebuilds the index from the database with one thread, which is deterministic, so
    # answers can be compared exactly.
    _drop_index_files(path)
    with vecns.connect(path, threads=1) as store:
        answers = _full_read(store, queries)
    return path, queries, answers


def _full_read(store: vecns.Store, queries: np.ndarray) -> list:
    ns = store.namespace("docs")
    objects = sorted((o.id, o.collection, str(o.metadata)) for o in ns)
    vectors = np.stack([ns.get(f"o{i}", include_vector=True).vector for i in range(0, REFERENCE_OBJECTS, 97)])
    return [ns.count(), objects, vectors.tobytes(), [[h.id for h in ns.search(q, k=5)] for q in queries]]


def _drop_index_files(path: Path) -> None:
    for file in (path / "indexes").iterdir():
        file.unlink()


def _damaged_opens(path: Path, queries: np.ndarray, answers: list) -> str:
    """Open and read everything: return 'same' for an identical answer, else the typed error's name.

    An error from opening names the file; one from a later read (a damaged block met mid-query) is typed.
    """
    _drop_index_files(path)
    try:
        store = vecns.connect(path, threads=1)
    except vecns.StoreError as exc:
        assert "vecns.duckdb" in str(exc)
        return type(exc).__name__
    try:
        got = _full_read(store, queries)
    except vecns.StoreError as exc:
        return type(exc).__name__
    finally:
        store.close()
    assert got == answers, "a damaged database served a different answer"
    return "same"


@pytest.mark.parametrize("blocks", [4, pytest.param(None, marks=pytest.mark.slow)], ids=["first-blocks", "all-blocks"])
def test_item39_flipped_bytes_in_blocks_give_a_typed_error_or_the_same_answer(tmp_path: Path, reference, blocks):
    """item 39: 16 flipped bytes in the headers and in 256 KiB blocks: StoreError, or exactly the same answers."""
    path = tmp_path / "s"
    shutil.copytree(reference[0], path)
    queries, answers = reference[1:]
    db = path / "vecns.duckdb"
    original = db.read_bytes()
    outcomes = []
    in_blocks = list(range(12288 + 200, len(original), 256 * 1024))[:blocks]
    for offset in [0, 100, 4096 + 40, 8192 + 40] + in_blocks:
        damaged = bytearray(original)
        damaged[offset:offset + 16] = bytes(b ^ 0xFF for b in damaged[offset:offset + 16])
        db.write_bytes(bytes(damaged))
        outcomes.append(_damaged_opens(path, queries, answers))
    assert set(outcomes) <= {"same", "StoreCorruptedError"}, outcomes
    assert "StoreCorruptedError" in outcomes
    db.write_bytes(original)
    assert _damaged_opens(path, queries, answers) == "same"


@pytest.mark.parametrize("damage", ["empty", "header-only", "first-block", "half", "garbage", "a-text-file"])
def test_item39_truncated_or_foreign_files_are_store_corrupted_errors(tmp_path: Path, reference, damage):
    """item 39: truncated, empty or non-DuckDB files: StoreCorruptedError naming the file; the file is kept."""
    path = tmp_path / "s"
    shutil.copytree(reference[0], path)
    queries, answers = reference[1:]
    db = path / "vecns.duckdb"
    data = db.read_bytes()
    replacement = {"empty": b"", "header-only": data[:4096], "first-block": data[:12288],
                   "half": data[: len(data) // 2], "garbage": np.random.default_rng(1).bytes(len(data)),
                   "a-text-file": b"id,text\n1,hello\n" * 1000}[damage]
    db.write_bytes(replacement)
    with pytest.raises(vecns.StoreCorruptedError, match="vecns.duckdb"):
        vecns.connect(path)
    assert db.read_bytes() == replacement
    db.write_bytes(data)
    assert _damaged_opens(path, queries, answers) == "same"


WAL_WRITER = """
import os, signal, sys, numpy as np, vecns
store = vecns.connect(sys.argv[1])
ns = store.create_namespace("docs", dim=8)
rng = np.random.default_rng(0)
for r in range(5):
    ns.add([{"id": f"r{r}-{i}", "vector": rng.standard_normal(8) + 0.01} for i in range(50)])
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture(scope="module")
def killed_writer(tmp_path_factory) -> Path:
    """A store whose writer was SIGKILLed after 5 acknowledged batches, leaving a WAL behind."""
    path = tmp_path_factory.mktemp("wal") / "s"
    out = subprocess.run([sys.executable, "-c", WAL_WRITER, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    assert (path / "vecns.duckdb.wal").stat().st_size > 0
    return path


def _batches(store: vecns.Store) -> list[int]:
    ids = [o.id for o in store.namespace("docs")]
    return [sum(1 for i in ids if i.startswith(f"r{r}-")) for r in range(5)]


@pytest.mark.parametrize("cut", [1, 7, 100, 1000])
def test_item38_a_torn_wal_tail_is_replayed_up_to_the_last_whole_commit(tmp_path: Path, killed_writer, cut):
    """item 38: the WAL loses its last bytes (a torn final write): earlier commits replay whole, none partly."""
    path = tmp_path / "s"
    shutil.copytree(killed_writer, path)
    wal = path / "vecns.duckdb.wal"
    wal.write_bytes(wal.read_bytes()[:-cut])
    with vecns.connect(path) as store:
        batches = _batches(store)
        assert batches[:4] == [50] * 4 and batches[4] in (0, 50)
        assert store.namespace("docs").count() == sum(batches)
        store.namespace("docs").add([{"id": "after", "vector": np.ones(8)}])
    with vecns.connect(path) as store:
        assert store.namespace("docs").count() == sum(batches) + 1


@pytest.mark.parametrize("where", ["early", "middle"])
def test_item38_a_wal_corrupt_mid_file_is_refused_and_kept(tmp_path: Path, killed_writer, where):
    """item 38: a checksum failure inside the WAL: StoreCorruptedError naming the WAL, which is not deleted."""
    path = tmp_path / "s"
    shutil.copytree(killed_writer, path)
    wal = path / "vecns.duckdb.wal"
    data = bytearray(wal.read_bytes())
    offset = 200 if where == "early" else len(data) // 2
    data[offset:offset + 8] = bytes(b ^ 0xFF for b in data[offset:offset + 8])
    wal.write_bytes(bytes(data))
    with pytest.raises(vecns.StoreCorruptedError, match=r"vecns\.duckdb\.wal"):
        vecns.connect(path)
    assert wal.read_bytes() == bytes(data)


# -- usage faults ----------------------------------------------------------------------------------


def test_item41_dropping_a_namespace_while_threads_search_it(store):
    """item 41: searches racing a drop end with hits or NamespaceNotFoundError/StoreError, nothing else."""
    ns = store.create_namespace("doomed", dim=8)
    ns.add(vector_objects(2000, 8))
    keep = store.create_namespace("keep", dim=8)
    keep.add(vector_objects(50, 8, prefix="k"))
    query = random_vectors(1, 8, seed=3)[0]
    keep_before = _snapshot(keep, query)
    unexpected: list[BaseException] = []
    outcomes = {"hits": 0, "gone": 0}
    started = threading.Event()

    def searcher(seed: int) -> None:
        rng = np.random.default_rng(seed)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                q = rng.standard_normal(8).astype(np.float32)
                hits = ns.search(q, k=5, filters={"collection_ids": ["odd"]} if rng.random() < 0.3 else None)
                assert all(h.id.startswith("o") for h in hits)
                outcomes["hits"] += 1
                started.set()
            except (vecns.NamespaceNotFoundError, vecns.StoreError):
                outcomes["gone"] += 1
                started.set()
                if outcomes["gone"] > 20:
                    return
            except BaseException as exc:  # noqa: BLE001
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    started.wait(10)
    time.sleep(0.05)
    store.drop_namespace("doomed")
    for t in threads:
        t.join()
    assert unexpected == []
    assert outcomes["hits"] > 0
    assert [n.name for n in store.namespaces()] == ["keep"]
    store.flush()
    assert not list((store.path / "indexes").glob(f"{ns.id}.*"))
    assert store._catalog.fetchone("SELECT count(*) FROM index_files WHERE namespace_id = ?", [ns.id]) == (0,)
    assert _snapshot(keep, query) == keep_before
