from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_model import build_tiny_model
from vecns.embed import CPU_TOKEN_BUDGET, Embedder, TokenBatch, load_embedder, probe_dim
from vecns.errors import EmbeddingError, ModelLoadError, ValidationError
from vecns.models import builtin_specs, spec_from_folder

TEXTS = [
    "short",
    "a somewhat longer sentence about vector stores and embedding models",
    "",
    "mid length text here",
    " ".join(["word"] * 300),
    "another one",
    "Namespaces lock their embedding model and dimension at creation.",
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def embedder(tiny_folder) -> Embedder:
    return load_embedder(spec_from_folder(tiny_folder))


def test_embed_shape_dtype_and_layout(embedder):
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 8)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]


def test_embed_rows_are_normalised(embedder):
    norms = np.linalg.norm(embedder.embed(TEXTS), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_embed_keeps_input_order_after_bucketing(embedder):
    together = embedder.embed(TEXTS)
    one_by_one = np.vstack([embedder.embed([text]) for text in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    reversed_rows = embedder.embed(TEXTS[::-1])
    np.testing.assert_allclose(reversed_rows[::-1], together, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 7, 1024, None])
def test_vectors_do_not_depend_on_batch_size(embedder, batch_size):
    texts = [f"text number {i} " + "pad " * (i % 37) for i in range(50)]
    reference = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(embedder.embed(texts, batch_size=batch_size), reference, atol=1e-6)


def test_batches_run_side_by_side_give_the_vectors_of_one_by_one(tiny_folder):
    spec = spec_from_folder(tiny_folder)
    texts = [f"text number {i} " + "pad " * (i % 37) for i in range(300)]
    parallel = load_embedder(spec, threads=2, token_budget=64)
    assert len(parallel.tokenize(texts)) > 2  # several batches, so two workers share them
    together = parallel.embed(texts)
    serial = load_embedder(spec, threads=1, token_budget=64)
    np.testing.assert_allclose(together, serial.embed(texts), atol=1e-6)
    np.testing.assert_allclose(together, np.vstack([parallel.embed([t]) for t in texts[:40]] + [together[40:]]),
                               atol=1e-6)
    # The workers ran on a one-thread session; a lone batch runs on the two-thread one it was loaded with.
    assert sorted(parallel._sessions) == [1, 2] and sorted(serial._sessions) == [1]


def test_infer_shares_the_cores_between_concurrent_callers(tiny_folder):
    loaded = load_embedder(spec_from_folder(tiny_folder), threads=4)
    (batch,) = loaded.tokenize(TEXTS[:3])
    alone = loaded.infer(batch)
    for concurrency, intra in [(2, 2), (3, 1), (4, 1), (64, 1)]:
        np.testing.assert_allclose(loaded.infer(batch, concurrency=concurrency), alone, atol=1e-6)
        assert loaded._sessions[intra].get_session_options().intra_op_num_threads == intra
    assert sorted(loaded._sessions) == [1, 2, 4]
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValidationError, match="concurrency"):
            loaded.infer(batch, concurrency=bad)


def test_another_session_is_refused_when_the_graph_file_changed(tmp_path):
    folder = build_tiny_model(tmp_path / "m")
    loaded = load_embedder(spec_from_folder(folder), threads=2)
    (batch,) = loaded.tokenize(TEXTS[:2])
    build_tiny_model(folder, seed=2)
    with pytest.raises(EmbeddingError, match="changed since the model was loaded"):
        loaded.infer(batch, concurrency=2)
    assert loaded.infer(batch).shape == (2, 8)  # the session it loaded still serves


def test_empty_input_gives_zero_rows(embedder):
    vectors = embedder.embed([])
    assert vectors.shape == (0, 8)
    assert vectors.dtype == np.float32
    assert embedder.tokenize([]) == []
    assert embedder.count_tokens([]) == 0


def test_tokenize_sorts_buckets_and_records_positions(embedder):
    batches = embedder.tokenize(TEXTS, batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 1]
    positions = np.concatenate([b.positions for b in batches])
    assert sorted(positions.tolist()) == list(range(len(TEXTS)))
    widths = [b.input_ids.shape[1] for b in batches]
    assert widths == sorted(widths)
    assert all(isinstance(b, TokenBatch) and b.input_ids.dtype == np.int64 for b in batches)


def test_token_budget_bounds_padded_tokens(embedder):
    texts = [" ".join(["word"] * (i % 60)) for i in range(400)]
    for batch in embedder.tokenize(texts):
        rows, width = batch.input_ids.shape
        assert rows == 1 or rows * width <= CPU_TOKEN_BUDGET


def test_infer_matches_embed(embedder):
    texts = TEXTS[:4]
    (batch,) = embedder.tokenize(texts, batch_size=16)
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    out[batch.positions] = embedder.infer(batch)
    np.testing.assert_allclose(out, embedder.embed(texts), atol=1e-6)


def test_truncation_honoured(tiny_folder):
    short = load_embedder(spec_from_folder(tiny_folder, max_tokens=8))
    long_text = " ".join(f"w{i}" for i in range(200))
    assert short.count_tokens([long_text]) == 8
    (batch,) = short.tokenize([long_text])
    assert batch.input_ids.shape == (1, 8)


def test_tokenizer_padding_and_truncation_of_the_shipped_file_are_overridden(tiny_folder, embedder):
    # The shipped tokenizer.json pads to 128 and truncates at 128; the card says 128 here, so 300 words
    # give exactly 128 tokens and a short text stays short.
    assert embedder.count_tokens([" ".join(["word"] * 300)]) == 128
    (batch,) = embedder.tokenize(["hi"])
    assert batch.input_ids.shape == (1, 3)
    long_spec = spec_from_folder(tiny_folder, max_tokens=256)
    assert load_embedder(long_spec).count_tokens([" ".join(["word"] * 300)]) == 256


def test_query_prefix_applied(tiny_folder, embedder):
    prefixed = load_embedder(spec_from_folder(tiny_folder, query_prefix="query: "))
    text = "what is a namespace"
    assert prefixed.count_tokens([text], kind="query") == embedder.count_tokens([text]) + 2
    np.testing.assert_allclose(prefixed.embed([text], kind="query"), embedder.embed(["query: " + text]), atol=1e-6)
    np.testing.assert_allclose(prefixed.embed([text], kind="document"), embedder.embed([text]), atol=1e-6)


@pytest.mark.parametrize(
    ("texts", "kind", "batch_size"),
    [
        ("one string", "document", None),
        (b"bytes", "document", None),
        (42, "document", None),
        (["ok", 3], "document", None),
        (["ok"], "passage", None),
        (["ok"], "document", 0),
        (["ok"], "document", True),
    ],
)
def test_bad_arguments_raise_validation_error(embedder, texts, kind, batch_size):
    with pytest.raises(ValidationError):
        embedder.embed(texts, kind=kind, batch_size=batch_size)


def test_any_iterable_of_strings_is_accepted(embedder):
    expected = embedder.embed(TEXTS)
    np.testing.assert_allclose(embedder.embed(tuple(TEXTS)), expected, atol=1e-6)
    np.testing.assert_allclose(embedder.embed(t for t in TEXTS), expected, atol=1e-6)
    assert embedder.count_tokens(iter(TEXTS)) == embedder.count_tokens(TEXTS)


def test_pooled_graph_matches_numpy_pooling(tmp_path, embedder):
    pooled = load_embedder(spec_from_folder(build_tiny_model(tmp_path / "pooled", pooled=True)))
    assert pooled.spec.pooling == "none"
    np.testing.assert_allclose(pooled.embed(TEXTS), embedder.embed(TEXTS), atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("dim", [1, 3, 97])
def test_dims_and_pooling_modes(tmp_path, dim, pooling):
    spec = spec_from_folder(build_tiny_model(tmp_path / "m", dim=dim), pooling=pooling)
    assert spec.dim == dim
    vectors = load_embedder(spec).embed(TEXTS)
    assert vectors.shape == (len(TEXTS), dim)
    assert np.all(np.isfinite(vectors))


def test_cls_pooling_uses_first_token_only(tmp_path):
    spec = spec_from_folder(build_tiny_model(tmp_path / "m"), pooling="cls")
    vectors = load_embedder(spec).embed(["alpha", "beta gamma"])
    # Every text starts with [CLS], and a token's state depends on the token alone.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_fingerprint_matches_spec_and_changes_with_the_file(tmp_path):
    folder = build_tiny_model(tmp_path / "m", seed=0)
    spec = spec_from_folder(folder)
    first = load_embedder(spec)
    assert first.fingerprint == spec.fingerprint()
    build_tiny_model(folder, seed=1)
    assert spec.fingerprint() != first.fingerprint
    assert load_embedder(spec).fingerprint == spec.fingerprint()


def test_fingerprint_changes_with_settings(tiny_folder, embedder):
    assert load_embedder(spec_from_folder(tiny_folder, max_tokens=64)).fingerprint != embedder.fingerprint
    assert load_embedder(spec_from_folder(tiny_folder, query_prefix="q: ")).fingerprint != embedder.fingerprint


def test_is_stale_after_the_file_changes(tmp_path):
    folder = build_tiny_model(tmp_path / "m")
    loaded = load_embedder(spec_from_folder(folder))
    assert not loaded.is_stale()
    build_tiny_model(folder, seed=2)
    assert loaded.is_stale()


def test_is_stale_when_the_file_is_gone(tmp_path):
    folder = build_tiny_model(tmp_path / "m")
    loaded = load_embedder(spec_from_folder(folder))
    (folder / "tokenizer.json").unlink()
    assert loaded.is_stale()


@pytest.mark.parametrize("victim", ["model.onnx", "tokenizer.json"])
def test_corrupt_file_raises_model_load_error_naming_it(tmp_path, victim):
    folder = build_tiny_model(tmp_path / "m")
    spec = spec_from_folder(folder)
    (folder / victim).write_bytes(b"\x00not a model\xff" * 10)
    with pytest.raises(ModelLoadError, match=victim.replace(".", r"\.")):
        load_embedder(spec)


def test_pinned_sha256_mismatch_raises_model_load_error(tiny_folder):
    spec = spec_from_folder(tiny_folder, dim=8)
    pinned = dataclasses.replace(spec, graph_sha256="0" * 64)
    with pytest.raises(ModelLoadError, match="sha256"):
        load_embedder(pinned)


def test_wrong_dim_in_spec_is_refused(tiny_folder):
    spec = spec_from_folder(tiny_folder, dim=16)
    with pytest.raises((ModelLoadError, EmbeddingError), match="16"):
        load_embedder(spec).embed(["hello"])


def test_wrong_output_name_is_refused(tiny_folder):
    with pytest.raises(ModelLoadError, match="no output"):
        load_embedder(spec_from_folder(tiny_folder, dim=8, output="nope"))


def test_cpu_provider_and_nothing_printed(tiny_folder, capfd):
    for providers in ("auto", "cpu"):
        loaded = load_embedder(spec_from_folder(tiny_folder), providers=providers, threads=1)
        assert loaded.provider == "CPUExecutionProvider"
        loaded.embed(TEXTS)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_cuda_required_without_cuda_raises(tiny_folder, capfd):
    from vecns.embed import cuda_available

    if cuda_available():
        pytest.skip("CUDA runs here")
    with pytest.raises(ModelLoadError, match="cuda"):
        load_embedder(spec_from_folder(tiny_folder), providers="cuda")
    assert capfd.readouterr().err == ""


def test_unknown_provider_choice_is_refused(tiny_folder):
    with pytest.raises(ValidationError, match="providers"):
        load_embedder(spec_from_folder(tiny_folder), providers="tpu")


def test_probe_dim_reads_the_graph(tmp_path):
    spec = spec_from_folder(build_tiny_model(tmp_path / "m", dim=5), dim=99)
    assert probe_dim(spec) == 5


GOLDEN_DIR = Path(__file__).parent / "data"
REAL_MODELS = ["all-minilm-l6-v2-int8", "paraphrase-minilm-l3-v2"]


@pytest.fixture(scope="module", params=REAL_MODELS)
def golden(request):
    spec = builtin_specs()[request.param]
    if not spec.is_installed():
        pytest.skip(f"{request.param} is not installed (the `models` extra)")
    data = json.loads((GOLDEN_DIR / f"golden_{request.param}.json").read_text(encoding="utf-8"))
    return load_embedder(spec), data


def _cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (vectors * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)


@pytest.mark.models
@pytest.mark.parametrize("batch_size", [1, None])
def test_golden_vectors(golden, batch_size):
    loaded, data = golden
    reference = np.asarray(data["vectors"], dtype=np.float64)
    vectors = loaded.embed(data["texts"], batch_size=batch_size)
    assert vectors.shape == reference.shape == (len(data["texts"]), 384)
    cosines = _cosines(vectors, reference)
    assert cosines.min() >= data["min_cosine"], dict(zip(data["texts"], cosines.round(6).tolist(), strict=True))
    assert cosines.mean() >= data["min_mean_cosine"]


@pytest.mark.models
def test_golden_texts_exercise_truncation(golden):
    loaded, data = golden
    counts = [loaded.count_tokens([text]) for text in data["texts"]]
    assert max(counts) == loaded.spec.max_tokens
    if loaded.spec.max_tokens > 128:
        # A text between 128 and max_tokens catches the shipped tokenizer's own 128-token cut.
        assert any(128 < n < loaded.spec.max_tokens for n in counts)


@pytest.mark.models
def test_real_model_fingerprint_and_provider(golden):
    loaded, _ = golden
    assert loaded.fingerprint == loaded.spec.fingerprint()
    assert loaded.provider == "CPUExecutionProvider"
    assert not loaded.is_stale()
