"""The network step on ONNX Runtime instead of torch: `lbaecodec encode|decode --runtime onnx`.

Reads a folder written by `lbaecodec export-onnx` (``model.json``, the encoder and decoder
graphs, the priors as raw integers) as an ``OnnxModel``, which the codec pipeline (``codec.py``)
runs like a torch model. Imports neither torch nor the model zoo, so it starts fast; the bits are
the torch encoder's but for latents within ~1e-6 of zero, the pixels the torch decoder's within
1/255 (float rounding differs between runtimes). Needs the ``onnx`` extra.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import codec, container, entropy
from .architecture import DECODERS, FIDELITY, pick_decoder
from .container import Coding
from .errors import InputError, ModelError, require, value_or_raise
from .fileinfo import PILLOW_LIMIT, check_header, pixel_limit
from .hidden_prior import HiddenPrior
from .prior_tensors import ARRAY_TYPES
from .registry import META_NAME, cache_dir, model_hash, read_metadata, resolve

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


@dataclass(frozen=True)
class TileFormat:
    size: int  # tile side in pixels
    channels: int
    bits: int


@dataclass
class OnnxModel:
    """A model's ONNX export, offering the codec pipeline the same network step as a torch
    ``zoo.Model`` (``stages.TileNetwork``): one stage, no seam filter (export refuses both)."""

    folder: Path
    manifest: dict
    sessions: dict = field(default_factory=dict)  # "encoder" or a decoder name → InferenceSession
    derived: dict = field(default_factory=dict)
    postfilter: None = None
    stage_count: int = 1

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
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def hash(self) -> bytes:
        return bytes.fromhex(self.manifest["hash"])

    @property
    def id(self) -> str:
        return self.manifest["model_id"]

    @property
    def arch(self) -> TileFormat:
        m = self.manifest
        return TileFormat(m["tile"], m["channels"], m["bits"])

    @property
    def decoders(self) -> tuple[str, ...]:
        return tuple(d for d in DECODERS if d in self.manifest["decoders"])

    def stage(self, k: int) -> OnnxModel:
        return self

    tile_batch = 8  # not tiling.TILE_BATCH: batches of 64 run no faster here (session 16); one tile pays for 8

    def tile_encoder(self, soft: bool = False) -> Callable[[np.ndarray], np.ndarray]:
        output = "values" if soft else "codes"
        graph = "encoder_values" if soft and "encoder_values" in self.manifest else "encoder"  # 0.10: two files
        session = self._session(graph, self.manifest[graph])
        if output not in {o.name for o in session.get_outputs()}:  # exports before lbaecodec 0.10
            raise InputError(
                f"--rdo needs the encoder's values before the sign: re-export {self.folder} with export-onnx"
            )

        def run(tiles: np.ndarray) -> np.ndarray:  # as images.to_float: channels first, x / 255 in float32
            pixels = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2), np.float32) / np.float32(255)
            return session.run([output], {"pixels": pixels})[0]

        return run

    def tile_decoder(self, decoder: str = FIDELITY) -> Callable[[np.ndarray], np.ndarray]:
        name = pick_decoder(decoder, self.decoders, f"{self.id} (ONNX export)")
        session = self._session(name, self.manifest["decoders"][name])

        def run(codes: np.ndarray) -> np.ndarray:  # as images.to_uint8
            pixels = session.run(None, {"codes": np.ascontiguousarray(codes, np.float32)})[0]
            return np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)

        return run

    def with_precision(self, precision: str) -> OnnxModel:
        check_precision(precision)
        return self

    def prior(self, coding: Coding) -> entropy.Prior | None:
        entry = self.manifest["priors"].get(coding.label)
        if entry is None:
            return None
        arrays = {name: self._array(e) for name, e in entry.items()}
        if set(arrays) not in ({"bias"}, {"bias", "weight"}, set(ARRAY_TYPES)):
            raise ModelError(f"{self.folder / MANIFEST}: a {coding.label} prior of arrays {sorted(arrays)}")
        return (HiddenPrior if "outer" in arrays else entropy.Prior)(**arrays)

    def _array(self, entry: dict) -> np.ndarray:
        raw = (self.folder / entry["file"]).read_bytes()
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise ModelError(f"{self.folder / entry['file']}: does not match its checksum in {MANIFEST}")
        return np.frombuffer(raw, entry["dtype"]).reshape(entry["shape"])

    def _session(self, key: str, file: str):
        if key not in self.sessions:
            ort = require("onnxruntime", "onnx", "The ONNX runtime (--runtime onnx)")
            options = ort.SessionOptions()
            options.intra_op_num_threads = _threads()
            self.sessions[key] = ort.InferenceSession(
                str(self.folder / file), options, providers=["CPUExecutionProvider"]
            )
        return self.sessions[key]


def check_precision(precision: str) -> None:
    """ONNX Runtime decodes in fp32 (``auto`` means that here); bf16 is refused."""
    if precision == "bf16":
        raise InputError("--precision bf16 is for the torch runtime; ONNX Runtime decodes in fp32")


def _threads() -> int:
    """ONNX Runtime's threads: OMP_NUM_THREADS where it is set (``batch`` sets it for each of
    ``--workers``), else the CPUs this process may use."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0]
    return int(value) if value.isdigit() and int(value) > 0 else len(os.sched_getaffinity(0))


def load_installed(spec: str | None) -> OnnxModel:
    """The export of a model named as ``--model`` names it (default: cifar10), from the folder
    export-onnx puts it in; its file is hashed, not loaded (no torch)."""
    path = resolve(spec)
    name = read_metadata(path).get(META_NAME, path.stem)
    folder = default_folder(name, model_hash(path.read_bytes()))
    if not (folder / MANIFEST).is_file():
        raise ModelError(f"model {name} has no ONNX export yet: run `lbaecodec export-onnx {spec or name}` first")
    return OnnxModel.load(folder)


def load_for(h: container.Header, folder: Path | None = None) -> OnnxModel:
    """The ONNX export a file's header names (``folder``, or where export-onnx puts it)."""
    if h.stages > 1:
        raise InputError(f"the file holds {h.stages} residual stages; the ONNX runtime decodes one: use torch")
    return OnnxModel.load(folder if folder is not None else folder_for(h))


def decode(
    data: bytes, folder: Path | None = None, decoder: str = FIDELITY, max_pixels: int | None = PILLOW_LIMIT
) -> Image.Image:
    """The bytes of a .lbae file → a PIL image, through the ONNX export in ``folder`` (default:
    the one `export-onnx` writes for the file's model)."""
    h, payload = container.read(data)
    check_header(h, payload, pixel_limit(max_pixels))
    return value_or_raise(codec.decode_many([data], load_for(h, folder), decoder, max_pixels)[0])
