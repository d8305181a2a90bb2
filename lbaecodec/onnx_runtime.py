"""Decoding .lbae files with ONNX Runtime instead of torch: `lbaecodec decode --runtime onnx`.

Reads a folder written by `lbaecodec export-onnx` (``model.json``, the decoder graphs, the priors
as raw integers). Imports neither torch nor the model zoo, so it starts fast; the pixels are the
torch decoder's within 1/255 (float rounding differs between runtimes). Needs the ``onnx`` extra.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import container, entropy, quality
from .architecture import DECODERS, FIDELITY, pick_decoder
from .container import Coding
from .errors import InputError, ModelError, require
from .fileinfo import PILLOW_LIMIT, bind_model, check_header, check_payload_length, pixel_limit
from .registry import cache_dir
from .tiling import Canvas, in_fixed_batches

MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION = "model.json", "lbaecodec-onnx", 1


def default_folder(name: str, model_hash: bytes) -> Path:
    """Where `export-onnx` puts a model's files by default, and `decode --runtime onnx` looks."""
    return cache_dir() / "onnx" / f"{name}@{model_hash.hex()}"


def folder_for(h: container.Header) -> Path:
    """The default export folder of the model a file names (by hash alone in version 2)."""
    if h.model_name:
        return default_folder(h.model_name, h.model_hash)
    found = sorted((cache_dir() / "onnx").glob(f"*@{h.model_hash.hex()}"))
    return found[0] if found else default_folder("MODEL", h.model_hash)


@dataclass
class OnnxModel:
    folder: Path
    manifest: dict
    sessions: dict = field(default_factory=dict)  # decoder name → onnxruntime.InferenceSession

    @classmethod
    def load(cls, folder: Path) -> OnnxModel:
        path = Path(folder) / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{folder}: no ONNX export here (run `lbaecodec export-onnx MODEL {folder}`)") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"{path}: unreadable ONNX manifest ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ModelError(f"{path}: not an lbaecodec ONNX manifest")
        if manifest.get("version") != MANIFEST_VERSION:
            raise ModelError(f"{path}: ONNX manifest version {manifest.get('version')!r} is not supported")
        return cls(Path(folder), manifest)

    @property
    def hash(self) -> bytes:
        return bytes.fromhex(self.manifest["hash"])

    def check_fits(self, h: container.Header) -> container.Header:
        m = self.manifest
        return bind_model(h, m["name"], self.hash, m["tile"], m["bits"])

    def prior(self, coding: Coding) -> entropy.Prior:
        entry = self.manifest["priors"].get(coding.label)
        if entry is None:
            raise ModelError(f"the ONNX export of {self.manifest['model_id']} has no {coding.label} prior")
        weight = self._array(entry["weight"]) if "weight" in entry else None
        return entropy.Prior(self._array(entry["bias"]), weight)

    def _array(self, entry: dict) -> np.ndarray:
        raw = (self.folder / entry["file"]).read_bytes()
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise ModelError(f"{self.folder / entry['file']}: does not match its checksum in {MANIFEST}")
        return np.frombuffer(raw, entry["dtype"]).reshape(entry["shape"])

    def session(self, decoder: str):
        decoders = self.manifest["decoders"]
        available = tuple(d for d in DECODERS if d in decoders)
        name = pick_decoder(decoder, available, f"{self.manifest['model_id']} (ONNX export)")
        if name not in self.sessions:
            ort = require("onnxruntime", "onnx", "Decoding with --runtime onnx")
            self.sessions[name] = ort.InferenceSession(
                str(self.folder / decoders[name]), providers=["CPUExecutionProvider"]
            )
        return self.sessions[name]


def decode(
    data: bytes, folder: Path | None = None, decoder: str = FIDELITY, max_pixels: int | None = PILLOW_LIMIT
) -> Image.Image:
    """The bytes of a .lbae file → a PIL image, through the ONNX export in ``folder`` (default:
    the one `export-onnx` writes for the file's model)."""
    h, payloads = container.read_stages(data)
    if len(payloads) > 1:
        raise InputError(f"the file holds {len(payloads)} residual stages; the ONNX runtime decodes one: use torch")
    payload = payloads[0]
    check_header(h, payload, pixel_limit(max_pixels))
    model = OnnxModel.load(folder if folder is not None else folder_for(h))
    h = model.check_fits(h)
    check_payload_length(h, payload)
    session = model.session(decoder)  # a missing decoder or onnxruntime fails before any work
    codes = entropy.payload_codes(h, payload, None if h.coding == Coding.RAW else model.prior(h.coding))
    canvas = Canvas(h.grid, model.manifest["channels"])

    def run(batch: np.ndarray) -> np.ndarray:
        pixels = session.run(None, {"codes": batch})[0]
        return np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)

    for tiles in in_fixed_batches([np.asarray(codes, np.float32)], run):
        canvas.add(tiles)
    return quality.resample(canvas.image(container.MODES[h.mode]), (h.width, h.height))
