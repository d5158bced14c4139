"""Train a PyTorch emulator on `fkb data` output and export it to ONNX
(docs/pytorch.md). Needs torch and onnxscript (for dynamo=True) besides fkb:

    python docs/pytorch/train_torch.py data/training.nc emulator.onnx

The network takes and returns physical units: the normalization of its
inputs and outputs is part of the module (buffers), which fkb's importer
turns into the model file's input and output normalization.
"""
import sys

import numpy as np
import torch
import xarray as xr
from torch import nn

from emulators.data import compute_normalization
from emulators.interface import Layout


class Emulator(nn.Module):
    def __init__(self, n_in, n_out, x_offset, x_scale, y_offset, y_scale, width=128):
        super().__init__()
        for name, value in (("x_offset", x_offset), ("x_scale", x_scale), ("y_offset", y_offset),
                            ("y_scale", y_scale)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(n_in, width), nn.GELU(), nn.LayerNorm(width),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(), nn.Dropout(0.05),
            nn.Linear(width, n_out))

    def normalized(self, x):             # what training fits: normalized in, normalized out
        return self.net((x - self.x_offset) / self.x_scale)

    def forward(self, x):                # what the GCM calls: physical in, physical out
        return self.normalized(x) * self.y_scale + self.y_offset


def main(data_path: str, onnx_path: str, epochs: int = 20) -> None:
    torch.manual_seed(0)
    ds = xr.open_dataset(data_path)
    layout = Layout(nlev=ds.sizes["lev"])       # the GCM's interface: T, Q, PS, SOLIN, SHFLX, LHFLX -> ...
    x = layout.stack_inputs(ds).astype(np.float32)   # (samples, 2 nlev + 4), physical units
    y = layout.stack_outputs(ds).astype(np.float32)  # (samples, 2 nlev + 5)
    stats = compute_normalization(ds, layout)         # the case study's normalization, one pass
    (x_offset, x_scale), (y_offset, y_scale) = stats.model_file_arrays()
    model = Emulator(x.shape[1], y.shape[1], x_offset, x_scale, y_offset, y_scale)

    n = len(x)
    order = np.random.default_rng(0).permutation(n)
    train, valid = order[: int(0.9 * n)], order[int(0.9 * n):]
    xt, yt = torch.from_numpy(x), torch.from_numpy((y - y_offset) / y_scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        model.train()
        for batch in torch.from_numpy(train).split(512):
            batch = batch[torch.randperm(len(batch))]
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model.normalized(xt[batch]), yt[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val = nn.functional.mse_loss(model.normalized(xt[valid]), yt[valid]).item()
        print(f"epoch {epoch + 1:3d}  loss {loss.item():.4f}  val_loss {val:.4f}")

    model.eval()
    torch.onnx.export(model, (xt[:2],), onnx_path, dynamo=True, input_names=["x"], output_names=["y"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    print(f"wrote {onnx_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
