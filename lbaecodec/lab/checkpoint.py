"""Training checkpoints: the run's recipe and progress, and the saved state a run resumes from.

A checkpoint is a safetensors file (network, discriminator, the realism decoder's moving average
and Adam states under their prefixes) plus a JSON file (architecture, recipe, progress): nothing
is pickled, as in shipped models. With a moving average the best checkpoint's network holds the
averaged decoder (what is evaluated and shipped), the last one the trained decoder and the average.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file, save

from ..architecture import FIDELITY, Architecture, ModelKind
from ..files import write_atomic
from ..network import build_network
from ..zoo import MODEL_PREFIX, load_model
from . import adversarial

CHECKPOINT = "last"
BEST = "best"
DISC_PREFIX = "disc."
OPTIM_PREFIX, DISC_OPTIM_PREFIX = "optim.", "optim_d."
EMA_PREFIX = "ema."
RATE_PREFIX = "rate."


@dataclass
class Recipe:
    epochs: int = 30  # 0: chosen after the second epoch so that the run fits budget_minutes
    batch: int = 128
    lr: float = 1e-3
    final_lr_fraction: float = 0.01  # cosine decay from lr to lr * this
    hflip: bool = True
    shift: int = 0  # each training image moved by up to this many pixels (augmentation)
    seed: int = 0
    stage: str = "fidelity"
    budget_minutes: float = 0.0
    bf16: bool = False  # autocast on CUDA
    compile: bool = False
    # realism stage
    adv_weight: float = 0.5  # λ on the adversarial loss: times VQGAN's adaptive balance, or alone
    adaptive: bool = True  # False: a fixed λ (cheaper: no second pass through the decoder)
    disc_width: int = 64
    disc_depth: int = 2  # stride-2 convolutions in the discriminator (its patches' size)
    disc_scales: int = 1  # discriminators, each on the image downscaled once more than the last
    disc_lr: float = 2e-4
    disc_warmup_steps: int = 200  # discriminator trains alone first: its first verdicts are noise
    disc_norm: str = "spectral"  # runs from before the option had spectral norm (lab/adversarial.py)
    r1_gamma: float = 0.0  # γ of an R1 penalty on the discriminator (0: none)
    disc_augment: tuple[str, ...] = ()  # DiffAugment policy parts for what the discriminator sees
    feature_match: float = 0.0  # weight of a feature-matching loss on the discriminator's activations (0: none)
    ema: float = 0.0  # decay of a moving average of the realism decoder's weights, evaluated and shipped (0: none)
    rec_scale: int = 1  # the realism decoder's reconstruction loss on images average-pooled by this factor
    perceptual: float = 0.0  # weight of a shift-tolerant LPIPS term in the realism decoder's reconstruction loss
    perceptual_net: str = "alex"  # that LPIPS's trunk: alex or vgg
    sample_adv: float = 0.0  # adversarial weight on decoded "cov" samples, against the reconstructions' (0: none)
    # fidelity stage
    rate: float = 0.0  # weight of the codes' bits per image value under a learned prior (lab/rate.py; 0: none)

    def __post_init__(self) -> None:
        self.disc_augment = tuple(self.disc_augment)  # a checkpoint's JSON gives a list


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step: int = 0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0  # wall time of epochs run on a CUDA device
    device: str = "cpu"
    best_score: float = math.inf  # validation loss (fidelity) or validation FID (realism)
    best_metric: str = "val_loss"
    best_epoch: int = 0
    train_images: int = 0  # trained on (the validation images excluded)
    val_images: int = 0
    world_size: int = 1  # processes the last epochs ran on (torchrun)
    history: list[dict] = field(default_factory=list)
    # when started from shipped weights: that model's id, epochs and CPU time
    init_from: str = ""
    init_epochs: int = 0
    init_cpu_seconds: float = 0.0

    @property
    def total_epochs(self) -> int:
        return self.init_epochs + self.epoch

    @property
    def total_cpu_hours(self) -> float:
        return (self.init_cpu_seconds + self.cpu_seconds) / 3600

    @classmethod
    def from_dict(cls, d: dict) -> Progress:
        d = dict(d)
        if "best_test_loss" in d:  # runs before validation splits selected on the test loss
            d["best_score"] = d.pop("best_test_loss")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Checkpoint:
    arch: Architecture
    model: torch.nn.Module
    optim: dict[str, torch.Tensor]
    recipe: Recipe
    progress: Progress
    disc: adversarial.Discriminator | None = None
    disc_optim: dict[str, torch.Tensor] = field(default_factory=dict)
    ema: dict[str, torch.Tensor] = field(default_factory=dict)  # the moving average's state
    rate: dict[str, torch.Tensor] = field(default_factory=dict)  # the rate term's prior and optimiser


def discriminator(channels: int, recipe: Recipe) -> adversarial.Discriminator:
    """A new discriminator as the recipe builds it."""
    shape = (channels, recipe.disc_width, recipe.disc_norm, recipe.disc_depth)
    if recipe.disc_scales == 1:  # its tensors keep the names of runs from before multi-scale
        return adversarial.PatchDiscriminator(*shape)
    return adversarial.MultiScaleDiscriminator(*shape, recipe.disc_scales)


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"{prefix}{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    return out


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def prefixed(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


class SavesTensors(Protocol):
    """What a checkpoint needs of an extra part (``rate.RateTerm``, which imports this module)."""

    def tensors(self) -> dict[str, torch.Tensor]: ...


def save_checkpoint(
    out: Path,
    name: str,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    recipe: Recipe,
    progress: Progress,
    disc: torch.nn.Module | None = None,
    opt_d: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    rate: SavesTensors | None = None,
) -> None:
    """``rate``: a rate term (``rate.RateTerm``) whose prior and optimiser are saved too."""
    tensors = {**prefixed(model, MODEL_PREFIX), **optimizer_tensors(opt, OPTIM_PREFIX)}
    if disc is not None:
        tensors.update({**prefixed(disc, DISC_PREFIX), **optimizer_tensors(opt_d, DISC_OPTIM_PREFIX)})
    if ema is not None:
        tensors.update(prefixed(ema, EMA_PREFIX))
    if rate is not None:
        tensors.update({RATE_PREFIX + k: v for k, v in rate.tensors().items()})
    meta = {
        "kind": str(model.kind),
        "arch": model.arch.to_dict(),
        "recipe": asdict(recipe),
        "progress": asdict(progress),
    }
    write_atomic(out / f"{name}.safetensors", save(tensors))
    write_atomic(out / f"{name}.json", json.dumps(meta, indent=1))


def load_checkpoint(out: Path, name: str = CHECKPOINT) -> Checkpoint:
    meta = json.loads((out / f"{name}.json").read_text())
    tensors = load_file(str(out / f"{name}.safetensors"))
    arch = Architecture.from_dict(meta["arch"])
    model = build_network(ModelKind(meta.get("kind", ModelKind.LBAE)), arch)
    model.load_state_dict(strip(tensors, MODEL_PREFIX))
    known = {f.name for f in fields(Recipe)}
    recipe = Recipe(**{k: v for k, v in meta["recipe"].items() if k in known})
    ckpt = Checkpoint(arch, model, strip(tensors, OPTIM_PREFIX), recipe, Progress.from_dict(meta["progress"]))
    disc_state = strip(tensors, DISC_PREFIX)
    if disc_state:
        ckpt.disc = discriminator(arch.channels, recipe)
        ckpt.disc.load_state_dict(disc_state)
        ckpt.disc_optim = strip(tensors, DISC_OPTIM_PREFIX)
    ckpt.ema = strip(tensors, EMA_PREFIX)
    ckpt.rate = strip(tensors, RATE_PREFIX)
    return ckpt


def load_epoch(out: Path, epoch: int) -> Checkpoint:
    """The run's last checkpoint holding the weights it kept at ``epoch`` (``epoch-N.safetensors``,
    written by runs that keep every epoch)."""
    ckpt = load_checkpoint(out, CHECKPOINT)
    ckpt.model.load_state_dict(strip(load_file(str(out / f"epoch-{epoch}.safetensors")), MODEL_PREFIX))
    ckpt.progress.best_epoch = epoch
    return ckpt


def initial_weights(spec: str, kind: ModelKind, stage: str) -> tuple[torch.nn.Module, Architecture, Progress]:
    """(network, architecture, progress) a run starts from: a run folder's best checkpoint or a
    shipped model; a run continuing one of its own stage counts their epochs and CPU time as its
    own history. A realism run from a model that ships a realism decoder continues that decoder
    (and counts its history); from any other model, it starts from the fidelity decoder."""
    if Path(spec).is_dir():
        ckpt = load_checkpoint(Path(spec), BEST)
        prior = ckpt.progress
        if stage != ckpt.recipe.stage:  # a realism decoder for a fidelity run's network
            return ckpt.model, ckpt.arch, Progress(init_from=str(spec))
        progress = Progress(
            init_from=str(spec),
            init_epochs=prior.total_epochs,
            init_cpu_seconds=prior.cpu_seconds + prior.init_cpu_seconds,
        )
        return ckpt.model, ckpt.arch, progress
    shipped = load_model(spec, "cpu", kinds=(kind,))
    if stage == FIDELITY:
        net, history = shipped.net, shipped.card
    elif shipped.realism is not None:
        net, history = shipped.net.with_decoder(shipped.realism), shipped.card.get("realism") or {}
    else:
        return shipped.net, shipped.arch, Progress(init_from=shipped.id)
    progress = Progress(
        init_from=shipped.id,
        init_epochs=int(history.get("epochs", 0)),
        init_cpu_seconds=float(history.get("cpu_hours", 0.0)) * 3600,
    )
    return net, net.arch, progress
