"""A tiny ONNX embedding model that the test suite builds itself.

``build_tiny_model(folder)`` writes a model folder in the layout sentence-embedding ONNX exports use, so
``vecns.models.spec_from_folder(folder)`` loads it like a real one::

    folder/model.onnx               Gather(table[30522, dim], input_ids) @ W -> last_hidden_state [b, t, dim]
    folder/tokenizer.json           a copy of the committed BERT uncased WordPiece tokenizer
    folder/1_Pooling/config.json    mean pooling
    folder/vecns.json               model_id "tiny-d<dim>-s<seed>" (and pooling "none" when pooled)

Each token's state depends on that token alone, so vectors do not depend on how texts are batched or
padded. The bytes are a function of (dim, seed, pooled) only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB_SIZE = 30522
REPO_ROOT = Path(__file__).resolve().parents[1]
BERT_TOKENIZER = REPO_ROOT / "models" / "_tokenizers" / "bert-base-uncased" / "tokenizer.json"


def tiny_model_id(*, dim: int = 8, seed: int = 0, pooled: bool = False) -> str:
    """The model id that ``build_tiny_model`` writes into the folder's card."""
    return f"tiny-d{dim}-s{seed}" + ("-pooled" if pooled else "")


def _graph(*, dim: int, seed: int, pooled: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((VOCAB_SIZE, dim), dtype=np.float32)
    weight = (np.eye(dim, dtype=np.float32) + 0.1 * rng.standard_normal((dim, dim), dtype=np.float32)).astype(
        np.float32
    )
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    initializers = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(weight, "weight"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "token_axis"),
        numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["embedded"], axis=0),
        helper.make_node("MatMul", ["embedded", "weight"], ["projected"]),
        # token_type_ids joins the graph (times zero) so the graph consumes all three inputs, as BERT does.
        helper.make_node("Cast", ["token_type_ids"], ["type_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["type_float", "zero"], ["type_zero"]),
        helper.make_node("Unsqueeze", ["type_zero", "last_axis"], ["type_zero3"]),
        helper.make_node("Add", ["projected", "type_zero3"], ["last_hidden_state"]),
    ]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", dim])]
    if pooled:
        nodes += [
            helper.make_node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["mask_float", "last_axis"], ["mask3"]),
            helper.make_node("Mul", ["last_hidden_state", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "token_axis"], ["summed"], keepdims=0),
            helper.make_node("ReduceSum", ["mask3", "token_axis"], ["counts"], keepdims=0),
            helper.make_node("Div", ["summed", "counts"], ["sentence_embedding"]),
        ]
        outputs = [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])]
    graph = helper.make_graph(nodes, "vecns_tiny", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="vecns-tests")
    model.ir_version = 8
    return model


def _write_atomic(path: Path, data: bytes) -> None:
    # A new inode each time, so a rewrite is seen as a new file version even within one mtime tick.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_tiny_model(folder: Path, *, dim: int = 8, seed: int = 0, pooled: bool = False) -> Path:
    """Write a tiny, deterministic embedding model folder.

    Args:
        folder: Where to write; created if missing. Files already there are replaced.
        dim: Output dimension.
        seed: Seed of the random weights; another seed gives another model (and fingerprint).
        pooled: When true the graph outputs ``sentence_embedding`` [b, dim] (masked mean inside the
            graph) and the card says ``pooling: none``.

    Returns:
        The folder.
    """
    folder = Path(folder)
    (folder / "1_Pooling").mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "model.onnx", _graph(dim=dim, seed=seed, pooled=pooled).SerializeToString())
    shutil.copyfile(BERT_TOKENIZER, folder / "tokenizer.json")
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    card: dict[str, object] = {
        "model_id": tiny_model_id(dim=dim, seed=seed, pooled=pooled),
        "description": f"vecns test model, dim {dim}, seed {seed}",
        "max_tokens": 128,
    }
    if pooled:
        card.update(pooling="none", output="sentence_embedding")
    (folder / "vecns.json").write_text(json.dumps(card, indent=2) + "\n")
    return folder
