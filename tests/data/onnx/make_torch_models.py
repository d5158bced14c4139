"""Make the PyTorch-exported ONNX files of tests/test_onnx_torch.py.

    .venv/bin/python -m pip install torch==2.13.0 onnxscript   # the bench extra; not a test dependency
    .venv/bin/python tests/data/onnx/make_torch_models.py

For each network and exporter it writes NAME.onnx (with dynamo=True also
NAME.onnx.data, the external weights) and NAME.npz: the inputs ``x``, the
outputs of PyTorch (``torch``) and of onnxruntime (``onnxruntime``) on them.
The networks cover what climate emulators are made of: Linear layers,
every activation PyTorch exports as a composite (GELU, SiLU, Mish,
Hardswish, Softplus with its threshold, ...), LayerNorm, BatchNorm1d,
Dropout, residual Add, Concat, view/flatten, and the normalization of inputs
and outputs as buffers.
"""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class Emulator(nn.Module):
    """A GCM-shaped emulator (2 nlev + 4 -> 2 nlev + 5, nlev = 3) with its
    normalization as buffers, GELU, LayerNorm, SiLU and Dropout."""

    def __init__(self, n_in: int = 10, n_out: int = 11, width: int = 24):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("x_mean", torch.randn(n_in, generator=g) * 50 + 200)
        self.register_buffer("x_std", torch.rand(n_in, generator=g) * 20 + 1)
        self.register_buffer("y_mean", torch.randn(n_out, generator=g) * 1e-5)
        self.register_buffer("y_std", torch.rand(n_out, generator=g) * 1e-5 + 1e-7)
        self.net = nn.Sequential(
            nn.Linear(n_in, width), nn.GELU(), nn.LayerNorm(width),
            nn.Linear(width, width), nn.SiLU(), nn.Dropout(0.1),
            nn.Linear(width, n_out))

    def forward(self, x):
        return self.net((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean


class Residual(nn.Module):
    """BatchNorm1d, Softplus (threshold), Mish, Hardswish, tanh-GELU, a
    residual Add, a Concat, view/flatten and a LogSoftmax head."""

    def __init__(self, n_in: int = 8, width: int = 16):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.bn = nn.BatchNorm1d(width)
        self.block = nn.Sequential(nn.Linear(width, width), nn.Softplus(), nn.Linear(width, width), nn.Mish())
        self.side = nn.Sequential(nn.Linear(n_in, 8), nn.Hardswish(), nn.Linear(8, 8), nn.GELU(approximate="tanh"))
        self.head = nn.Linear(width + 8, 5)
        self.act = nn.LeakyReLU(0.05)

    def forward(self, x):
        h = self.act(self.bn(self.inp(x)))
        h = h + self.block(h)
        both = torch.cat([h, self.side(x)], dim=1)
        both = both.view(both.size(0), 2, -1).flatten(1)
        return torch.log_softmax(self.head(both), dim=-1)


class Activations(nn.Module):
    """The other activations, each on its own Linear, summed."""

    def __init__(self, n_in: int = 6, width: int = 6):
        super().__init__()
        acts = [nn.ELU(0.7), nn.SELU(), nn.CELU(1.3), nn.Softsign(), nn.Tanhshrink(), nn.LogSigmoid(),
                nn.Hardtanh(), nn.ReLU6(), nn.Hardsigmoid(), nn.Sigmoid(), nn.Tanh(), nn.PReLU(width), nn.ReLU()]
        self.branches = nn.ModuleList(nn.Sequential(nn.Linear(n_in, width), a) for a in acts)
        self.out = nn.Linear(width, 3)

    def forward(self, x):
        total = self.branches[0](x)
        for branch in self.branches[1:]:
            total = total + branch(x)
        return self.out(total)


NETWORKS = {"emulator": Emulator, "residual": Residual, "activations": Activations}
EXPORTS = [  # (exporter, opset): TorchScript at the oldest opset supported and at 17; dynamo at 18 and 20
    ("torchscript", 13), ("torchscript", 17), ("dynamo", 18), ("dynamo", 20),
]


def trained(network: nn.Module, n_in: int) -> nn.Module:
    """Non-trivial BatchNorm statistics (a few training steps), then eval()."""
    torch.manual_seed(0)
    network.train()
    with torch.no_grad():
        for _ in range(5):
            network(torch.randn(64, n_in) * 3 + 1)
    return network.eval()


def export(network: nn.Module, x: torch.Tensor, path: Path, exporter: str, opset: int) -> None:
    for old in (path, path.with_name(path.name + ".data")):
        old.unlink(missing_ok=True)
    if exporter == "torchscript":
        torch.onnx.export(network, (x,), path, dynamo=False, opset_version=opset, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    else:
        torch.onnx.export(network, (x,), path, dynamo=True, opset_version=opset, input_names=["x"],
                          output_names=["y"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                          external_data=True)


VERBATIM = "emulator_dynamo_opset18.onnx"
"""The one dynamo export kept byte for byte as the exporter wrote it; the
others lose their nodes' metadata_props (stack traces, class hierarchies:
most of their bytes, nothing of the graph) to keep the test data small."""


def slim(path: Path) -> None:
    """Drop the nodes' metadata_props; weights stay in the external file
    (when any tensor is large enough to be there), which is rewritten."""
    import onnx

    model = onnx.load(path)
    for node in model.graph.node:
        del node.metadata_props[:]
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    large = any(t.ByteSize() > 1024 for t in model.graph.initializer)
    if large:
        onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data.name,
                  size_threshold=1024)
    else:
        onnx.save(model, path)


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    for name, cls in NETWORKS.items():
        torch.manual_seed(0)
        network = cls()
        n_in = network.inp.in_features if hasattr(network, "inp") else next(network.parameters()).shape[1]
        if name == "emulator":
            n_in = 10
        network = trained(network, n_in)
        rng = np.random.default_rng(sum(map(ord, name)))
        x = rng.normal(scale=2.0, size=(37, n_in)).astype(np.float32)
        if name == "emulator":
            x = (x * network.x_std.numpy() + network.x_mean.numpy()).astype(np.float32)
        with torch.no_grad():
            y_torch = network(torch.from_numpy(x)).numpy()
        for exporter, opset in EXPORTS:
            path = HERE / f"{name}_{exporter}_opset{opset}.onnx"
            export(network, torch.from_numpy(x[:2]), path, exporter, opset)
            if exporter == "dynamo" and path.name != VERBATIM:
                slim(path)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            y_ort = session.run(None, {session.get_inputs()[0].name: x})[0]
            np.savez(path.with_suffix(".npz"), x=x, torch=y_torch, onnxruntime=y_ort)
            data = path.with_name(path.name + ".data")
            size = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
            print(f"{path.name}: {size} bytes{' (with .data)' if data.exists() else ''}, "
                  f"max |onnxruntime - torch| {np.max(np.abs(y_ort - y_torch)):.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
