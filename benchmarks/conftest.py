"""Shared benchmark setup: pinned threads, fixed seeds, corpora built once per module.

Thread counts are pinned before numpy or onnxruntime start their pools, so a run on a 2-core laptop and
one on a 64-core server measure the same configuration. Override with ``VECNS_BENCH_THREADS``.
"""

from __future__ import annotations

import os
import warnings

THREADS = int(os.environ.get("VECNS_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vecns  # noqa: E402
from vecns.corpus import Doc, stdlib_docs  # noqa: E402
from vecns.models import builtin_specs  # noqa: E402

SEED = 0
MODEL_IDS = ("all-minilm-l6-v2-int8", "paraphrase-minilm-l3-v2")
DIM = 384
INGEST_DOCS = int(os.environ.get("VECNS_BENCH_INGEST_DOCS", "300"))
SEARCH_VECTORS = int(os.environ.get("VECNS_BENCH_SEARCH_VECTORS", "20000"))
COLLECTIONS = 100


def model_installed(model_id: str) -> bool:
    """Whether a builtin model's files are installed (the ``models`` extra)."""
    spec = builtin_specs().get(model_id)
    return spec is not None and spec.is_installed()


def model_params() -> list:
    """One ``pytest.param`` per packaged model, marked ``models`` and skipped when it is not installed."""
    return [
        pytest.param(
            model_id,
            id=model_id,
            marks=[
                pytest.mark.models,
                pytest.mark.skipif(
                    not model_installed(model_id),
                    reason=f'model {model_id} is not installed; pip install "vecns[models]"',
                ),
            ],
        )
        for model_id in MODEL_IDS
    ]


def open_store(path: Path) -> vecns.Store:
    """A CPU store with the pinned inference thread count."""
    return vecns.connect(path, providers="cpu", threads=THREADS)


def clustered_vectors(n: int, dim: int = DIM, *, clusters: int = 256, seed: int = SEED) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres: structured like embeddings, unlike uniform noise.

    HNSW on uniform random vectors in 384 dimensions behaves like a worst case that real embeddings never
    produce, so search timings on it would mislead.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def corpus(*, unit: str = "doc", limit: int | None = None) -> list[Doc]:
    """Standard-library docstrings; reading some of them warns (deprecated modules), which is no failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return stdlib_docs(unit=unit, limit=limit)


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    """The first ``VECNS_BENCH_INGEST_DOCS`` standard-library docstrings (mixed lengths), built once."""
    return corpus(limit=INGEST_DOCS)


@pytest.fixture(scope="module")
def all_docs() -> list[Doc]:
    """Every standard-library docstring (about 3.5k on Python 3.11), built once."""
    return corpus()


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-module scratch directory for stores."""
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def module_store(bench_dir: Path) -> Iterator[vecns.Store]:
    """One store shared by a module's benchmarks, closed at the end of the module."""
    with open_store(bench_dir / "shared") as store:
        yield store
