"""What a .tflite holds, read from its flatbuffer (LiteRT's generated schema): operators, tensor
types and quantization; and the one rewrite the legacy firmware needs (`legacy_dense_scales`)."""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

from host.errors import UserError

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Layer:
    index: int
    op: str
    version: int
    name: str  # the op's output tensor name: the layer as the converter named it
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    weight_scales: int  # scales of the weights tensor (input 1), 0 when it has none
    bias_scales: int  # scales of the bias tensor (input 2), 0 when it has none


def short_name(tensor_name: bytes) -> str:
    """The Keras layer in a converter tensor name: 'functional/tiny_cnn/dense_2/MatMul;...' -> 'dense_2'."""
    parts = tensor_name.decode(errors="replace").split(";")[0].split("/")
    return parts[-2] if len(parts) >= 2 else parts[0]


def parse(payload: bytes) -> schema.ModelT:
    try:
        if not schema.Model.ModelBufferHasIdentifier(payload, 0):
            raise ValueError("no TFL3 identifier")
        return schema.ModelT.InitFromPackedBuf(bytes(payload), 0)
    except Exception as exc:  # a truncated or foreign file fails anywhere inside the parser
        raise UserError(f"not a valid .tflite model ({exc}); rebuild it with python -m host.build") from None


def op_name(model: schema.ModelT, opcode_index: int) -> tuple[str, int]:
    code = model.operatorCodes[opcode_index]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}"), int(code.version)


def _scales(tensor) -> int:
    q = tensor.quantization
    return 0 if q is None or q.scale is None else len(q.scale)


def layers(payload: bytes) -> list[Layer]:
    model = parse(payload)
    found = []
    for graph in model.subgraphs:
        tensors = graph.tensors

        def tensor(op, k, tensors=tensors):
            ids = list(op.inputs) if op.inputs is not None else []
            return tensors[ids[k]] if k < len(ids) and ids[k] >= 0 else None

        for i, op in enumerate(graph.operators):
            name, version = op_name(model, op.opcodeIndex)
            outputs = [tensors[t] for t in (op.outputs if op.outputs is not None else []) if t >= 0]
            inputs = [tensors[t] for t in (op.inputs if op.inputs is not None else []) if t >= 0]
            weights, bias = tensor(op, 1), tensor(op, 2)
            found.append(Layer(
                index=i, op=name, version=version,
                name=short_name(outputs[0].name) if outputs and outputs[0].name else f"#{i}",
                input_types=tuple(TYPE_NAMES.get(t.type, str(t.type)) for t in inputs),
                output_types=tuple(TYPE_NAMES.get(t.type, str(t.type)) for t in outputs),
                weight_scales=_scales(weights) if weights is not None else 0,
                bias_scales=_scales(bias) if bias is not None else 0,
            ))
    return found


def per_channel_dense(payload: bytes) -> list[Layer]:
    """FULLY_CONNECTED layers whose weights or bias carry more than one scale (per channel)."""
    return [layer for layer in layers(payload)
            if layer.op == "FULLY_CONNECTED" and (layer.weight_scales > 1 or layer.bias_scales > 1)]


def legacy_dense_scales(payload: bytes) -> bytes:
    """The model as legacy libtf (firmware <= 4.5.5) computes it: every per-channel dense layer
    with channel 0's scale.

    libtf (2024-02, before tflite-micro PR #2602) prepares FULLY_CONNECTED from the tensors'
    per-tensor `params.scale`, which TFLM fills from the first entry of the scale vector, so each
    output unit is requantized with channel 0's multiplier. Rewriting the weights' and bias'
    quantization to that single scale (int values untouched) gives a per-tensor model that any
    TFLM computes exactly that way.
    """
    model = parse(payload)
    changed = False
    for graph in model.subgraphs:
        for op in graph.operators:
            if op_name(model, op.opcodeIndex)[0] != "FULLY_CONNECTED":
                continue
            for k in (1, 2):
                if op.inputs is None or k >= len(op.inputs) or op.inputs[k] < 0:
                    continue
                q = graph.tensors[op.inputs[k]].quantization
                if q is not None and q.scale is not None and len(q.scale) > 1:
                    q.scale = [float(q.scale[0])]
                    q.zeroPoint = [int(q.zeroPoint[0])] if q.zeroPoint is not None and len(q.zeroPoint) else [0]
                    q.quantizedDimension = 0
                    changed = True
    if not changed:
        return bytes(payload)
    builder = flatbuffers.Builder(len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def io_types(payload: bytes) -> list[tuple[str, str]]:
    """("input"|"output", tensor type) of the main graph's inputs and outputs."""
    graph = parse(payload).subgraphs[0]
    return ([("input", TYPE_NAMES.get(graph.tensors[i].type, "?")) for i in graph.inputs]
            + [("output", TYPE_NAMES.get(graph.tensors[i].type, "?")) for i in graph.outputs])


def input_shape(payload: bytes) -> list[int]:
    """The shape of the main graph's first input tensor, e.g. [1, 32, 32, 3]."""
    graph = parse(payload).subgraphs[0]
    shape = graph.tensors[graph.inputs[0]].shape
    return [int(d) for d in shape] if shape is not None else []
