"""Shared fixtures: temporary stores, the tiny ONNX model, deterministic vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vecns
from tests.tiny_model import build_tiny_model
from vecns.corpus import stdlib_docs


@pytest.fixture
def store(tmp_path: Path):
    """A fresh store in a temporary directory, closed after the test."""
    with vecns.connect(tmp_path / "store") as s:
        yield s


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ONNX embedding model folder (dim 8) built once per session; treat it as read-only."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dim=8, seed=0)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A private copy of the tiny model, for tests that change its files."""
    return build_tiny_model(tmp_path / "tiny-model", dim=8, seed=0)


@pytest.fixture
def text_store(store, tiny_folder: Path):
    """A store with the tiny model registered as ``tiny`` and made the default."""
    store.models.register(tiny_folder, model_id="tiny")
    store.models.set_default("tiny")
    return store


def random_vectors(n: int, dim: int, *, seed: int = 0) -> np.ndarray:
    """Deterministic float32 vectors with no zero rows."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)).astype(np.float32) + 1e-3


def vector_objects(n: int, dim: int, *, seed: int = 0, prefix: str = "o") -> list[dict]:
    """Objects with caller-supplied vectors, two collections and an integer in their metadata."""
    vectors = random_vectors(n, dim, seed=seed)
    return [{"id": f"{prefix}{i}", "vector": vectors[i], "collection": "even" if i % 2 == 0 else "odd",
             "metadata": {"i": i, "g": i % 7}} for i in range(n)]


MIGRATION_OBJECTS = 300


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny models: tiny-a (dim 8, seed 0) and tiny-b (dim 16, seed 1)."""
    root = tmp_path_factory.mktemp("models")
    return build_tiny_model(root / "a", dim=8, seed=0), build_tiny_model(root / "b", dim=16, seed=1)


@pytest.fixture(scope="session")
def docs():
    """The first stdlib docstrings, the migration tests' source texts."""
    return stdlib_docs(limit=MIGRATION_OBJECTS)


@pytest.fixture
def env(tmp_path: Path, tiny_models, docs):
    """A store with tiny-a and tiny-b registered, namespace src of MIGRATION_OBJECTS texts, alias prod."""
    store = vecns.connect(tmp_path / "store")
    store.models.register(tiny_models[0], model_id="tiny-a")
    store.models.register(tiny_models[1], model_id="tiny-b")
    source = store.create_namespace("src", "tiny-a")
    source.add([{"id": d.id, "text": d.text, "collection": "odd" if i % 2 else "even",
                 "metadata": {"i": i}} for i, d in enumerate(docs)])
    store.aliases.set("prod", "src")
    yield store, source
    store.close()


def migration_body(**changes) -> dict:
    """A re_extract config from namespace src (tiny-a, dim 8) to dst (tiny-b, dim 16); changes override."""
    config = {"migration_type": "re_extract", "source_namespace_id": "src", "target_namespace_name": "dst",
              "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                                      "params": {"embedding_model": "tiny-b"}}],
              "batch_options": {"batch_size": 32, "max_workers": 2}}
    config.update(changes)
    return config


_FAULT_COUNTS: list[str] = []


@pytest.fixture
def report_counts():
    """Call with a line (iterations, kills, seconds) to show it in the run's final summary, pass or fail."""
    return _FAULT_COUNTS.append


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the fault loops' counts after the results, so a CI log shows how much was really exercised."""
    if _FAULT_COUNTS:
        terminalreporter.section("fault and crash loop counts")
        for line in _FAULT_COUNTS:
            terminalreporter.write_line(line)
