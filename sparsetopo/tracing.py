"""Trace a model into a small DAG of encoded ops between activation tensors.

``torch.fx`` symbolic tracing plus one forward pass on an input of ``input_shape`` (to record
every activation's shape) gives the dataflow of activation tensors. Encoded ops are Conv2d,
Linear, max/avg/adaptive pooling (module or functional, and ``mean``/``amax`` over the two
spatial dims, a global pool), flatten/view/reshape/squeeze/unsqueeze (re-indexing only),
residual ``add`` and ``cat`` along channels. Element-wise ops (BatchNorm, activations, Dropout,
Identity, ``contiguous``, arithmetic with a scalar...) are transparent: their output *is*
their input. Anything else raises :class:`TracingError` naming the fx node, the op and the
module path. No rule depends on module names. The encodings built on this trace are defined
in ``docs/encodings.md`` (section *Tracing*).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from sparsetopo._torch_state import one_thread
from sparsetopo.errors import TracingError

__all__ = [
    "SUPPORTED_OPS",
    "TRANSPARENT_MODULES",
    "LayerDAG",
    "Op",
    "TracingError",
    "Value",
    "trace",
    "traced",
]

#: What the tracer encodes, in words (the end of every :class:`TracingError` message).
SUPPORTED_OPS = (
    "Conv2d, Linear, MaxPool2d/AvgPool2d/AdaptiveAvgPool2d/AdaptiveMaxPool2d (module or "
    "functional), mean over H,W, flatten/view/reshape, add (+), cat along channels, and "
    "element-wise ops (BatchNorm, activations, Dropout, Identity, arithmetic with scalars)"
)

#: Modules treated as element-wise: output element ``i`` is node ``i`` of their input
#: (activations, Dropout, Identity, and normalisations, whose statistics and affine parameters
#: create no weighted edge).
#:
#: :meta hide-value:
TRANSPARENT_MODULES: tuple[type, ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.modules.dropout._DropoutNd,
    nn.Identity,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.LogSigmoid, nn.Hardshrink,
    nn.Softshrink,
)

_ELEMENTWISE_NAMES = {
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "gelu",
    "silu", "mish", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardtanh", "hardtanh_", "hardswish",
    "hardsigmoid", "softplus", "softsign", "logsigmoid", "dropout", "dropout2d", "alpha_dropout",
    "feature_alpha_dropout", "contiguous", "clone", "detach", "abs", "neg", "exp", "log",
    "sqrt", "square", "clamp", "clamp_", "clip", "float", "double", "half", "to", "type_as",
    "batch_norm", "group_norm", "layer_norm", "instance_norm", "threshold", "prelu",
}
_SCALAR_ARITH = {operator.mul, operator.truediv, operator.sub, operator.add, operator.iadd,
                 operator.imul, torch.mul, torch.div, torch.sub, torch.add}
_ADD_OPS = {operator.add, operator.iadd, torch.add, "add", "add_", "__add__", "__iadd__"}
_RESHAPE_NAMES = {"flatten", "view", "reshape", "squeeze", "unsqueeze"}
_POOL_FUNCTIONS = {
    F.max_pool2d: "max", torch.max_pool2d: "max", F.avg_pool2d: "avg", torch._C._nn.avg_pool2d:
    "avg", F.adaptive_avg_pool2d: "adaptive", F.adaptive_max_pool2d: "adaptive",
    torch._C._nn.adaptive_avg_pool2d: "adaptive",
}
_CAT = {torch.cat, torch.concat, torch.concatenate}


@dataclass
class Value:
    """An activation tensor of the traced network (batch dimension dropped).

    Parameters
    ----------
    id : int
        Its index in :attr:`LayerDAG.values`.
    shape : tuple of int
        Its shape for one sample, e.g. ``(C, H, W)`` or ``(features,)``.
    producer : int
        Index in :attr:`LayerDAG.ops` of the op that produced it (0, the ``input`` op, for the
        network input).
    """

    id: int
    shape: tuple[int, ...]
    producer: int

    @property
    def size(self) -> int:
        """Number of elements per sample: the product of :attr:`shape`."""
        return int(math.prod(self.shape))


@dataclass
class Op:
    """An encoded op of the traced network: one node of the :class:`LayerDAG`.

    Parameters
    ----------
    kind : str
        ``input``, ``conv``, ``linear``, ``pool``, ``reshape``, ``add`` or ``cat``.
    name : str
        The module path of a module call (``layer1.0.conv1``); for a function or method call,
        the path of the module whose ``forward`` made it plus the fx node name
        (``layer1.0.add``), or the fx node name alone at top level. ``input`` for the input.
    fx_node : str
        Name of the ``torch.fx`` node.
    inputs : tuple of int
        Ids of the values (:class:`Value`) it reads.
    output : int
        Id of the value it writes.
    module : torch.nn.Module or None, optional
        The ``Conv2d`` or ``Linear`` module of a ``conv``/``linear`` op, else None.
    params : dict, optional
        A ``pool`` op's geometry: ``mode`` (``max``, ``avg`` or ``adaptive``) and, except for
        ``adaptive``, ``kernel``, ``stride``, ``padding`` and ``dilation`` as ``(h, w)``
        pairs.
    """

    kind: str
    name: str
    fx_node: str
    inputs: tuple[int, ...]
    output: int
    module: nn.Module | None = None
    params: dict = field(default_factory=dict)


@dataclass
class LayerDAG:
    """The traced dataflow of a network: encoded ops between activation tensors, in
    topological order.

    Transparent (element-wise) operations are not ops: their output is the same
    :class:`Value` as their input.

    Parameters
    ----------
    ops : list of Op
        The ops in topological order; ``ops[0]`` is the ``input`` op.
    values : list of Value
        The activation tensors, ``values[i].id == i``.
    input : int
        Id of the network input's value (0).
    output : int
        Id of the network output's value.
    input_shape : tuple of int
        The sample shape the network was traced on (no batch dimension).
    """

    ops: list[Op]
    values: list[Value]
    input: int
    output: int
    input_shape: tuple[int, ...]

    def consumers(self) -> dict[int, list[int]]:
        """The readers of every value.

        Returns
        -------
        dict of int to list of int
            ``{value id: indices in ops of the ops that read it}`` (every value, empty lists
            included).
        """
        out: dict[int, list[int]] = {v.id: [] for v in self.values}
        for i, op in enumerate(self.ops):
            for v in op.inputs:
                out[v].append(i)
        return out

    def layers(self) -> list[Op]:
        """The conv/linear ops, in topological order.

        Returns
        -------
        list of Op
            The ops of kind ``conv`` or ``linear``.
        """
        return [op for op in self.ops if op.kind in ("conv", "linear")]


def _module_path(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if stack:
        return str(list(stack.values())[-1][0])
    return "<top level>"


def _target_name(node: fx.Node) -> str:
    t = node.target
    if node.op == "call_method":
        return f"Tensor.{t}"
    if node.op == "call_function":
        return getattr(t, "__qualname__", None) or getattr(t, "__name__", None) or str(t)
    return str(t)


def _unsupported(node: fx.Node, what: str, module: nn.Module | None = None) -> TracingError:
    op = type(module).__name__ if module is not None else _target_name(node)
    return TracingError(
        f"unsupported op {op} ({what}) at fx node '{node.name}', module path "
        f"'{_module_path(node)}'; supported: {SUPPORTED_OPS}"
    )


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (0, 0)
    return (int(v), int(v))


def _arg(node: fx.Node, pos: int, name: str, default=None):
    if len(node.args) > pos:
        return node.args[pos]
    return node.kwargs.get(name, default)


def _shape_of(node: fx.Node) -> tuple[int, ...] | None:
    return node.meta.get("sparsetopo_shape")


class _ShapeRecorder(fx.Interpreter):
    """Runs the traced graph once and records every tensor-valued node's shape (a lighter
    ``ShapeProp``: no symbolic-shape machinery)."""

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        n.meta["sparsetopo_shape"] = (
            tuple(int(s) for s in result.shape) if isinstance(result, torch.Tensor) else None
        )
        return result


def trace(model: nn.Module, input_shape: tuple[int, ...]) -> LayerDAG:
    """Trace ``model`` on one input of ``input_shape`` into a :class:`LayerDAG`.

    ``torch.fx`` traces the model symbolically; one forward pass of an all-zeros sample of
    ``input_shape`` (eval mode, no gradient, one intra-op thread) records the shape of every
    activation; each fx node then becomes an encoded op or, if element-wise, is folded into its
    input (see the module docstring and ``docs/encodings.md``). The model's train/eval mode is
    restored afterwards. Safe to call from several threads: torch.fx patches process-wide
    state, so traces (and the library's seeded forward passes) run one at a time.

    Parameters
    ----------
    model : torch.nn.Module
        The network, with a single tensor input and a single tensor output.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension, e.g. ``(3, 32, 32)``.

    Returns
    -------
    LayerDAG
        The network's dataflow.

    Raises
    ------
    TracingError
        The model cannot be traced by ``torch.fx``, cannot take an input of ``input_shape``,
        has several inputs or a non-tensor output, or contains an op that cannot be encoded
        (the message names the fx node, the op, the module path and :data:`SUPPORTED_OPS`).

    References
    ----------
    .. [1] J. K. Reed, Z. DeVito, H. He, A. Ussery, J. Ansel. "torch.fx: Practical Program
       Capture and Transformation for Deep Learning in Python." MLSys 2022.
    .. [2] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    input_shape = tuple(int(s) for s in input_shape)
    with one_thread():  # torch.fx patches every thread's modules: one trace at a time
        try:  # the graph alone: a GraphModule (generated code) is not needed to interpret it
            graph = fx.Tracer().trace(model)
        except Exception as exc:  # fx raises many kinds of errors
            raise TracingError(f"torch.fx cannot trace {type(model).__name__}: {exc}") from None
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                _ShapeRecorder(model, graph=graph).run(torch.zeros((1, *input_shape),
                                                                   **_sample_options(model)))
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TracingError(
                f"{type(model).__name__} cannot take an input of shape {input_shape}: {msg}"
            ) from None
        finally:
            model.train(was_training)
    return _build_dag(model, graph, input_shape)


def _sample_options(model: nn.Module) -> dict:
    """Device and floating dtype of the model's first parameter (or buffer), for the sample
    input: a model on a GPU, or in float64, is traced where it is."""
    for t in (*model.parameters(), *model.buffers()):
        return {"device": t.device, "dtype": t.dtype if t.is_floating_point() else None}
    return {}


def traced(model: nn.Module, input_shape: tuple[int, ...],
           dag: LayerDAG | None = None) -> LayerDAG:
    """The trace of ``model`` on ``input_shape``: ``dag`` when the caller already has it, else
    :func:`trace`.

    A caller that encodes one model several times traces it once (30-40 ms a trace for
    ResNet-20).

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension.
    dag : LayerDAG or None, optional
        A previous ``trace(model, input_shape)``; ``None``: trace now.

    Returns
    -------
    LayerDAG
        ``dag``, or a new trace.

    Raises
    ------
    TracingError
        As :func:`trace`, when tracing now.
    ValueError
        ``dag`` was traced on another input shape, or its layers are not ``model``'s modules
        (a caller's mistake, not bad input).
    """
    if dag is None:
        return trace(model, input_shape)
    shape = tuple(int(s) for s in input_shape)
    if tuple(dag.input_shape) != shape:
        raise ValueError(f"the traced DAG is for input shape {tuple(dag.input_shape)}, not "
                         f"{shape}")
    own = {id(m) for m in model.modules()}
    if any(id(op.module) not in own for op in dag.layers()):
        raise ValueError("the traced DAG's layers are not this model's modules")
    return dag


def _build_dag(model: nn.Module, graph: fx.Graph, input_shape: tuple[int, ...]) -> LayerDAG:
    values: list[Value] = []
    ops: list[Op] = []
    value_of: dict[fx.Node, int] = {}

    def new_value(shape, producer) -> int:
        values.append(Value(len(values), tuple(shape), producer))
        return values[-1].id

    def add_op(kind, node, inputs, module=None, **params) -> int:
        shape = _shape_of(node)
        if shape is None:
            raise _unsupported(node, "its output is not a single tensor", module)
        name = str(node.target) if node.op == "call_module" else (
            f"{_module_path(node)}.{node.name}" if _module_path(node) != "<top level>"
            else node.name)
        vid = new_value(shape[1:], len(ops))
        ops.append(Op(kind, name, node.name, tuple(inputs), vid, module, params))
        value_of[node] = vid
        return vid

    tensor_inputs = lambda node: [a for a in node.all_input_nodes if a in value_of]  # noqa: E731
    output_value = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if values:
                raise TracingError("models with more than one input are not supported")
            vid = new_value(input_shape, -1)
            ops.append(Op("input", "input", node.name, (), vid))
            values[vid].producer = 0
            value_of[node] = vid
            continue
        if node.op == "get_attr":
            continue  # parameters/buffers used by functional ops are checked at the use
        if node.op == "output":
            arg = node.args[0]
            if not isinstance(arg, fx.Node) or arg not in value_of:
                raise TracingError(
                    "the model output must be a single tensor computed from the input, got "
                    f"{type(arg).__name__}"
                )
            output_value = value_of[arg]
            continue
        ins = tensor_inputs(node)
        if not ins:
            continue  # constant computation, not on the data path
        if _shape_of(node) is None and (node.op == "call_function" and node.target is getattr
                                        or node.op == "call_method"
                                        and node.target in ("size", "dim")):
            continue  # shape queries (x.size(0), x.shape[0]) feed reshapes, not the data path
        module = model.get_submodule(node.target) if node.op == "call_module" else None
        _classify(node, module, ins, value_of, add_op, values)
    if output_value is None:
        raise TracingError("the traced model has no output")
    return LayerDAG(ops, values, 0, output_value, input_shape)


def _classify(node, module, ins, value_of, add_op, values) -> None:
    """Turn one fx node into an op (or alias it to its input if transparent)."""
    in_shape = values[value_of[ins[0]]].shape
    out_shape = _shape_of(node)
    out_shape = out_shape[1:] if out_shape is not None else None

    def transparent():
        if len(ins) != 1:
            raise _unsupported(node, "an element-wise op with more than one tensor input", module)
        if out_shape != in_shape:
            raise _unsupported(node, f"element-wise op changed shape {in_shape} -> {out_shape}",
                               module)
        value_of[node] = value_of[ins[0]]

    if module is not None:
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros":
                raise _unsupported(node, f"padding_mode={module.padding_mode!r}; only 'zeros'",
                                   module)
            add_op("conv", node, [value_of[ins[0]]], module)
        elif isinstance(module, nn.Linear):
            if len(in_shape) != 1:
                raise _unsupported(node, f"Linear on a {len(in_shape) + 1}-D input; flatten first",
                                   module)
            add_op("linear", node, [value_of[ins[0]]], module)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
            dil = getattr(module, "dilation", 1)
            add_op("pool", node, [value_of[ins[0]]], None, mode=kind,
                   kernel=_pair(module.kernel_size),
                   stride=_pair(module.stride if module.stride is not None else module.kernel_size),
                   padding=_pair(module.padding), dilation=_pair(dil))
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            add_op("pool", node, [value_of[ins[0]]], None, mode="adaptive")
        elif isinstance(module, (nn.Flatten, nn.Unflatten)):
            add_op("reshape", node, [value_of[ins[0]]])
        elif isinstance(module, TRANSPARENT_MODULES):
            transparent()
        else:
            raise _unsupported(node, "module type not encodable", module)
        return

    target = node.target
    name = target if node.op == "call_method" else getattr(target, "__name__", "")
    if target in _POOL_FUNCTIONS:
        mode = _POOL_FUNCTIONS[target]
        if mode == "adaptive":
            add_op("pool", node, [value_of[ins[0]]], mode="adaptive")
        else:
            k = _pair(_arg(node, 1, "kernel_size"))
            s = _arg(node, 2, "stride", None)
            s = k if s is None or s == [] or s == () else _pair(s)
            p = _pair(_arg(node, 3, "padding", 0))
            d = _pair(_arg(node, 4, "dilation", 1)) if mode == "max" else (1, 1)
            add_op("pool", node, [value_of[ins[0]]], mode=mode, kernel=k, stride=s, padding=p,
                   dilation=d)
    elif (node.op == "call_method" and name in ("mean", "amax")) or target in (
            torch.mean, torch.amax):
        dims = _arg(node, 1, "dim", None)
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        nd = len(in_shape) + 1
        dims = tuple(sorted(int(d) % nd for d in dims if d is not None))
        if dims != (2, 3) or len(in_shape) != 3:
            raise _unsupported(node, f"reduction over dims {dims}; only the spatial dims (2, 3)")
        add_op("pool", node, [value_of[ins[0]]], mode="adaptive")
    elif target in _CAT or name in ("cat", "concat"):
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = _arg(node, 1, "dim", 0)
        if any(not isinstance(t, fx.Node) or t not in value_of for t in tensors):
            raise _unsupported(node, "cat of tensors not all on the data path")
        if int(dim) % (len(in_shape) + 1) != 1:
            raise _unsupported(node, f"cat along dim {dim}; only the channel dim 1")
        add_op("cat", node, [value_of[t] for t in tensors])
    elif target in _ADD_OPS or name in _ADD_OPS:
        if len(ins) == 2:
            if node.kwargs.get("alpha", 1) != 1:
                raise _unsupported(node, "add with alpha != 1")
            shapes = {values[value_of[a]].shape for a in ins}
            if len(shapes) != 1:
                raise _unsupported(node, f"add of tensors with different shapes {shapes}")
            add_op("add", node, [value_of[a] for a in ins])
        else:
            transparent()  # tensor + scalar
    elif target in _SCALAR_ARITH or name in ("mul", "div", "sub", "__mul__", "__truediv__"):
        if len(ins) != 1:
            raise _unsupported(node, "element-wise product/difference of two activations")
        transparent()
    elif target in (torch.flatten,) or name in _RESHAPE_NAMES:
        if out_shape is None or math.prod(out_shape) != math.prod(in_shape):
            raise _unsupported(node, "reshape that changes the number of elements per sample")
        if _shape_of(node)[0] != 1:
            raise _unsupported(node, "reshape that mixes the batch dimension")
        add_op("reshape", node, [value_of[ins[0]]])
    elif name in _ELEMENTWISE_NAMES:
        transparent()
    else:
        raise _unsupported(node, f"{node.op} not encodable")
