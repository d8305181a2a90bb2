"""Model files: safetensors weights (+ a JSON card beside them) ↔ ready-to-run networks.

A model file holds the network's tensors under ``model.``, optional extra tensors (code
statistics, entropy priors) under their own prefixes, and its architecture and name in the
safetensors metadata, so one file is enough to run it — or, for a model that extends another
(a realism decoder added to a shipped model), only what it adds, with the SHA-256 of the file it
extends in its metadata. The model identifier stored in every .lbae file is the name plus the
first 4 bytes of the SHA-256 of this file: any change of weights, statistics or priors (or of
the file extended, named by its hash) changes it. Loading never executes code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import save
from torch import nn

from . import entropy, extension, prior_tensors, tiling
from .architecture import FIDELITY, REALISM, Architecture, ModelKind, pick_decoder
from .container import Coding, Header
from .deblock import PostFilter
from .errors import InputError, LbaeFormatError, ModelError, printable
from .files import write_atomic
from .images import to_float, to_uint8
from .layout import (  # noqa: F401  (the names other modules import from here)
    ATTRIBUTE_DIRECTION,
    LABEL_MEAN,
    MODEL_PREFIX,
    POSTFILTER_PREFIX,
    REALISM_PREFIX,
    STAGE_NAME,
    STAGE_PREFIX,
    STATS_COUNT,
    STATS_MEAN,
    STATS_MOMENT,
    check_table,
    filter_like,
    postfilter_prefix,
    realism_like,
    stage_numbers,
)
from .network import LBAE, Decoder, build_network, fold_batch_norms
from .precision import AUTO_PRECISION, PRECISIONS, decodes_in_bf16
from .registry import (  # noqa: F401
    DEFAULT_MODEL,
    META_ARCH,
    META_BASE,
    META_KIND,
    META_NAME,
    NAME,
    available,
    card_path,
    check_name,
    find_by_hash,
    model_hash,
    parse_header,
    read_card,
    read_header,
    read_metadata,
    resolve,
    weights_dirs,
    write_card,
)


@dataclass
class Model:
    name: str
    hash: bytes
    net: nn.Module  # an LBAE; a VAE or VQ-VAE for the bench's baselines
    path: Path
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    realism: Decoder | None = None
    postfilter: PostFilter | None = None  # run over fidelity canvases whose last decoded stage is this one
    derived: dict = field(default_factory=dict, repr=False, compare=False)  # e.g. priors, built once
    later_stages: tuple[Model, ...] = ()  # residual stages 2, 3, … (lbaecodec/stages.py), same id
    precision: str = AUTO_PRECISION  # the codec's decoder: PRECISIONS

    @property
    def stage_count(self) -> int:
        return 1 + len(self.later_stages)

    def stage(self, k: int) -> Model:
        """Stage k (1: this model; k ≥ 2: the network and priors coding what stages < k left)."""
        return self if k == 1 else self.later_stages[k - 2]

    @property
    def decoders(self) -> tuple[str, ...]:
        return (FIDELITY, REALISM) if self.realism is not None else (FIDELITY,)

    def with_precision(self, precision: str) -> Model:
        """This model (its residual stages alike) with the codec's decoder in ``precision``."""
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        stages = tuple(replace(s, precision=precision) for s in self.later_stages)
        return replace(self, precision=precision, later_stages=stages)

    def with_decoder(self, decoder: str = FIDELITY) -> LBAE:
        """The network with the named decoder: ``fidelity`` (trained on MSE/BCE alone),
        ``realism`` (adversarially trained, same codes) or ``auto`` (realism if present)."""
        decoder = pick_decoder(decoder, self.decoders, self.id)
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

    # The network step as the codec pipeline calls it (``stages.py``); onnx_runtime.OnnxModel
    # offers the same, so one pipeline serves both runtimes.

    @property
    def tile_batch(self) -> int:
        return tiling.tile_batch(self.device.type)

    def tile_encoder(self, soft: bool = False) -> Callable[[np.ndarray], np.ndarray]:
        """A function: uint8 tiles (n, S, S, C) → their codes (n, bits) of ±1, or with ``soft``
        the encoder's values in (−1, 1) whose signs they are (``rdo``)."""
        encode, device = self.net.encoder if soft else self.net.encode, self.device
        return torch.inference_mode()(lambda tiles: encode(to_float(tiles).to(device)).float().cpu().numpy())

    def tile_decoder(self, decoder: str = FIDELITY) -> Callable[[np.ndarray], np.ndarray]:
        """A function: codes (n, bits) → uint8 tiles (n, S, S, C) through the named decoder."""
        decoder = pick_decoder(decoder, self.decoders, self.id)
        net, device = self.with_decoder(decoder).decoder, self.device
        dtype = torch.bfloat16 if decodes_in_bf16(self.precision, device) else torch.float32
        if dtype == torch.bfloat16:  # float32 stays the reference arithmetic: unfolded
            folded = self.derived.setdefault("bf16_decoders", {})  # built once, not per call
            if (decoder, device) not in folded:
                folded[decoder, device] = fold_batch_norms(net).to(dtype)
            net = folded[decoder, device]

        @torch.inference_mode()
        def run(codes: np.ndarray) -> np.ndarray:  # as net.decode, the sigmoid in float32
            logits = net(torch.from_numpy(codes).to(device, dtype))
            return to_uint8(torch.sigmoid(logits.float()))

        return run

    def prior(self, coding: Coding) -> entropy.Prior | None:
        """The entropy prior this model ships for ``coding``, or None."""
        return prior_tensors.from_tensors(self.extras, coding)


def load_named(name: str, device: str = "auto") -> Model:
    """The installed model of this name: for names read from a file, which may only ever match
    the registry (a path or a file in the current folder is never opened because a file says so)."""
    if not NAME.fullmatch(name) or name.endswith(".safetensors"):
        raise LbaeFormatError(f"the file names its model {printable(name)!r}, which is not a model name")
    models = available()
    if name not in models:
        known = ", ".join(sorted(models)) or "none installed"
        raise ModelError(
            f"the file needs model {name!r}, which is not installed (available: {known}); "
            f"give its weights with --model PATH"
        )
    return load_model(models[name], device)


def load_for(h: Header, device: str = "auto") -> Model:
    """The installed model a file's header names: by name (version 1) or by hash (version 2)."""
    if h.model_name:
        return load_named(h.model_name, device)
    path = find_by_hash(h.model_hash)
    if path is None:
        raise ModelError(
            f"the file needs the model of hash {h.model_hash.hex()}, which is not installed "
            f"(`lbaecodec models` lists the installed ones); give its weights with --model PATH"
        )
    return load_model(path, device)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but no CUDA device is available")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise ModelError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def load_model(
    spec: str | Path | None = None, device: str = "auto", kinds: tuple[ModelKind, ...] = (ModelKind.LBAE,)
) -> Model:
    """Load a model by name (shipped/installed) or by path to its .safetensors file.

    ``kinds``: which networks the caller can use (codec work needs an LBAE; the bench also
    loads the VAE and VQ-VAE baselines)."""
    path = resolve(spec)
    meta = read_header(path)[0]  # kind and architecture checked before the whole file is read
    try:
        kind = ModelKind(meta.get(META_KIND, ModelKind.LBAE))
    except ValueError:
        raise ModelError(f"{path}: unknown model kind {printable(str(meta.get(META_KIND)))!r}") from None
    if kind not in kinds:
        raise ModelError(f"{path}: holds a {kind.label} network, not {' or '.join(k.label for k in kinds)}")
    try:
        arch = Architecture.from_dict(json.loads(meta[META_ARCH]))
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: not a valid lbaecodec model (architecture: {e})") from e
    layers = extension.read_layers(path)
    table = {name: entry for layer, raw in layers for name, entry in parse_header(raw, layer)[1].items()}
    check_table(path, table, kind, arch)
    try:
        tensors = extension.merged(layers)
        net = build_network(kind, arch)
        state = {k[len(MODEL_PREFIX) :]: v.float() for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
        net.load_state_dict(state)
        realism = (
            _optional_part(tensors, REALISM_PREFIX, realism_like(table, arch, path)) if kind == ModelKind.LBAE else None
        )
        postfilter = _optional_part(tensors, POSTFILTER_PREFIX, filter_like(table, POSTFILTER_PREFIX, arch))
        later = [
            (
                _optional_part(tensors, STAGE_PREFIX.format(k) + MODEL_PREFIX, lambda: build_network(kind, arch)),
                _optional_part(tensors, postfilter_prefix(k), filter_like(table, postfilter_prefix(k), arch)),
            )
            for k in stage_numbers(tensors, path)
        ]
    except (KeyError, ValueError, TypeError, RuntimeError, SafetensorError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{path}: not a valid lbaecodec model ({first_line})") from e
    name, digest, where = meta.get(META_NAME, path.stem), model_hash(layers[-1][1]), pick_device(device)
    stages = tuple(
        Model(
            name,
            digest,
            _for_inference(stage_net, where),
            path,
            _extras(tensors, STAGE_PREFIX.format(k)),
            postfilter=_for_inference(stage_post, where),
        )
        for k, (stage_net, stage_post) in enumerate(later, start=2)
    )
    return Model(
        name=name,
        hash=digest,
        net=_for_inference(net, where),
        path=path,
        extras=_extras(tensors),
        card=read_card(card_path(path)),
        realism=_for_inference(realism, where),
        postfilter=_for_inference(postfilter, where),
        later_stages=stages,
    )


def postfilter_tensors(post: PostFilter, stage: int = 1) -> dict[str, torch.Tensor]:
    """The tensors a model file stores for ``post`` as the filter after ``stage`` (float32: it is small)."""
    return {postfilter_prefix(stage) + k: v for k, v in _shipped_state(post, False).items()}


def _extras(tensors: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """The statistics and priors of stage 1 (no ``prefix``) or of a later stage, without networks."""
    if prefix:
        tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    networks = (MODEL_PREFIX, REALISM_PREFIX, POSTFILTER_PREFIX)
    return {
        k: v.float() if v.dtype == torch.float16 else v
        for k, v in tensors.items()
        if not k.startswith(networks) and not STAGE_NAME.match(k)
    }


def _for_inference(net: nn.Module | None, device: torch.device) -> nn.Module | None:
    """Eval mode on ``device``, convolution weights channels_last like the inputs (~15 % faster
    on CPU; ``tiling.in_fixed_batches`` fixes the batch shape the results depend on). None (a
    part the file does not have) stays None."""
    if net is None:
        return None
    return net.eval().to(device).to(memory_format=torch.channels_last)


def _optional_part(tensors: dict[str, torch.Tensor], prefix: str, build: Callable[[], nn.Module]) -> nn.Module | None:
    """The network a model file stores under ``prefix`` (a realism decoder, a seam filter), or None."""
    state = {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
    if not state:
        return None
    part = build()
    part.load_state_dict(state)
    return part


def export(
    net: nn.Module,
    name: str,
    path: Path,
    card: dict | None = None,
    extras: dict[str, torch.Tensor] | None = None,
    half: bool = True,
    realism: Decoder | None = None,
    later_stages: Sequence[tuple[nn.Module, dict[str, torch.Tensor]]] = (),
    extends: Path | None = None,
) -> Path:
    """Write weights (fp16 when ``half``) + extras as safetensors, and the card as JSON;
    ``realism``: a second decoder for the same codes, stored under ``realism.``; seam filters
    go among ``extras`` as ``postfilter_tensors(post, k)`` (float32, after k stages);
    ``later_stages``: (network, its priors) of stages 2, 3, … under ``stage2.``, ``stage3.``, …;
    ``extends``: a model file to store only the differences from (it must stay installed)."""
    check_name(name)
    tensors = {MODEL_PREFIX + k: v for k, v in _shipped_state(net, half).items()}
    for k, (stage_net, stage_extras) in enumerate(later_stages, start=2):
        prefix = STAGE_PREFIX.format(k)
        if stage_net.arch != net.arch:
            raise ValueError(f"stage {k} has another architecture than stage 1")
        tensors.update({prefix + MODEL_PREFIX + n: v for n, v in _shipped_state(stage_net, half).items()})
        tensors.update({prefix + n: v.detach().cpu().contiguous() for n, v in stage_extras.items()})
    if realism is not None:
        tensors.update({REALISM_PREFIX + k: v for k, v in _shipped_state(realism, half).items()})
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extras or {}).items()})
    meta = {META_ARCH: json.dumps(net.arch.to_dict()), META_NAME: name, META_KIND: str(net.kind)}
    if extends is not None:
        extends, extends_raw = extension.read_layers(extends)[0]  # extending an extension extends its base
        tensors = extension.added_to(extends, extends_raw, tensors)
        meta[META_BASE] = hashlib.sha256(extends_raw).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save(tensors, metadata=meta))
    write_card(path, card or {})
    return path


def _shipped_state(net: torch.nn.Module, half: bool) -> dict[str, torch.Tensor]:
    dtype = torch.float16 if half else torch.float32
    return {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in net.state_dict().items()
    }


def as_shipped(net: torch.nn.Module, half: bool = True) -> torch.nn.Module:
    """A CPU copy of ``net`` whose weights went through the shipping dtype, as loading the
    exported file would give (for measuring what users get before the file exists)."""
    copy = build_network(net.kind, net.arch)
    copy.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in _shipped_state(net, half).items()})
    return copy.eval()


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
