"""Graph rewrites for the GPU path: the only onnx and onnxruntime.transformers code in vecns.

Two rewrites of a model's ONNX graph, done in memory when a model is loaded (the file is never changed):

- :func:`to_fp16`: weights and arithmetic in float16, inputs and outputs kept as they were (int64 ids in,
  float32 out). Half the memory traffic on a GPU; the embedder checks the result against fp32 before using it.
- :func:`with_pooling`: masked mean (or first-token) pooling and L2 normalisation appended to the graph, so
  a GPU returns ``[batch, dim]`` instead of copying ``[batch, tokens, dim]`` token states back to the host.

``onnx`` is not a core dependency (it comes with the ``cuda`` extra); :func:`available` says whether the
rewrites can run here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from vecns.errors import ModelLoadError
from vecns.models import ModelSpec

__all__ = ["POOLED_OUTPUT", "POOLINGS", "PRECISIONS", "Rewrite", "available", "to_fp16", "with_pooling"]

POOLED_OUTPUT = "vecns_pooled"
PRECISIONS = ("fp32", "fp16")
# The card poolings a graph can take inside it.
POOLINGS = ("mean", "cls")
# Reduce* and Unsqueeze take their axes as an input from opset 13 on; older graphs are left alone.
MIN_POOLING_OPSET = 13
NORM_FLOOR = 1e-12


def available() -> bool:
    """Whether the ``onnx`` package (needed for both rewrites) can be imported."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def _load(graph: bytes, what: str) -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ModelLoadError(
            f"{what} needs the onnx package, which is not installed. Install it with the GPU extra "
            '(pip install "vecns[cuda]") or pip install onnx.'
        ) from exc
    try:
        return onnx.load_model_from_string(graph)
    except Exception as exc:
        raise ModelLoadError(f"{what}: the graph cannot be parsed by onnx ({exc}).") from exc


def to_fp16(graph: bytes) -> bytes:
    """The graph with float32 weights and arithmetic turned into float16, keeping float32 inputs and outputs.

    Args:
        graph: A serialised ONNX model (all weights inside it).

    Returns:
        The converted model, serialised.

    Raises:
        ModelLoadError: onnx is missing, or the graph cannot be parsed or converted.
    """
    model = _load(graph, "the fp16 conversion")
    from onnx.external_data_helper import uses_external_data

    if any(uses_external_data(t) for t in model.graph.initializer):
        raise ModelLoadError("the fp16 conversion needs the weights inside the graph file; this graph keeps "
                             "them in external data files. Use precision='fp32'.")
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        converted = convert_float_to_float16(model, keep_io_types=True)
        return converted.SerializeToString()
    except Exception as exc:
        raise ModelLoadError(f"the fp16 conversion of the graph failed ({exc}). Use precision='fp32'.") from exc


def with_pooling(graph: bytes, *, output: str, pooling: str, normalize: bool) -> bytes | None:
    """The graph with pooling (and L2 normalisation) appended; its only output is ``POOLED_OUTPUT``.

    Args:
        graph: A serialised ONNX model.
        output: The token-state output ``[batch, tokens, dim]`` to pool.
        pooling: ``mean`` (masked by ``attention_mask``) or ``cls`` (first token).
        normalize: Divide each row by its L2 norm.

    Returns:
        The rewritten model, serialised; None when this graph cannot be rewritten safely (mean pooling
        without an ``attention_mask`` input, a default-domain opset below 13, or an unknown pooling),
        in which case the caller pools outside the graph.

    Raises:
        ModelLoadError: onnx is missing, or the graph cannot be parsed.
    """
    model = _load(graph, "pooling inside the graph")
    from onnx import TensorProto, helper, numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name: o for o in model.graph.output}
    if opset < MIN_POOLING_OPSET or output not in outputs or pooling not in POOLINGS:
        return None
    if pooling == "mean" and "attention_mask" not in inputs:
        return None
    import numpy as np

    def name(suffix: str) -> str:
        return f"vecns_pool_{suffix}"

    constants: dict[str, np.ndarray] = {
        name("token_axis"): np.array([1], dtype=np.int64),
        name("last_axis"): np.array([-1], dtype=np.int64),
        name("zero"): np.array([0], dtype=np.int64),
        name("one"): np.array(1.0, dtype=np.float32),
        name("floor"): np.array(NORM_FLOOR, dtype=np.float32),
    }
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    states = name("states")
    nodes = [helper.make_node("Cast", [output], [states], to=TensorProto.FLOAT)]
    if pooling == "mean":
        nodes += [
            helper.make_node("Cast", ["attention_mask"], [name("mask")], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", [name("mask"), name("last_axis")], [name("mask3")]),
            helper.make_node("Mul", [states, name("mask3")], [name("masked")]),
            helper.make_node("ReduceSum", [name("masked"), name("token_axis")], [name("summed")], keepdims=0),
            helper.make_node("ReduceSum", [name("mask3"), name("token_axis")], [name("counts")], keepdims=0),
            helper.make_node("Max", [name("counts"), name("one")], [name("counts_floor")]),
            helper.make_node("Div", [name("summed"), name("counts_floor")], [name("pooled")]),
        ]
    else:
        nodes.append(helper.make_node("Gather", [states, name("zero")], [name("first")], axis=1))
        nodes.append(helper.make_node("Squeeze", [name("first"), name("token_axis")], [name("pooled")]))
    last = name("pooled")
    if normalize:
        nodes += [
            helper.make_node("Mul", [last, last], [name("squares")]),
            helper.make_node("ReduceSum", [name("squares"), name("last_axis")], [name("sum_sq")], keepdims=1),
            helper.make_node("Sqrt", [name("sum_sq")], [name("norm")]),
            helper.make_node("Max", [name("norm"), name("floor")], [name("norm_floor")]),
            helper.make_node("Div", [last, name("norm_floor")], [name("unit")]),
        ]
        last = name("unit")
    nodes.append(helper.make_node("Identity", [last], [POOLED_OUTPUT]))
    model.graph.node.extend(nodes)
    dim = outputs[output].type.tensor_type.shape.dim
    width = dim[-1].dim_value if len(dim) == 3 and dim[-1].HasField("dim_value") else "dim"
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(POOLED_OUTPUT, TensorProto.FLOAT, ["batch", width]))
    return model.SerializeToString()


@dataclass(frozen=True)
class Rewrite:
    """How the loaded graph differs from the file: float16 arithmetic, pooling inside the graph."""

    precision: str = "fp32"
    pooled: bool = False
    output: str = ""  # the token-state output that in-graph pooling reads

    def apply(self, spec: ModelSpec, graph: bytes) -> bytes:
        """The graph rewritten as this says (the file's bytes when nothing is asked).

        Raises:
            ModelLoadError: onnx is missing, or the graph cannot be rewritten.
        """
        return self.resolve(spec, graph, required=True)[1]

    def resolve(self, spec: ModelSpec, graph: bytes, *, required: bool) -> tuple[Rewrite, bytes]:
        """The rewrite that really applies to this graph, with the rewritten bytes.

        Pooling the graph cannot take (opset below 13, no ``attention_mask`` for mean pooling) is refused
        when ``required``, else left to numpy: the returned rewrite then says ``pooled=False``.

        Raises:
            ModelLoadError: onnx is missing, the graph cannot be rewritten, or required pooling cannot go in.
        """
        data = to_fp16(graph) if self.precision == "fp16" else graph
        if not self.pooled:
            return self, data
        pooled = with_pooling(data, output=self.output, pooling=spec.pooling, normalize=spec.normalize)
        if pooled is not None:
            return self, pooled
        if required:
            raise ModelLoadError(
                f"model {spec.model_id!r}: its graph cannot take pooling inside it (that needs opset 13 or "
                f"later, output {self.output!r}, and for mean pooling an attention_mask input). "
                "Use pool_in_graph=False.")
        return replace(self, pooled=False), data
