"""The model registry, without torch: where model files are looked up, what their headers and
cards say, and which names are valid. Reading a header never loads tensors or runs code; the
command line's `models` and `info` work from here alone."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from importlib import resources
from pathlib import Path

from .errors import InputError, ModelError, printable
from .files import write_atomic

# cifar10's network with its prior refitted (since 0.13): the same pixels in 7 % fewer bits
DEFAULT_MODEL = "cifar10-p2"
META_ARCH, META_NAME, META_KIND = "lbaecodec.arch", "lbaecodec.name", "lbaecodec.kind"
META_BASE = "lbaecodec.base"  # a file that stores only what it adds to another: that file's SHA-256 (hex)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_HEADER = 100_000_000  # bytes of a safetensors JSON header we are willing to parse
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # model names: never a path, safe to print


def model_hash(data: bytes) -> bytes:
    """The 4 bytes that, after the name, identify a model file in every .lbae header."""
    return hashlib.sha256(data).digest()[:4]


def cache_dir() -> Path:
    """Where downloads, dataset arrays, FID statistics and ONNX exports are kept."""
    return Path(os.environ.get("LBAECODEC_CACHE", Path.home() / ".cache" / "lbaecodec"))


def weights_dirs() -> list[Path]:
    """Where shipped and user models are looked up, in order."""
    dirs = []
    if os.environ.get("LBAECODEC_WEIGHTS"):
        dirs.append(Path(os.environ["LBAECODEC_WEIGHTS"]))
    dirs.append(Path(str(resources.files("lbaecodec") / "weights")))  # installed package
    dirs.append(Path(__file__).resolve().parent.parent / "weights")  # source checkout
    return [d for d in dirs if d.is_dir()]


def read_header(path: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """A safetensors file's (metadata, tensor table), without loading tensors."""
    try:
        with open(path, "rb") as f:
            length = f.read(8)
            n = int.from_bytes(length, "little")
            head = f.read(n) if 0 < n < MAX_HEADER else b""
    except OSError as e:
        raise ModelError(f"{path}: not a readable safetensors model ({e})") from e
    return parse_header(length + head, path)


def parse_header(raw: bytes, path: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """(metadata, tensor table) from the start of a safetensors file's bytes; checked to be
    the JSON objects the format says."""
    try:
        n = int.from_bytes(raw[:8], "little")
        if not 0 < n < MAX_HEADER or len(raw) < 8 + n:
            raise ValueError("bad header length")
        header = json.loads(raw[8 : 8 + n])
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("__metadata__ is not an object of strings")
        if not all(isinstance(v, dict) and isinstance(v.get("shape"), list) for v in header.values()):
            raise ValueError("malformed tensor table")
        return meta, header
    except ValueError as e:
        raise ModelError(f"{path}: not a readable safetensors model ({e})") from e


def read_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's metadata, without loading tensors."""
    return read_header(path)[0]


def card_path(weights: Path, card_dir: Path | None = None) -> Path:
    """The JSON card of a weights file: beside it, or under the same name in ``card_dir``."""
    return (card_dir / weights.name if card_dir else weights).with_suffix(".json")


def available() -> dict[str, Path]:
    """Model name → weights file, over every weights directory (earlier ones win)."""
    found: dict[str, Path] = {}
    for d in weights_dirs():
        for p in sorted(d.glob("*.safetensors")):
            try:
                name = read_metadata(p).get(META_NAME)
            except ModelError as e:  # one broken file must not hide the others
                warnings.warn(f"skipping {printable(str(e))}")
                continue
            if name and name not in found:
                found[name] = p
    return found


def find_by_hash(digest: bytes) -> Path | None:
    """The installed model file whose hash begins with ``digest`` (the 4 bytes a version-2 file
    names its model by), or None. Cards name their file's hash, so a lookup hashes only files
    without one; ``zoo.load_model`` checks the hash of the file it loads."""
    unsure = []
    for name, path in available().items():
        model_id = read_card(card_path(path)).get("model_id")
        if model_id == f"{name}@{digest.hex()}":
            return path
        if not isinstance(model_id, str) or not model_id.startswith(f"{name}@"):
            unsure.append(path)
    return next((p for p in unsure if model_hash(p.read_bytes()) == digest), None)


def find_base(sha256_hex: str, beside: Path) -> tuple[Path, bytes] | None:
    """The model file whose whole SHA-256 is ``sha256_hex``, with the bytes that hashed so: an
    installed one, or one in the folder ``beside`` (where a model and the file it extends may be
    kept together), or None."""
    digest = bytes.fromhex(sha256_hex)
    for path in [find_by_hash(digest[:4]), *sorted(beside.glob("*.safetensors"))]:
        raw = path.read_bytes() if path is not None else b""
        if raw and hashlib.sha256(raw).digest() == digest:
            return path, raw
    return None


def resolve(spec: str | Path | None) -> Path:
    """A model name or a path to a .safetensors file → the file."""
    spec = str(spec or DEFAULT_MODEL)
    if spec.endswith(".safetensors") or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise ModelError(f"model file {path} not found")
        return path
    models = available()
    if spec not in models:
        known = ", ".join(sorted(models)) or "none installed"
        raise ModelError(f"unknown model {spec!r} (available: {known})")
    return models[spec]


def check_name(name: str) -> None:
    """Model names are 1-64 of a-z 0-9 . _ - : never a path, always printable."""
    if not NAME.fullmatch(name):
        raise InputError(f"model name {printable(name)!r}: use 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")


def read_card(path: Path) -> dict:
    """A model card, or {} with a warning when it is missing parts or broken: a bad card never
    stops a model from decoding."""
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(card, dict):
            raise ValueError("not a JSON object")
        return card
    except (OSError, ValueError) as e:
        warnings.warn(f"{path}: unreadable model card, ignored ({printable(str(e))})")
        return {}


def write_card(weights: Path, card: dict, card_dir: Path | None = None) -> Path:
    """Write the JSON card of a weights file (beside it, or into ``card_dir``); name, file,
    architecture and id are filled in."""
    meta = read_metadata(weights)
    name = meta[META_NAME]
    full = {"name": name, "file": weights.name, "architecture": json.loads(meta[META_ARCH]), **card}
    full["model_id"] = f"{name}@{model_hash(weights.read_bytes()).hex()}"
    path = card_path(weights, card_dir)
    return write_atomic(path, json.dumps(full, indent=2) + "\n")  # never half a card
