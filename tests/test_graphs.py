"""The GPU path's graph rewrites (fp16, pooling inside the graph) and IO binding, run on CPU.

A GPU runs the same graphs; on CPU they must give the vectors of the file as it is. With the ``models``
extra the packaged models are checked on real text: fp16 within cosine 0.999 of fp32, in-graph pooling
within 1e-5.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

import vecns
from tests.tiny_model import build_tiny_model
from vecns import graphs
from vecns.corpus import stdlib_docs
from vecns.embed import FP16_MIN_COSINE, PROBE_TEXTS, load_embedder
from vecns.errors import ModelLoadError, ValidationError
from vecns.models import builtin_specs, spec_from_folder

TEXTS = [f"text number {i} " + "pad " * (i % 37) for i in range(60)] + list(PROBE_TEXTS)


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    return spec_from_folder(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dim=16))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize(("pooling", "normalize"), [("mean", True), ("mean", False), ("cls", True), ("cls", False)])
def test_pooling_inside_the_graph_gives_numpys_vectors(tiny_spec, pooling: str, normalize: bool):
    spec = dataclasses.replace(tiny_spec, pooling=pooling, normalize=normalize)
    plain = load_embedder(spec, providers="cpu")
    pooled = load_embedder(spec, providers="cpu", pool_in_graph=True)
    assert (plain.pooled_in_graph, pooled.pooled_in_graph) == (False, True)
    assert pooled._output == graphs.POOLED_OUTPUT and pooled.fingerprint == plain.fingerprint
    np.testing.assert_allclose(pooled.embed(TEXTS), plain.embed(TEXTS), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(pooled.embed(TEXTS, kind="query"), plain.embed(TEXTS, kind="query"), atol=1e-5,
                               rtol=1e-5)


def test_the_cpu_default_pools_in_numpy_and_a_pooled_card_is_left_alone(tmp_path: Path, tiny_spec):
    assert load_embedder(tiny_spec, providers="cpu").pooled_in_graph is False
    pooled_card = spec_from_folder(build_tiny_model(tmp_path / "p", pooled=True))
    assert pooled_card.pooling == "none"
    assert load_embedder(pooled_card, providers="cpu", pool_in_graph=True).pooled_in_graph is False


def _graph_without(name: str, spec) -> bytes:
    model = onnx.load(str(spec.graph_path))
    kept = [i for i in model.graph.input if i.name != name]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model.SerializeToString()


def test_graphs_that_cannot_take_pooling_are_reported(tiny_spec):
    graph = tiny_spec.graph_path.read_bytes()
    assert graphs.with_pooling(graph, output="nope", pooling="mean", normalize=True) is None
    assert graphs.with_pooling(graph, output="last_hidden_state", pooling="max", normalize=True) is None
    old = onnx.load(str(tiny_spec.graph_path))
    old.opset_import[0].version = 12
    assert graphs.with_pooling(old.SerializeToString(), output="last_hidden_state", pooling="mean",
                               normalize=True) is None
    # Mean pooling needs the mask; the first token does not.
    unmasked = _graph_without("attention_mask", tiny_spec)
    assert graphs.with_pooling(unmasked, output="last_hidden_state", pooling="mean", normalize=True) is None
    assert graphs.with_pooling(unmasked, output="last_hidden_state", pooling="cls", normalize=True) is not None


def test_fp16_keeps_vectors_within_the_floor(tiny_spec):
    full = load_embedder(tiny_spec, providers="cpu")
    half = load_embedder(tiny_spec, providers="cpu", precision="fp16", threads=2)
    assert (full.precision, half.precision) == ("fp32", "fp16")
    assert half.fingerprint == full.fingerprint  # the same file, the same model
    got, want = half.embed(TEXTS), full.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert _cosines(got, want).min() >= FP16_MIN_COSINE
    assert not np.array_equal(got, want)  # it really ran in half precision
    # Batches run side by side open one-thread sessions on the same fp16 graph.
    assert sorted(half._sessions) == [1, 2]
    both = load_embedder(tiny_spec, providers="cpu", precision="fp16", pool_in_graph=True)
    assert _cosines(both.embed(TEXTS), want).min() >= FP16_MIN_COSINE


def test_an_fp16_graph_that_strays_from_fp32_is_refused(tiny_spec, tmp_path: Path, monkeypatch):
    other = build_tiny_model(tmp_path / "other", dim=16, seed=5)
    monkeypatch.setattr(graphs, "to_fp16", lambda graph: (other / "model.onnx").read_bytes())
    with pytest.raises(ModelLoadError, match=r"cosine of -?0\.\d+ .* at least 0\.999.*precision='fp32'"):
        load_embedder(tiny_spec, providers="cpu", precision="fp16")


def test_fp16_needs_weights_inside_the_file(tmp_path: Path):
    folder = build_tiny_model(tmp_path / "m", dim=16)
    model = onnx.load(str(folder / "model.onnx"))
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=1024)
    spec = spec_from_folder(folder)
    assert load_embedder(spec, providers="cpu", pool_in_graph=True).embed(["hello"]).shape == (1, 16)
    with pytest.raises(ModelLoadError, match="external data"):
        load_embedder(spec, providers="cpu", precision="fp16")


def test_without_onnx_the_rewrites_say_how_to_get_it(tiny_spec, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert graphs.available() is False
    with pytest.raises(ModelLoadError, match=r"vecns\[cuda\]"):
        load_embedder(tiny_spec, providers="cpu", precision="fp16")
    assert load_embedder(tiny_spec, providers="cpu").embed(["still works"]).shape == (1, 16)


def test_io_binding_gives_the_vectors_of_a_plain_run(tiny_spec):
    plain = load_embedder(tiny_spec, providers="cpu")
    bound = load_embedder(tiny_spec, providers="cpu")
    assert plain._io_binding is False  # CPU default; CUDA sessions bind
    bound._io_binding = True
    np.testing.assert_array_equal(bound.embed(TEXTS), plain.embed(TEXTS))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"precision": "fp8"}, "precision"),
    ({"precision": None}, "precision"),
    ({"pool_in_graph": "yes"}, "pool_in_graph"),
])
def test_bad_options_are_refused(tiny_spec, kwargs: dict, match: str):
    with pytest.raises(ValidationError, match=match):
        load_embedder(tiny_spec, providers="cpu", **kwargs)


def test_a_store_runs_its_models_at_the_precision_it_was_opened_with(tmp_path: Path, tiny_spec):
    with pytest.raises(ValidationError, match="precision"):
        vecns.connect(tmp_path / "bad", precision="half")
    assert not (tmp_path / "bad").exists()
    with vecns.connect(tmp_path / "s") as store:
        store.models.register(tiny_spec.graph_path.parent, model_id="tiny")
        ns = store.create_namespace("docs", "tiny")
        ns.add([{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS)])
        full = ns.search(TEXTS[3], k=3)
    with vecns.connect(tmp_path / "s", precision="fp16") as store:
        assert store.embedder("tiny").precision == "fp16"
        ns = store.namespace("docs")  # same model, so the fingerprint check passes
        assert [h.id for h in ns.search(TEXTS[3], k=1)] == [full[0].id]


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["paraphrase-minilm-l3-v2", "all-minilm-l6-v2-int8"])
def test_packaged_models_in_fp16_and_pooled_in_graph_on_real_text(model_id: str):
    spec = builtin_specs()[model_id]
    if not spec.is_installed():
        pytest.skip(f"{model_id} is not installed (the models extra)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some stdlib modules warn when their docstrings are read
        texts = [d.text for d in stdlib_docs(limit=200)]
    full = load_embedder(spec, providers="cpu")
    want = full.embed(texts)
    half = load_embedder(spec, providers="cpu", precision="fp16")
    cosines = _cosines(half.embed(texts), want)
    print(f"{model_id} fp16 vs fp32 on {len(texts)} stdlib docstrings: min cosine {cosines.min():.6f}, "
          f"mean {cosines.mean():.6f}")
    assert cosines.min() >= FP16_MIN_COSINE
    pooled = load_embedder(spec, providers="cpu", pool_in_graph=True)
    np.testing.assert_allclose(pooled.embed(texts), want, atol=1e-5)


def test_on_cuda_pooling_goes_inside_only_graphs_that_can_take_it(tiny_spec):
    from vecns.embed import NO_REWRITE, _plan_rewrite
    from vecns.runtime import CPU, CUDA

    graph = tiny_spec.graph_path.read_bytes()
    old = onnx.load(str(tiny_spec.graph_path))
    old.opset_import[0].version = 12
    auto = {"output": "last_hidden_state", "precision": "fp32", "asked": None}

    def pooled(spec, data, **kwargs) -> bool:
        rewrite, out = _plan_rewrite(spec, data, **kwargs)
        assert (graphs.POOLED_OUTPUT.encode() in out) == rewrite.pooled  # the bytes match the plan
        return rewrite.pooled

    assert pooled(tiny_spec, graph, provider=CUDA, **auto) is True
    assert pooled(tiny_spec, old.SerializeToString(), provider=CUDA, **auto) is False  # numpy pools it
    assert _plan_rewrite(tiny_spec, graph, provider=CPU, **auto) == (NO_REWRITE, graph)
    assert pooled(tiny_spec, graph, provider=CPU, output="last_hidden_state", precision="fp32", asked=True) is True
    assert pooled(dataclasses.replace(tiny_spec, pooling="none"), graph, provider=CUDA, **auto) is False
    half, _ = _plan_rewrite(tiny_spec, old.SerializeToString(), provider=CUDA, output="last_hidden_state",
                            precision="fp16", asked=None)
    assert (half.precision, half.pooled) == ("fp16", False)


def test_pooling_asked_of_a_graph_that_cannot_take_it_is_refused_with_the_fix(tmp_path: Path):
    folder = build_tiny_model(tmp_path / "unmasked", dim=16)
    (folder / "model.onnx").write_bytes(_graph_without("attention_mask", spec_from_folder(folder)))
    spec = spec_from_folder(folder)
    assert load_embedder(spec, providers="cpu").embed(["fine without"]).shape == (1, 16)
    with pytest.raises(ModelLoadError, match="attention_mask input.*pool_in_graph=False"):
        load_embedder(spec, providers="cpu", pool_in_graph=True)
