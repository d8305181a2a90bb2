"""Training loop: resumable, checkpoint every epoch, best-on-validation kept, JSONL log.

Two stages share the loop. ``fidelity`` trains a whole network (LBAE or a baseline) on its
reconstruction loss. ``realism`` starts from a trained LBAE, freezes its encoder (eval mode:
its BatchNorm statistics never move, so codes stay bit-identical) and trains the decoder with
the reconstruction loss plus an adversarial loss (``adversarial.py``).

Runs on CPU or CUDA: the training images sit on the device as uint8 and batches are cut there;
on CUDA, bf16 autocast and ``torch.compile`` are options. ``max_minutes`` ends a run after the
epoch that crosses it (a chunk); ``--resume`` continues. With ``epochs = 0`` the number of
epochs is chosen after the second one, from its duration and ``budget_minutes``, so a fixed
slot of device time gets a complete learning-rate schedule.

Checkpoints are safetensors (model, discriminator and Adam states) plus a JSON file: nothing is
pickled. Model selection uses the validation images only: the test split is for reports.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from . import adversarial
from .baselines import build
from .architecture import STAGES, Architecture
from .network import LBAE, SignSTE

CHECKPOINT = "last"
BEST = "best"
MODEL_PREFIX, DISC_PREFIX = "model.", "disc."
OPTIM_PREFIX, DISC_OPTIM_PREFIX = "optim.", "optim_d."


@dataclass
class Recipe:
    epochs: int = 30  # 0: chosen after the second epoch so that the run fits budget_minutes
    batch: int = 128
    lr: float = 1e-3
    final_lr_fraction: float = 0.01  # cosine decay from lr to lr * this
    hflip: bool = True
    seed: int = 0
    stage: str = "fidelity"
    budget_minutes: float = 0.0
    bf16: bool = False  # autocast on CUDA
    compile: bool = False
    # realism stage
    adv_weight: float = 0.5  # λ on the adversarial loss: times VQGAN's adaptive balance, or alone
    adaptive: bool = True  # False: a fixed λ (cheaper: no second pass through the decoder)
    disc_width: int = 64
    disc_lr: float = 2e-4
    disc_warmup_steps: int = 200  # discriminator trains alone first: its first verdicts are noise


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
    def from_dict(cls, d: dict) -> "Progress":
        d = dict(d)
        if "best_test_loss" in d:  # runs before validation splits selected on the test loss
            d["best_score"] = d.pop("best_test_loss")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class FidProbe:
    """Validation FID each epoch: ``score`` maps uint8 reconstructions of ``images`` to a FID."""

    images: np.ndarray
    score: Callable[[np.ndarray], float]


@dataclass
class Checkpoint:
    arch: Architecture
    model: torch.nn.Module
    optim: dict[str, torch.Tensor]
    recipe: Recipe
    progress: Progress
    disc: adversarial.PatchDiscriminator | None = None
    disc_optim: dict[str, torch.Tensor] = field(default_factory=dict)


def to_float(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) → float (N, C, H, W) in [0, 1], channels_last memory."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    return t.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=torch.channels_last)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] → uint8 (N, H, W, C)."""
    return x.mul(255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


def loss_fn(arch: Architecture, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    if arch.loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(torch.sigmoid(logits), target)


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def reconstruct(model: torch.nn.Module, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """uint8 images → uint8 reconstructions (8-bit rounded, as a decoder writes them)."""
    model.eval()
    device = _device_of(model)
    return np.concatenate([to_uint8(torch.sigmoid(model.reconstruct(to_float(images[i: i + batch]).to(device))))
                           for i in range(0, len(images), batch)])


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: np.ndarray, batch: int = 500) -> dict:
    """Mean loss and mean per-image PSNR (on 8-bit rounded reconstructions) over uint8 images."""
    model.eval()
    device = _device_of(model)
    loss_sum, psnr_sum = 0.0, 0.0
    for i in range(0, len(images), batch):
        x = to_float(images[i: i + batch]).to(device)
        logits = model.reconstruct(x)
        loss_sum += loss_fn(model.arch, logits, x).item() * len(x)
        rec = torch.sigmoid(logits.float()).mul(255).round().div(255)
        psnr_sum += (rec - x).pow(2).flatten(1).mean(1).clamp_min(1e-10).log10().mul(-10).sum().item()
    return {"loss": loss_sum / len(images), "psnr": psnr_sum / len(images)}


def _lr_at(recipe: Recipe, step: int, total_steps: int) -> float:
    t = min(step / max(total_steps, 1), 1.0)
    floor = recipe.final_lr_fraction
    return recipe.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"{prefix}{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    return out


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def _prefixed(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(out: Path, name: str, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    recipe: Recipe, progress: Progress, disc: torch.nn.Module | None = None,
                    opt_d: torch.optim.Optimizer | None = None) -> None:
    tensors = {**_prefixed(model, MODEL_PREFIX), **_optimizer_tensors(opt, OPTIM_PREFIX)}
    if disc is not None:
        tensors.update({**_prefixed(disc, DISC_PREFIX), **_optimizer_tensors(opt_d, DISC_OPTIM_PREFIX)})
    meta = {"kind": model.kind, "arch": model.arch.to_dict(), "recipe": asdict(recipe), "progress": asdict(progress)}
    tmp = out / f"{name}.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out / f"{name}.safetensors")
    (out / f"{name}.json.tmp").write_text(json.dumps(meta, indent=1))
    (out / f"{name}.json.tmp").replace(out / f"{name}.json")


def load_checkpoint(out: Path, name: str = CHECKPOINT) -> Checkpoint:
    meta = json.loads((out / f"{name}.json").read_text())
    tensors = load_file(str(out / f"{name}.safetensors"))
    arch = Architecture.from_dict(meta["arch"])
    model = build(meta.get("kind", "lbae"), arch)
    model.load_state_dict(_strip(tensors, MODEL_PREFIX))
    known = {f.name for f in fields(Recipe)}
    recipe = Recipe(**{k: v for k, v in meta["recipe"].items() if k in known})
    ckpt = Checkpoint(arch, model, _strip(tensors, OPTIM_PREFIX), recipe, Progress.from_dict(meta["progress"]))
    disc_state = _strip(tensors, DISC_PREFIX)
    if disc_state:
        ckpt.disc = adversarial.PatchDiscriminator(arch.channels, recipe.disc_width)
        ckpt.disc.load_state_dict(disc_state)
        ckpt.disc_optim = _strip(tensors, DISC_OPTIM_PREFIX)
    return ckpt


class FidelityStep:
    """One optimiser step of the whole network on its reconstruction (+ auxiliary) loss."""

    def __init__(self, model: torch.nn.Module, recipe: Recipe) -> None:
        self.model, self.recipe = model, recipe
        self.opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        self.forward = _compiled(model) if recipe.compile else model

    def train_mode(self) -> None:
        self.model.train()

    def __call__(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        with _autocast(x.device, self.recipe.bf16):
            logits, aux_loss = self.forward(x)
        loss = loss_fn(self.model.arch, logits, x) + aux_loss.float()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}


class RealismStep:
    """One step of the realism decoder (frozen encoder) and one of its discriminator."""

    def __init__(self, model: LBAE, recipe: Recipe, disc: adversarial.PatchDiscriminator | None = None) -> None:
        if model.kind != "lbae":
            raise ValueError("the realism stage trains an LBAE decoder")
        self.model, self.recipe = model, recipe
        model.encoder.requires_grad_(False)
        self.disc = disc or adversarial.PatchDiscriminator(model.arch.channels, recipe.disc_width)
        self.disc = self.disc.to(_device_of(model)).to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(model.decoder.parameters(), lr=recipe.lr, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=recipe.disc_lr, betas=(0.5, 0.9))
        # not compiled: the adaptive weight differentiates the decoder twice (retain_graph), which
        # compiled backward graphs refuse (donated buffers); the fidelity stage is the long one
        self.decoder = model.decoder
        self.last_layer = model.decoder.pixels[-1].weight

    def train_mode(self) -> None:
        self.model.decoder.train()
        self.model.encoder.eval()
        self.disc.train()

    def __call__(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        with torch.no_grad(), _autocast(x.device, self.recipe.bf16):
            codes = SignSTE.apply(self.model.encoder(x)).float()
        with _autocast(x.device, self.recipe.bf16):
            logits = self.decoder(codes)
        fake = torch.sigmoid(logits.float())
        rec = loss_fn(self.model.arch, logits, x)
        adversarial_on = step >= self.recipe.disc_warmup_steps
        if adversarial_on:
            with _autocast(x.device, self.recipe.bf16):
                g_adv = adversarial.generator_loss(self.disc(fake).float())
            weight = self.recipe.adv_weight * (adversarial.adaptive_weight(rec, g_adv, self.last_layer)
                                               if self.recipe.adaptive else torch.ones((), device=x.device))
            loss = rec + weight * g_adv
        else:
            weight, loss = torch.zeros((), device=x.device), rec
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with _autocast(x.device, self.recipe.bf16):
            d_loss = adversarial.hinge_d_loss(self.disc(x).float(), self.disc(fake.detach()).float())
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        return {"loss": rec.detach(), "d_loss": d_loss.detach(), "adv_weight": weight}


def _compiled(module: torch.nn.Module):
    """``torch.compile(module)``, falling back to eager mode if compiling fails (no compiler)."""
    compiled = torch.compile(module)

    def run(*args):
        nonlocal compiled
        try:
            return compiled(*args)
        except Exception as e:  # compile errors surface on the first call, as any exception type
            if compiled is module:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); running eagerly")
            compiled = module
            return module(*args)

    return run


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def _batches(images: torch.Tensor, batch: int, generator: torch.Generator, hflip: bool):
    """Shuffled uint8 batches cut on the images' device → float, randomly mirrored."""
    order = torch.randperm(len(images), generator=generator).to(images.device)
    for i in range(0, len(images), batch):
        x = to_float(images[order[i: i + batch]])
        if hflip:
            flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        yield x


def _start(arch, out, recipe, resume, init_from, init_progress, kind, device):
    """The model, step and progress to start from: a checkpoint, given weights, or scratch."""
    if resume and (out / f"{CHECKPOINT}.json").exists():
        ckpt = load_checkpoint(out)  # its recipe, seed and schedule go on; --epochs may extend it
        recipe = _with_epochs(ckpt.recipe, recipe.epochs or ckpt.recipe.epochs)
        model, progress, disc = ckpt.model, ckpt.progress, ckpt.disc
    else:
        model, progress, disc, ckpt = build(kind, arch), init_progress or Progress(), None, None
        if init_from is not None:
            model.load_state_dict(init_from.state_dict())
    model = model.to(device).to(memory_format=torch.channels_last)
    step = RealismStep(model, recipe, disc) if recipe.stage == "realism" else FidelityStep(model, recipe)
    if ckpt is not None and ckpt.optim:
        _load_optimizer(step.opt, ckpt.optim)
    if ckpt is not None and ckpt.disc_optim:
        _load_optimizer(step.opt_d, ckpt.disc_optim)
    progress.device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return model, step, recipe, progress


def _with_epochs(recipe: Recipe, epochs: int) -> Recipe:
    return Recipe(**{**asdict(recipe), "epochs": epochs})


def train(
    arch: Architecture,
    train_images: np.ndarray,
    val_images: np.ndarray,
    out: Path,
    recipe: Recipe,
    resume: bool = False,
    init_from: torch.nn.Module | None = None,
    show_progress: bool = True,
    init_progress: Progress | None = None,
    kind: str = "lbae",
    device: str | torch.device = "cpu",
    max_minutes: float | None = None,
    fid_probe: FidProbe | None = None,
) -> tuple[torch.nn.Module, Progress]:
    """Train (or resume) a model; returns the best-on-validation model and the progress record.

    The fidelity stage keeps the epoch with the lowest validation loss; the realism stage the
    one with the lowest validation FID when ``fid_probe`` is given, else the last epoch (and
    every epoch's weights are kept as ``epoch-N`` for a later choice)."""
    if recipe.stage not in STAGES:
        raise ValueError(f"unknown stage {recipe.stage!r}; choose from {', '.join(STAGES)}")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    torch.manual_seed(recipe.seed)
    model, step_fn, recipe, progress = _start(arch, out, recipe, resume, init_from, init_progress, kind, device)
    images = torch.from_numpy(np.ascontiguousarray(train_images)).to(device)
    progress.train_images, progress.val_images = len(train_images), len(val_images)
    steps_per_epoch = math.ceil(len(images) / recipe.batch)
    started = time.time()
    with open(out / "log.jsonl", "a") as log:
        while recipe.epochs == 0 or progress.epoch < recipe.epochs:
            record = _run_epoch(model, step_fn, images, val_images, recipe, progress, steps_per_epoch,
                                show_progress, fid_probe)
            if recipe.epochs == 0 and progress.epoch >= 2:
                recipe = _with_epochs(recipe, _epochs_in_budget(recipe, progress.epoch, time.time() - started,
                                                                record["wall_s"]))
                step_fn.recipe = recipe
                record["epochs_planned"] = recipe.epochs
            log.write(json.dumps(record) + "\n")
            log.flush()
            if show_progress:
                print(json.dumps(record), flush=True)
            _keep(out, model, step_fn, recipe, progress, record, fid_probe)
            if max_minutes is not None and time.time() - started > max_minutes * 60:
                break
    return _best_model(out, model), progress


def _epochs_in_budget(recipe: Recipe, done: int, elapsed_s: float, epoch_s: float) -> int:
    """Epochs that fit ``budget_minutes``, judged after the second epoch (the first one also
    paid for start-up and compilation)."""
    return max(done, done + int((recipe.budget_minutes * 60 - elapsed_s) // max(epoch_s, 1e-3)))


def _run_epoch(model, step_fn, images, val_images, recipe, progress, steps_per_epoch, show_progress,
               fid_probe) -> dict:
    step_fn.train_mode()
    cpu0, wall0 = time.process_time(), time.time()
    generator = torch.Generator().manual_seed(recipe.seed * 100_003 + progress.epoch)
    total_steps = steps_per_epoch * (recipe.epochs or 10**9)
    bar = tqdm(_batches(images, recipe.batch, generator, recipe.hflip), total=steps_per_epoch,
               desc=f"epoch {progress.epoch + 1}/{recipe.epochs or '?'}", disable=not show_progress, mininterval=5)
    sums: dict[str, torch.Tensor] = {}
    for x in bar:
        for group in step_fn.opt.param_groups:
            group["lr"] = _lr_at(recipe, progress.step, total_steps)
        for k, v in step_fn(x, progress.step).items():
            sums[k] = sums.get(k, 0) + v.float()
        progress.step += 1
    if images.device.type == "cuda":
        torch.cuda.synchronize()
        progress.gpu_seconds += time.time() - wall0
    progress.epoch += 1
    progress.cpu_seconds += time.process_time() - cpu0
    figures = evaluate(model, val_images)
    record = {"epoch": progress.epoch, "stage": recipe.stage,
              **{f"train_{k}": round(float(v) / steps_per_epoch, 6) for k, v in sums.items()},
              "val_loss": figures["loss"], "val_psnr": figures["psnr"],
              "lr": step_fn.opt.param_groups[0]["lr"], "wall_s": round(time.time() - wall0, 1),
              "cpu_hours": round(progress.cpu_seconds / 3600, 3), "gpu_hours": round(progress.gpu_seconds / 3600, 3)}
    if fid_probe is not None:
        record["val_fid"] = fid_probe.score(reconstruct(model, fid_probe.images))
    return record


def _keep(out, model, step_fn, recipe, progress, record, fid_probe) -> None:
    """Log the epoch, save the last checkpoint, and the best one by the stage's metric."""
    metric = "val_fid" if fid_probe is not None else "val_loss"
    realism_without_fid = recipe.stage == "realism" and fid_probe is None
    progress.best_metric = "last" if realism_without_fid else metric
    progress.history.append(record)
    disc, opt_d = getattr(step_fn, "disc", None), getattr(step_fn, "opt_d", None)
    if realism_without_fid or record[metric] < progress.best_score:
        progress.best_score = record.get(metric, math.inf) if not realism_without_fid else math.inf
        progress.best_epoch = progress.epoch
        save_checkpoint(out, BEST, model, step_fn.opt, recipe, progress, disc, opt_d)
    if realism_without_fid:
        save_file(_prefixed(model, MODEL_PREFIX), str(out / f"epoch-{progress.epoch}.safetensors"))
    save_checkpoint(out, CHECKPOINT, model, step_fn.opt, recipe, progress, disc, opt_d)


def _best_model(out: Path, model: torch.nn.Module) -> torch.nn.Module:
    best = out / f"{BEST}.json"
    if best.exists():
        model = load_checkpoint(out, BEST).model
    return model.eval()
