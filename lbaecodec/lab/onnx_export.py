"""A model as ONNX files plus what a foreign decoder needs: `lbaecodec export-onnx MODEL DIR`.

DIR gets ``encoder.onnx`` (pixels float32 (N, C, S, S) in [0, 1] → output ``codes``, float32
(N, bits) of ±1, and output ``values``, the values in (−1, 1) whose signs the codes are, for
``encode --rdo``; exports of lbaecodec 0.10 wrote ``values`` as a second graph,
``encoder-values.onnx``, with the encoder's weights twice), ``decoder-fidelity.onnx`` and, where the model
has one, ``decoder-realism.onnx`` (codes → pixels in [0, 1]; round(255·x) gives the 8-bit
values), the entropy priors and the coder's probability table as raw little-endian integer
files, and ``model.json`` describing all of it (tile size, channels, bits, the model id a .lbae
header must name, file names, dtypes, shapes).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import entropy, prior_tensors
from ..container import Coding
from ..errors import ModelError, require
from ..files import atomic_path, write_atomic
from ..onnx_runtime import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, default_folder
from ..zoo import FIDELITY, Model

OPSET = 17


class _Encoder(torch.nn.Module):
    def __init__(self, model: Model) -> None:
        super().__init__()
        self.encoder = model.net.encoder

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.encoder(pixels)
        return torch.where(values >= 0, 1.0, -1.0), values


class _Decoder(torch.nn.Module):
    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(codes))


def export_onnx(model: Model, folder: Path | None = None) -> Path:
    """Write ``model``'s ONNX files, priors and manifest into ``folder`` (default: the folder
    ``lbaecodec decode --runtime onnx`` looks in for this model)."""
    require("onnx", "onnx", "ONNX export")  # torch's exporter writes through it
    if model.postfilter is not None:
        raise ModelError(f"model {model.id} has a seam post-filter, which the ONNX export does not carry yet")
    if model.later_stages:
        raise ModelError(f"model {model.id} has residual stages, which the ONNX export does not carry yet")
    folder = Path(folder) if folder is not None else default_folder(model.name, model.hash)
    folder.mkdir(parents=True, exist_ok=True)
    arch = model.arch
    pixels = torch.rand(2, arch.channels, arch.size, arch.size)
    _write_onnx(_Encoder(model), pixels, folder / "encoder.onnx", "pixels", ("codes", "values"))
    decoders = {}
    for name in model.decoders:
        decoders[name] = f"decoder-{name}.onnx"
        network = model.net if name == FIDELITY else model.with_decoder(name)
        _write_onnx(_Decoder(network.decoder), torch.ones(2, arch.bits), folder / decoders[name], "codes", ("pixels",))
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "model_id": model.id,
        "name": model.name,
        "hash": model.hash.hex(),
        "tile": arch.size,
        "channels": arch.channels,
        "bits": arch.bits,
        "encoder": "encoder.onnx",
        "decoders": decoders,
        "priors": _write_priors(model, folder),
        "probabilities": _write_array(folder, "probabilities.u32", entropy.probability_table(), "<u4"),
        "spec": "docs/FORMAT.md of lbaecodec: the .lbae container, the priors and the range coder",
    }
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return folder


def _write_onnx(
    module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str, output_names: tuple[str, ...]
) -> None:
    """The TorchScript-based exporter, deliberately: it takes a second where torch.export's takes
    ~15 (measured here) and needs no onnxscript, for the same plain convolutional graph."""
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module.eval(),
            (example,),
            str(tmp),
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes={name: {0: "n"} for name in (input_name, *output_names)},
            opset_version=OPSET,
            dynamo=False,
        )


def _write_priors(model: Model, folder: Path) -> dict:
    out = {}
    for coding in (Coding.FACTORIZED, Coding.CONTEXT, Coding.HIDDEN):
        prior = prior_tensors.from_tensors(model.extras, coding)
        if prior is None:
            continue
        out[coding.label] = {name: _write_prior_array(folder, coding, name, a) for name, a in prior.arrays().items()}
    return out


def _write_prior_array(folder: Path, coding: Coding, name: str, array: np.ndarray) -> dict:
    """One of a prior's integer arrays, little-endian, in the integer type its model tensor has."""
    dtype = np.dtype(prior_tensors.ARRAY_TYPES[name])
    file = f"prior-{coding.label}-{name}.i{8 * dtype.itemsize}"
    return _write_array(folder, file, array, dtype.newbyteorder("<").str)


def _write_array(folder: Path, name: str, array: np.ndarray, dtype: str) -> dict:
    raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
    write_atomic(folder / name, raw)
    return {"file": name, "dtype": dtype, "shape": list(np.shape(array)), "sha256": hashlib.sha256(raw).hexdigest()}
