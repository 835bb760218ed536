"""ONNX Runtime for vecns: the only onnxruntime code (graph rewrites are in :mod:`vecns.graphs`).

Which providers really run (CUDA only when its libraries load), session options, opening a session on a
graph held in memory, checking a graph's inputs and outputs, and one inference run with pooling.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import onnxruntime as ort

from vecns.errors import EmbeddingError, ModelLoadError, ValidationError
from vecns.graphs import POOLED_OUTPUT
from vecns.models import ModelSpec

if TYPE_CHECKING:
    from vecns.embed import TokenBatch

__all__ = ["CPU", "CUDA", "PROVIDER_CHOICES", "InferenceSession", "check_io", "choose_providers", "cuda_available",
           "open_session", "run", "session_options"]

InferenceSession: TypeAlias = ort.InferenceSession
PROVIDER_CHOICES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# ONNX Runtime severity 3 = error, 4 = fatal: keep session-time chatter off the caller's stderr.
QUIET_SEVERITY = 3
EXTERNAL_DATA_FOLDER = "session.model_external_initializers_file_folder_path"


def _load_quietly(names: Sequence[str]) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            return False
    return True


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """Whether onnxruntime can really run on CUDA here: its CUDA provider and libraries load.

    Checked without asking onnxruntime for a CUDA session, because that prints errors when the
    libraries are missing.

    Returns:
        True when the CUDA provider is built in and the driver, cudart, cublas and cudnn libraries load.
    """
    if CUDA not in ort.get_available_providers():
        return False
    try:
        from onnxruntime.capi import build_and_package_info

        major = str(getattr(build_and_package_info, "cuda_version", "") or "12").split(".")[0]
    except ImportError:
        major = "12"
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        # It prints advice with print(); the libraries it finds stay loaded for the checks below.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            preload(directory="")
    if sys.platform == "win32":
        names = [
            "nvcuda.dll",
            f"cudart64_{major}.dll",
            f"cublas64_{major}.dll",
            f"cublasLt64_{major}.dll",
            "cudnn64_9.dll",
        ]
    else:
        names = [
            "libcuda.so.1",
            f"libcudart.so.{major}",
            f"libcublas.so.{major}",
            f"libcublasLt.so.{major}",
            "libcudnn.so.9",
        ]
    return _load_quietly(names)


def session_options(threads: int | None) -> ort.SessionOptions:
    """The options of every vecns session: all graph optimisations, ``threads`` intra-op threads, quiet."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.log_severity_level = QUIET_SEVERITY
    return options


def open_session(spec: ModelSpec, data: bytes, providers: list[str], threads: int | None) -> ort.InferenceSession:
    """A session on ``data`` (the graph's bytes), external weights looked up in the model's folder.

    Raises:
        ModelLoadError: onnxruntime cannot load the graph.
    """
    options = session_options(threads)
    # A graph loaded from bytes would look up external data relative to the working directory; anchor it
    # to the model's folder, which onnxruntime then also refuses to let a path escape.
    options.add_session_config_entry(EXTERNAL_DATA_FOLDER, str(spec.graph_path.parent))
    try:
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as exc:
        raise ModelLoadError(
            f"model {spec.model_id!r}: graph file {str(spec.graph_path)!r} cannot be loaded by onnxruntime "
            f"({exc}). Expected a valid ONNX model; reinstall or re-export it."
        ) from exc


def check_io(spec: ModelSpec, session: ort.InferenceSession) -> tuple[tuple[str, ...], str]:
    """The graph's inputs and the output vecns reads (the card's ``output``, else the first).

    Raises:
        ModelLoadError: Inputs other than the known three, or no such output.
    """
    inputs = tuple(i.name for i in session.get_inputs())
    if "input_ids" not in inputs or not set(inputs) <= set(KNOWN_INPUTS):
        raise ModelLoadError(
            f"model {spec.model_id!r}: graph {str(spec.graph_path)!r} has inputs {list(inputs)}; expected "
            f"input_ids plus any of attention_mask, token_type_ids."
        )
    outputs = [o.name for o in session.get_outputs()]
    output = spec.output if spec.output is not None else outputs[0]
    if outputs == [POOLED_OUTPUT]:
        output = POOLED_OUTPUT
    if output not in outputs:
        raise ModelLoadError(
            f"model {spec.model_id!r}: graph {str(spec.graph_path)!r} has no output {output!r}; it has "
            f"{outputs}. Set 'output' in the card to one of them."
        )
    return inputs, output


def choose_providers(spec: ModelSpec, providers: str) -> list[str]:
    """The providers to ask onnxruntime for: CUDA first only when it really runs here.

    Raises:
        ValidationError: ``providers`` is not one of ``PROVIDER_CHOICES``.
        ModelLoadError: ``cuda`` was required and does not run.
    """
    if providers not in PROVIDER_CHOICES:
        raise ValidationError(f"providers={providers!r} is not supported; expected one of {PROVIDER_CHOICES}.")
    if providers == "cpu":
        return [CPU]
    if cuda_available():
        return [CUDA, CPU]
    if providers == "cuda":
        raise ModelLoadError(
            f"model {spec.model_id!r}: providers='cuda' was asked for, but onnxruntime's CUDA "
            "provider or the CUDA/cuDNN libraries it needs do not load here. Install them "
            '(pip install "vecns[cuda]") on a machine with an NVIDIA GPU, '
            "or use providers='auto' or 'cpu'."
        )
    return [CPU]


def run(
    spec: ModelSpec,
    session: ort.InferenceSession,
    inputs: tuple[str, ...],
    output: str,
    batch: TokenBatch,
    *,
    pooling: str | None = None,
    normalize: bool | None = None,
    io_binding: bool = False,
) -> np.ndarray:
    """Run one batch and pool it (``pooling``/``normalize`` default to the card's), float32 ``[rows, dim]``.

    Raises:
        EmbeddingError: onnxruntime failed, or the output does not fit the pooling.
    """
    pooling = spec.pooling if pooling is None else pooling
    normalize = spec.normalize if normalize is None else normalize
    feeds = {name: getattr(batch, name) for name in inputs}
    try:
        if io_binding:
            # Inputs copied to the device once, the output left where the session puts it and copied back
            # as one array: no per-run staging of every output.
            binding = session.io_binding()
            for name, array in feeds.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output(output, "cuda" if session.get_providers()[0] == CUDA else "cpu")
            session.run_with_iobinding(binding)
            (states,) = binding.copy_outputs_to_cpu()
        else:
            (states,) = session.run([output], feeds)
    except Exception as exc:
        raise EmbeddingError(
            f"model {spec.model_id!r}: inference on a batch of {len(batch)} texts "
            f"(width {batch.input_ids.shape[1]}) failed: {exc}."
        ) from exc
    states = np.asarray(states)
    want_rank = 2 if pooling == "none" else 3
    if states.ndim != want_rank or states.shape[0] != len(batch) or states.dtype.kind != "f":
        raise EmbeddingError(
            f"model {spec.model_id!r}: output {output!r} has shape {states.shape} ({states.dtype}); pooling "
            f"{pooling!r} expects a float array of rank {want_rank} with {len(batch)} rows. "
            "Check 'output' and 'pooling' in the model card."
        )
    states = states.astype(np.float32, copy=False)
    if pooling == "mean":
        mask = batch.attention_mask.astype(np.float32)[:, :, None]
        pooled = (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
    elif pooling == "cls":
        pooled = states[:, 0, :]
    else:
        pooled = states
    if normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(pooled, dtype=np.float32)
