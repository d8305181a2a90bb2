"""Model files: safetensors weights (+ a JSON card beside them) ↔ ready-to-run networks.

A model file holds the network's tensors under ``model.``, optional extra tensors (code
statistics, entropy priors) under their own prefixes, and its architecture and name in the
safetensors metadata, so one file is enough to run it. The model identifier stored in every
.lbae file is the name plus the first 4 bytes of the SHA-256 of this file: any change of
weights, statistics or priors changes it. Loading never executes code.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from .errors import InputError, LbaeFormatError, ModelError, printable
from .baselines import build
from .network import LBAE, Architecture, Decoder

DEFAULT_MODEL = "cifar10"
META_ARCH, META_NAME, META_KIND = "lbaecodec.arch", "lbaecodec.name", "lbaecodec.kind"
MODEL_PREFIX = "model."
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # model names: never a path, safe to print
FIDELITY, REALISM, AUTO = "fidelity", "realism", "auto"
DECODERS = (FIDELITY, REALISM)  # AUTO: realism where the model has one, else fidelity
REALISM_PREFIX = REALISM + "."  # the realism decoder's tensors (the fidelity one is model.decoder)


@dataclass
class Model:
    name: str
    hash: bytes
    net: LBAE
    path: Path
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    realism: Decoder | None = None

    @property
    def decoders(self) -> tuple[str, ...]:
        return (FIDELITY, REALISM) if self.realism is not None else (FIDELITY,)

    def with_decoder(self, decoder: str = FIDELITY) -> LBAE:
        """The network with the named decoder: ``fidelity`` (trained on MSE/BCE alone),
        ``realism`` (adversarially trained, same codes) or ``auto`` (realism if present)."""
        decoder = self.decoders[-1] if decoder == AUTO else decoder
        if decoder not in DECODERS:
            raise InputError(f"unknown decoder {decoder!r}; choose from {', '.join((*DECODERS, AUTO))}")
        if decoder not in self.decoders:
            raise ModelError(f"model {self.id} has no {decoder} decoder (it has: {', '.join(self.decoders)})")
        return self.net if decoder == FIDELITY else self.net.with_decoder(self.realism)

    @property
    def arch(self) -> Architecture:
        return self.net.arch

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def id(self) -> str:
        return f"{self.name}@{self.hash.hex()}"


def weights_dirs() -> list[Path]:
    """Where shipped and user models are looked up, in order."""
    dirs = []
    if os.environ.get("LBAECODEC_WEIGHTS"):
        dirs.append(Path(os.environ["LBAECODEC_WEIGHTS"]))
    dirs.append(Path(str(resources.files("lbaecodec") / "weights")))  # installed package
    dirs.append(Path(__file__).resolve().parent.parent / "weights")  # source checkout
    return [d for d in dirs if d.is_dir()]


def read_header(path: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """A safetensors file's (metadata, tensor table), without loading tensors; checked to be
    the JSON objects the format says."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("__metadata__ is not an object of strings")
        if not all(isinstance(v, dict) and isinstance(v.get("shape"), list) for v in header.values()):
            raise ValueError("malformed tensor table")
        return meta, header
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable safetensors model ({e})") from e


def read_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's metadata, without loading tensors."""
    return read_header(path)[0]


def _check_table(path: Path, table: dict[str, dict], kind: str, arch: Architecture) -> None:
    """Every network tensor the architecture implies is in the file with its shape: checked on
    a skeleton on the meta device, before any real allocation."""
    with torch.device("meta"):
        expected = {MODEL_PREFIX + k: list(v.shape) for k, v in build(kind, arch).state_dict().items()}
        if any(k.startswith(REALISM_PREFIX) for k in table):
            expected.update({REALISM_PREFIX + k: list(v.shape) for k, v in Decoder(arch).state_dict().items()})
    for name, shape in expected.items():
        if name not in table or table[name]["shape"] != shape:
            found = table[name]["shape"] if name in table else "missing"
            raise ModelError(f"{path}: not a valid lbaecodec model (tensor {name}: {found}, "
                             f"the architecture needs {shape})")


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


def load_named(name: str, device: str = "auto") -> Model:
    """The installed model of this name: for names read from a file, which may only ever match
    the registry (a path or a file in the current folder is never opened because a file says so)."""
    if not NAME.fullmatch(name) or name.endswith(".safetensors"):
        raise LbaeFormatError(f"the file names its model {printable(name)!r}, which is not a model name")
    models = available()
    if name not in models:
        known = ", ".join(sorted(models)) or "none installed"
        raise ModelError(f"the file needs model {name!r}, which is not installed (available: {known}); "
                         f"give its weights with --model PATH")
    return load_model(models[name], device)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but no CUDA device is available")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise ModelError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def load_model(spec: str | Path | None = None, device: str = "auto", kinds: tuple[str, ...] = ("lbae",)) -> Model:
    """Load a model by name (shipped/installed) or by path to its .safetensors file.

    ``kinds``: which networks the caller can use (codec work needs an LBAE; the bench also
    loads the VAE and VQ-VAE baselines)."""
    path = resolve(spec)
    meta, table = read_header(path)
    kind = meta.get(META_KIND, "lbae")
    if kind not in kinds:
        raise ModelError(f"{path}: a {kind} baseline, not an LBAE codec model")
    try:
        arch = Architecture.from_dict(json.loads(meta[META_ARCH]))
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: not a valid lbaecodec model (architecture: {e})") from e
    _check_table(path, table, kind, arch)
    raw = path.read_bytes()
    try:
        tensors = load(raw)
        net = build(kind, arch)
        state = {k[len(MODEL_PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
        net.load_state_dict(state)
        realism = _realism_decoder(arch, tensors) if kind == "lbae" else None
    except (KeyError, ValueError, TypeError, RuntimeError, SafetensorError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{path}: not a valid lbaecodec model ({first_line})") from e
    card = card_path(path)
    model = Model(
        name=meta.get(META_NAME, path.stem),
        hash=hashlib.sha256(raw).digest()[:4],
        net=net.eval().to(pick_device(device)),
        path=path,
        extras={k: v.float() if v.dtype == torch.float16 else v
                for k, v in tensors.items() if not k.startswith((MODEL_PREFIX, REALISM_PREFIX))},
        card=read_card(card),
        realism=realism.eval().to(pick_device(device)) if realism is not None else None,
    )
    return model


def _realism_decoder(arch: Architecture, tensors: dict[str, torch.Tensor]) -> Decoder | None:
    state = {k[len(REALISM_PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(REALISM_PREFIX)}
    if not state:
        return None
    decoder = Decoder(arch)
    decoder.load_state_dict(state)
    return decoder


def export(
    net: LBAE,
    name: str,
    path: Path,
    card: dict | None = None,
    extras: dict[str, torch.Tensor] | None = None,
    half: bool = True,
    realism: Decoder | None = None,
) -> Path:
    """Write weights (fp16 when ``half``) + extras as safetensors, and the card as JSON;
    ``realism``: a second decoder for the same codes, stored under ``realism.``."""
    check_name(name)
    tensors = {MODEL_PREFIX + k: v for k, v in _shipped_state(net, half).items()}
    if realism is not None:
        tensors.update({REALISM_PREFIX + k: v for k, v in _shipped_state(realism, half).items()})
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extras or {}).items()})
    meta = {META_ARCH: json.dumps(net.arch.to_dict()), META_NAME: name, META_KIND: net.kind}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(save(tensors, metadata=meta))
    tmp.replace(path)
    write_card(path, card or {})
    return path


def _shipped_state(net: torch.nn.Module, half: bool) -> dict[str, torch.Tensor]:
    dtype = torch.float16 if half else torch.float32
    return {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in net.state_dict().items()}


def as_shipped(net: torch.nn.Module, half: bool = True) -> torch.nn.Module:
    """A CPU copy of ``net`` whose weights went through the shipping dtype, as loading the
    exported file would give (for measuring what users get before the file exists)."""
    copy = build(net.kind, net.arch)
    copy.load_state_dict({k: v.float() if v.is_floating_point() else v
                          for k, v in _shipped_state(net, half).items()})
    return copy.eval()


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
    full["model_id"] = f"{name}@{hashlib.sha256(weights.read_bytes()).digest()[:4].hex()}"
    path = card_path(weights, card_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(full, indent=2) + "\n")
    tmp.replace(path)  # a failed write leaves the old card, never half a new one
    return path


def update_card(m: Model, entries: dict, card_dir: Path | None = None) -> Path:
    """Add measured figures to a model's card: the one beside its weights file, or the one in
    ``card_dir`` (e.g. a source checkout's weights/ when the model was loaded from an installed
    package), which starts from the card beside the weights when it does not exist yet."""
    target = card_path(m.path, card_dir)
    source = target if target.is_file() else card_path(m.path)
    card = json.loads(source.read_text()) if source.is_file() else {}
    if card.get("model_id", m.id) != m.id:
        raise ModelError(f"{source} describes {card['model_id']}, not {m.id}")
    return write_card(m.path, {**card, **entries}, card_dir)
