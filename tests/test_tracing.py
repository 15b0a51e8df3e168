"""Tracing (SPEC 3.1): zoo models, architectures the tracer has never seen, unsupported ops.

Oracle: forward hooks on the real modules (which Conv2d/Linear run, in which order, on which
shapes) and the model's own output shape; never the tracer's own numbers.
"""

from __future__ import annotations

from collections import Counter

import nets
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetopo import models
from sparsetopo.tracing import TracingError, trace

# name -> (create kwargs, input shape, residual adds, pooling ops)
ZOO = {
    "conv6": ({}, (3, 32, 32), 0, 3),
    "resnet20": ({}, (3, 32, 32), 9, 1),
    "resnet32": ({}, (3, 32, 32), 15, 1),
    "wrn28_2": ({}, (3, 32, 32), 12, 1),
    # residual blocks: stride 1 and c_in == c_out: 1 + 2 + 3 + 2 + 2
    "mobilenetv2": ({}, (3, 32, 32), 10, 1),
    "mlp": ({}, (3, 32, 32), 0, 0),
    "resnet18": ({}, (3, 64, 64), 8, 2),
    "resnet50": ({}, (3, 64, 64), 16, 2),
}


def check_dag_against_hooks(model: nn.Module, input_shape) -> object:
    """The DAG's conv/linear ops are exactly the modules that run, in execution order, with the
    shapes they see; the output value has the model's output shape."""
    dag = trace(model, input_shape)
    expected = nets.layer_io_shapes(model, input_shape)
    layers = dag.layers()
    assert [op.name for op in layers] == [name for name, _, _ in expected]
    for op, (name, in_shape, out_shape) in zip(layers, expected, strict=True):
        assert op.kind == ("conv" if isinstance(op.module, nn.Conv2d) else "linear"), name
        assert op.module is model.get_submodule(name)
        assert tuple(dag.values[op.inputs[0]].shape) == in_shape, name
        assert tuple(dag.values[op.output].shape) == out_shape, name
    with torch.no_grad():
        model.eval()
        out = model(torch.zeros((1, *input_shape)))
    assert tuple(dag.values[dag.output].shape) == tuple(out.shape[1:])
    assert tuple(dag.values[dag.input].shape) == tuple(input_shape)
    # topological: every op reads values produced before it
    produced = {dag.input}
    for op in dag.ops[1:]:
        assert set(op.inputs) <= produced, op.name
        produced.add(op.output)
    return dag


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_traces(name):
    kwargs, shape, n_add, n_pool = ZOO[name]
    model = models.create(name, seed=0, **kwargs)
    dag = check_dag_against_hooks(model, shape)
    kinds = Counter(op.kind for op in dag.ops)
    assert kinds["add"] == n_add
    assert kinds["pool"] == n_pool
    assert kinds["cat"] == 0
    n_modules = sum(1 for _ in nets.conv_linear_modules(model))
    assert kinds["conv"] + kinds["linear"] == n_modules


def test_zoo_model_rectangular_input():
    check_dag_against_hooks(models.create("resnet20", seed=0), (3, 20, 28))
    check_dag_against_hooks(models.create("mlp", input_size=(5, 7), seed=0), (3, 5, 7))


NEW = {
    "vgg_functional": (nets.VGGFunctional, (3, 20, 28), {"pool": 4, "add": 0, "cat": 0}),
    "dense_block": (nets.DenseBlockNet, (3, 8, 10), {"pool": 1, "add": 0, "cat": 2}),
    "depthwise_dilated": (nets.DepthwiseDilated, (3, 12, 15), {"pool": 1, "add": 0, "cat": 0}),
    "not_a_shortcut": (nets.NotAShortcut, (3, 6, 7), {"pool": 0, "add": 0, "cat": 0}),
    "odd_names": (nets.OddNames, (3, 8, 8), {"pool": 1, "add": 1, "cat": 0}),
    "odd_names_skip_first": (lambda: nets.OddNames(skip_first=True), (3, 8, 8),
                             {"pool": 1, "add": 1, "cat": 0}),
    "linear_residual": (nets.LinearResidualNet, (3, 7, 8), {"pool": 0, "add": 3, "cat": 1}),
    "linear_chain": (nets.LinearChain, (2, 5, 6), {"pool": 0, "add": 1, "cat": 1}),
    "pool_net": (nets.PoolNet, (2, 11, 9), {"pool": 3, "add": 0, "cat": 0}),
    "pool_net_max": (lambda: nets.PoolNet("max"), (2, 11, 9), {"pool": 3, "add": 0, "cat": 0}),
}


@pytest.mark.parametrize("key", list(NEW))
def test_new_architecture_traces(key):
    factory, shape, counts = NEW[key]
    torch.manual_seed(0)
    dag = check_dag_against_hooks(factory(), shape)
    kinds = Counter(op.kind for op in dag.ops)
    for kind, n in counts.items():
        assert kinds[kind] == n, (kind, kinds)


@pytest.mark.parametrize("how", ["size", "shape"])
def test_flatten_with_batch_size_from_the_tensor(how):
    # x.view(x.size(0), -1) and x.reshape(x.shape[0], -1): the size/shape lookups are metadata,
    # not ops on the data path
    dag = check_dag_against_hooks(nets.ViewFlatten(how), (3, 12, 14))
    assert [op.kind for op in dag.ops] == ["input", "conv", "pool", "reshape", "linear"]


def test_cat_operands_and_shapes():
    net = nets.DenseBlockNet()
    dag = trace(net, (3, 8, 10))
    cats = [op for op in dag.ops if op.kind == "cat"]
    assert [dag.values[c.output].shape for c in cats] == [(7, 8, 10), (10, 8, 10)]
    # the first cat reads the stem's output and the first dense layer's conv output
    producers = {op.output: op for op in dag.ops}
    assert [producers[v].name for v in cats[0].inputs] == ["stem", "layers.0.2"]
    assert [producers[v].name for v in cats[1].inputs][1] == "layers.1.2"
    assert producers[cats[1].inputs[0]] is cats[0]


def test_transparent_ops_keep_node_identity():
    class Elementwise(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.drop = nn.Dropout2d(0.3)
            self.ident = nn.Identity()
            self.gelu = nn.GELU()
            self.b = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            y = self.ident(self.drop(self.gelu(self.bn(self.a(x)))))
            y = torch.sigmoid(y * 2.0 + 1.0).contiguous() - 0.5
            y = F.leaky_relu(y / 3.0).clamp(-1, 1)
            return self.b(torch.tanh(y))

    dag = check_dag_against_hooks(Elementwise(), (3, 6, 5))
    assert [op.kind for op in dag.ops] == ["input", "conv", "conv"]
    assert dag.ops[2].inputs == (dag.ops[1].output,)
    assert dag.output == dag.ops[2].output


def test_no_rule_depends_on_module_names():
    a = trace(nets.OddNames(names=("shortcut", "zebra")), (3, 8, 8))
    b = trace(nets.OddNames(names=("main_path", "shortcut")), (3, 8, 8))

    def structure(dag):
        return [(op.kind, op.inputs, dag.values[op.output].shape) for op in dag.ops]

    assert structure(a) == structure(b)
    # the conv named `shortcut` in a plain chain is an ordinary layer
    dag = trace(nets.NotAShortcut(), (3, 6, 7))
    assert [op.name for op in dag.layers()] == ["conv", "shortcut", "head"]
    assert dag.layers()[2].inputs == (dag.layers()[1].output,)


@pytest.mark.parametrize(
    "factory, shape, node, op, path",
    [
        (lambda: nets.UnsupportedOp("matmul"), (3, 5, 5), "matmul", "matmul", "odd_block"),
        (lambda: nets.UnsupportedOp("mul"), (3, 5, 5), "mul", "mul", "odd_block"),
        (lambda: nets.UnsupportedOp("sort"), (3, 5, 5), "sort", "sort", "odd_block"),
        (nets.WithLSTM, (4, 6), "encoder_rnn_layer", "LSTM", "encoder.rnn_layer"),
    ],
    ids=["matmul", "mul", "sort", "lstm"],
)
def test_unsupported_op_is_named(factory, shape, node, op, path):
    with pytest.raises(TracingError) as info:
        trace(factory(), shape)
    msg = str(info.value)
    assert f"'{node}'" in msg
    assert op in msg
    assert f"'{path}'" in msg


def test_linear_on_a_feature_map_is_rejected():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 2))
    with pytest.raises(TracingError, match=r"Linear.*'1'"):
        trace(net, (3, 7, 7))


@pytest.mark.parametrize(
    "factory, shape",
    [
        (lambda: models.create("resnet20", seed=0), (1, 32, 32)),
        (lambda: models.create("mlp", seed=0), (3, 16, 16)),
        (lambda: nn.Sequential(nn.Conv2d(3, 2, 5)), (3, 3, 3)),
    ],
    ids=["channels", "flatten-size", "too-small"],
)
def test_input_shape_the_model_cannot_take(factory, shape):
    with pytest.raises(TracingError) as info:
        trace(factory(), shape)
    assert str(tuple(shape)) in str(info.value)


def test_a_caller_traces_once_and_the_encoders_reuse_its_dag(monkeypatch):
    """``traced`` hands back the caller's DAG (no second trace) only when it is this model's
    on this input shape; the encodings built from a reused DAG are the ones traced afresh."""
    import numpy as np

    import sparsetopo.tracing as tracing
    from sparsetopo import encoding, pruning
    from sparsetopo.tracing import traced

    torch.manual_seed(0)
    model = models.create("resnet20", num_classes=10, in_channels=1)
    pruning.prune(model, "uniform", 0.9, seed=0)
    shape = (1, 8, 8)
    dag = trace(model, shape)
    fresh = encoding.multipartite_pair(model, shape)
    fresh_size = encoding.unrolled_size(model, shape)
    fresh_est = encoding.estimate(model, shape, True)
    calls = []
    monkeypatch.setattr(tracing, "trace", lambda *a: calls.append(a))
    assert traced(model, shape, dag) is dag
    reused = encoding.multipartite_pair(model, shape, dag=dag)
    assert encoding.unrolled_size(model, shape, dag=dag) == fresh_size
    assert encoding.estimate(model, shape, True, dag=dag) == fresh_est
    assert calls == []  # nothing traced again
    for a, b in zip(fresh, reused, strict=True):
        assert (a.adjacency != b.adjacency).nnz == 0
        np.testing.assert_array_equal(a.adjacency.data, b.adjacency.data)
        assert a.partitions == b.partitions
    with pytest.raises(ValueError, match="input shape"):
        traced(model, (1, 16, 16), dag)
    with pytest.raises(ValueError, match="not this model"):
        traced(models.create("resnet20", num_classes=10, in_channels=1), shape, dag)
