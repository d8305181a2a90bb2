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

Checkpoints (``checkpoint.py``) are safetensors plus JSON: nothing is pickled. Model selection
uses the validation images only: the test split is for reports.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save
from tqdm import tqdm

from ..architecture import STAGES, Architecture, ModelKind
from ..errors import require
from ..files import write_atomic
from ..images import to_float, to_uint8
from ..network import build_network
from ..zoo import MODEL_PREFIX, STATS_MEAN, STATS_MOMENT
from . import data, distributed
from .checkpoint import (
    BEST,
    CHECKPOINT,
    Progress,
    Recipe,
    load_checkpoint,
    load_optimizer,
    prefixed,
    save_checkpoint,
)
from .codes import code_statistics, encode_all
from .schedule import cosine, set_lr
from .steps import CopulaCodes, FidelityStep, RealismStep, device_of, loss_fn

GLOBAL_SEED_OFFSET = 1_000_000_007  # keeps the global RNG's per-epoch seeds apart from the batch order's
RATE_WARM_START_IMAGES = 10_000  # training images whose codes the rate term's prior is first fitted on


@dataclass
class FidProbe:
    """Validation FID each epoch: ``score`` maps uint8 reconstructions of ``images`` to a FID."""

    images: np.ndarray
    score: Callable[[np.ndarray], float]


@torch.inference_mode()
def reconstruct(model: torch.nn.Module, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """uint8 images → uint8 reconstructions (8-bit rounded, as a decoder writes them)."""
    model.eval()
    device = device_of(model)
    return np.concatenate(
        [
            to_uint8(torch.sigmoid(model.reconstruct(to_float(images[i : i + batch]).to(device))))
            for i in range(0, len(images), batch)
        ]
    )


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: np.ndarray, batch: int = 500) -> dict:
    """Mean loss and mean per-image PSNR (on 8-bit rounded reconstructions) over uint8 images."""
    model.eval()
    device = device_of(model)
    loss_sum, psnr_sum = 0.0, 0.0
    for i in range(0, len(images), batch):
        x = to_float(images[i : i + batch]).to(device)
        logits = model.reconstruct(x)
        loss_sum += loss_fn(model.arch, logits, x).item() * len(x)
        rec = torch.sigmoid(logits.float()).mul(255).round().div(255)
        psnr_sum += (rec - x).pow(2).flatten(1).mean(1).clamp_min(1e-10).log10().mul(-10).sum().item()
    return {"loss": loss_sum / len(images), "psnr": psnr_sum / len(images)}


def _batches(images: torch.Tensor, batch: int, generator: torch.Generator, hflip: bool, world: distributed.World):
    """Shuffled uint8 batches cut on the images' device → float, randomly mirrored; under
    torchrun, this rank's share of each global batch (every world.size-th image)."""
    order = torch.randperm(len(images), generator=generator).to(images.device)
    for i in range(0, len(images), batch):
        index = order[i : i + batch]
        flip = torch.rand(len(index), generator=generator) < 0.5  # drawn for the global batch
        index, flip = index[world.rank :: world.size], flip[world.rank :: world.size]
        x = to_float(images[index])
        if hflip:
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
        yield x


def shifter(pixels: int, size: tuple[int, int]) -> torch.nn.Module:
    """Moves each ``size`` image of a batch by up to ``pixels`` each way, its own draw (a random
    crop of the image reflect-padded by ``pixels``): the network sees more distinct tiles than
    the dataset holds. 0: the identity. Kornia does the work."""
    if pixels == 0:
        return torch.nn.Identity()
    augmentation = require("kornia", "train", "--shift").augmentation
    return augmentation.RandomCrop(size, padding=pixels, padding_mode="reflect")


def _start(arch, out, recipe, resume, init_from, init_progress, kind, device, world, resume_changes):
    """The model, step and progress to start from: a checkpoint, given weights, or scratch."""
    if resume and (out / f"{CHECKPOINT}.json").exists():
        ckpt = load_checkpoint(out)  # its recipe, seed and schedule go on; --epochs may extend it
        recipe = replace(ckpt.recipe, epochs=recipe.epochs or ckpt.recipe.epochs, **resume_changes)
        model, progress, disc = ckpt.model, ckpt.progress, ckpt.disc
    else:
        model, progress, disc, ckpt = build_network(kind, arch), init_progress or Progress(), None, None
        if init_from is not None and init_from.arch != arch:  # a realism decoder of another width
            model.encoder.load_state_dict(init_from.encoder.state_dict())
        elif init_from is not None:
            model.load_state_dict(init_from.state_dict())
    model = model.to(device).to(memory_format=torch.channels_last)
    if world.size > 1:
        model = distributed.sync_batchnorm(model, device)
    if recipe.stage == "realism":
        step = RealismStep(model, recipe, world, disc, ckpt.ema if ckpt is not None else None)
    else:
        step = FidelityStep(model, recipe, world, ckpt.rate if ckpt is not None else None)
    if ckpt is not None and ckpt.optim:
        load_optimizer(step.opt, ckpt.optim)
    if ckpt is not None and ckpt.disc_optim:
        load_optimizer(step.opt_d, ckpt.disc_optim)
    progress.device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return model, step, recipe, progress


def train(
    arch: Architecture,
    train_images: np.ndarray,
    val_images: np.ndarray,
    out: Path,
    recipe: Recipe,
    resume: bool = False,
    resume_changes: dict | None = None,
    init_from: torch.nn.Module | None = None,
    show_progress: bool = True,
    init_progress: Progress | None = None,
    kind: ModelKind = ModelKind.LBAE,
    device: str | torch.device = "cpu",
    max_minutes: float | None = None,
    fid_probe: FidProbe | None = None,
) -> tuple[torch.nn.Module, Progress, Recipe]:
    """Train (or resume) a model; returns the best-on-validation model, the progress record and the
    recipe that ran (a resumed run's or a budget's planned epochs filled in).

    The fidelity stage keeps the epoch with the lowest validation loss; the realism stage the
    one with the lowest validation FID when ``fid_probe`` is given, else the last epoch (and
    every epoch's weights are kept as ``epoch-N`` for a later choice)."""
    if recipe.stage not in STAGES:
        raise ValueError(f"unknown stage {recipe.stage!r}; choose from {', '.join(STAGES)}")
    device = distributed.rank_device(torch.device(device))
    world = distributed.join(device)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    model, step_fn, recipe, progress = _start(
        arch, out, recipe, resume, init_from, init_progress, ModelKind(kind), device, world, resume_changes or {}
    )
    if recipe.sample_adv > 0:
        step_fn.sampler = copula_of(model, train_images, seed=recipe.seed * 100_003 + progress.step)
    rate = getattr(step_fn, "rate", None)
    if rate is not None and not rate.fitted:
        rate.warm_start(encode_all(model, data.spread_subset(train_images, RATE_WARM_START_IMAGES)))
    images = torch.from_numpy(np.ascontiguousarray(train_images)).to(device)
    progress.train_images, progress.val_images, progress.world_size = len(train_images), len(val_images), world.size
    steps_per_epoch = math.ceil(len(images) / recipe.batch)
    started = time.time()
    while recipe.epochs == 0 or progress.epoch < recipe.epochs:
        record = _run_epoch(
            model,
            step_fn,
            images,
            val_images,
            recipe,
            progress,
            steps_per_epoch,
            show_progress and world.main,
            fid_probe,
            world,
        )
        if world.main:
            if recipe.epochs == 0 and progress.epoch >= 2:
                epochs = _epochs_in_budget(recipe, progress.epoch, time.time() - started, record["wall_s"])
                recipe = replace(recipe, epochs=epochs)
                record["epochs_planned"] = recipe.epochs
            _log(out, record, show_progress)
            _keep(out, model, step_fn, recipe, progress, record, fid_probe)
        stop = max_minutes is not None and time.time() - started > max_minutes * 60
        recipe, stop = distributed.from_main((recipe, stop), world)  # every rank ends the same epoch
        step_fn.recipe = recipe
        if stop:
            break
    return (_best_model(out, model) if world.main else model), progress, recipe


def copula_of(model: torch.nn.Module, images: np.ndarray, seed: int) -> CopulaCodes:
    """The "cov" sampler of the frozen encoder's codes of ``images``, with the statistics a shipped
    model stores (fp16 second moments)."""
    stats = code_statistics(encode_all(model, images))
    return CopulaCodes(stats[STATS_MEAN].double().numpy(), stats[STATS_MOMENT].double().numpy(), seed)


@torch.inference_mode()
def decode_samples(model: torch.nn.Module, sampler: CopulaCodes, n: int, seed: int = 0) -> np.ndarray:
    """uint8 images of ``n`` codes drawn with a fixed seed: the same codes every epoch."""
    model.eval()
    codes = sampler(n, device_of(model), np.random.default_rng(seed))
    return np.concatenate([to_uint8(model.decode(codes[i : i + 500])) for i in range(0, n, 500)])


def _log(out: Path, record: dict, show_progress: bool) -> None:
    with open(out / "log.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")
    if show_progress:
        print(json.dumps(record), flush=True)


def _epochs_in_budget(recipe: Recipe, done: int, elapsed_s: float, epoch_s: float) -> int:
    """Epochs that fit ``budget_minutes``, judged after the second epoch (the first one also
    paid for start-up and compilation)."""
    return max(done, done + int((recipe.budget_minutes * 60 - elapsed_s) // max(epoch_s, 1e-3)))


def _run_epoch(
    model, step_fn, images, val_images, recipe, progress, steps_per_epoch, show_progress, fid_probe, world
) -> dict:
    step_fn.train_mode()
    cpu0, wall0 = time.process_time(), time.time()
    generator = torch.Generator().manual_seed(recipe.seed * 100_003 + progress.epoch)
    # the draws that use torch's global RNG (shifts, DiffAugment) start each epoch from a seed of
    # their own as well, so that a resumed run repeats an uninterrupted one
    torch.manual_seed(recipe.seed * 100_003 + progress.epoch + GLOBAL_SEED_OFFSET)
    total_steps = steps_per_epoch * (recipe.epochs or 10**9)
    bar = tqdm(
        _batches(images, recipe.batch, generator, recipe.hflip, world),
        total=steps_per_epoch,
        desc=f"epoch {progress.epoch + 1}/{recipe.epochs or '?'}",
        disable=not show_progress,
        mininterval=5,
    )
    shift = shifter(recipe.shift, tuple(images.shape[1:3]))
    sums: dict[str, torch.Tensor] = {}
    for x in bar:
        x = shift(x)
        set_lr(step_fn.opt, cosine(recipe.lr, progress.step / max(total_steps, 1), recipe.final_lr_fraction))
        for k, v in step_fn(x, progress.step).items():
            sums[k] = sums.get(k, 0) + v.float()
        progress.step += 1
    if images.device.type == "cuda":
        torch.cuda.synchronize()
        progress.gpu_seconds += distributed.total(time.time() - wall0, world)  # GPU-seconds of all ranks
    progress.epoch += 1
    progress.cpu_seconds += distributed.total(time.process_time() - cpu0, world)  # all ranks' CPU time
    if not world.main:
        return {}  # rank 0 alone evaluates and logs
    evaluated = step_fn.evaluated()
    figures = evaluate(evaluated, val_images)
    record = {
        "epoch": progress.epoch,
        "stage": recipe.stage,
        "world_size": world.size,
        **{f"train_{k}": round(float(v) / steps_per_epoch, 6) for k, v in sums.items()},
        "val_loss": figures["loss"],
        "val_psnr": figures["psnr"],
        "lr": step_fn.opt.param_groups[0]["lr"],
        "wall_s": round(time.time() - wall0, 1),
        "cpu_hours": round(progress.cpu_seconds / 3600, 3),
        "gpu_hours": round(progress.gpu_seconds / 3600, 3),
    }
    rate = getattr(step_fn, "rate", None)
    if rate is not None:  # selection weighs the bits as training did
        record["val_bits"] = rate.bits_of(encode_all(evaluated, val_images))
        record["val_rd"] = figures["loss"] + recipe.rate * record["val_bits"] / val_images[0].size
    if fid_probe is not None:
        record["val_fid"] = fid_probe.score(reconstruct(evaluated, fid_probe.images))
    if fid_probe is not None and getattr(step_fn, "sampler", None) is not None:  # against the same images
        record["val_sample_fid"] = fid_probe.score(decode_samples(evaluated, step_fn.sampler, len(fid_probe.images)))
    if evaluated is not model:  # what the moving average buys over the trained weights
        record["val_psnr_trained"] = evaluate(model, val_images)["psnr"]
        if fid_probe is not None:
            record["val_fid_trained"] = fid_probe.score(reconstruct(model, fid_probe.images))
    return record


def _keep(out, model, step_fn, recipe, progress, record, fid_probe) -> None:
    """Log the epoch, save the last checkpoint, and the best one by the stage's metric."""
    metric = "val_fid" if fid_probe is not None else "val_rd" if recipe.rate else "val_loss"
    # a realism stage with λ = 0 (a new decoder learning to reconstruct) is chosen on its loss
    realism_without_fid = recipe.stage == "realism" and fid_probe is None and recipe.adv_weight > 0
    progress.best_metric = "last" if realism_without_fid else metric
    progress.history.append(record)
    disc, opt_d, ema = (getattr(step_fn, name, None) for name in ("disc", "opt_d", "ema"))
    if realism_without_fid or record[metric] < progress.best_score:
        progress.best_score = record.get(metric, math.inf) if not realism_without_fid else math.inf
        progress.best_epoch = progress.epoch
        save_checkpoint(out, BEST, step_fn.evaluated(), step_fn.opt, recipe, progress, disc, opt_d)
    if realism_without_fid or recipe.sample_adv > 0:  # with samples judged, a choice between two FIDs
        write_atomic(out / f"epoch-{progress.epoch}.safetensors", save(prefixed(step_fn.evaluated(), MODEL_PREFIX)))
    save_checkpoint(
        out, CHECKPOINT, model, step_fn.opt, recipe, progress, disc, opt_d, ema, getattr(step_fn, "rate", None)
    )


def _best_model(out: Path, model: torch.nn.Module) -> torch.nn.Module:
    best = out / f"{BEST}.json"
    if best.exists():
        model = load_checkpoint(out, BEST).model
    return model.eval()


def validation_fid_probe(val_images: np.ndarray, count: int) -> FidProbe:
    """Validation FID each epoch on ``count`` validation images spread evenly through them (needs
    the bench extra). Before lbaecodec 0.11.1 the probe took the first ``count``."""
    from ..registry import cache_dir
    from .metrics import fid as fidlib

    images = data.spread_subset(val_images, count)
    extractor = fidlib.InceptionFeatures("cpu", progress=False)
    reference = fidlib.cached_statistics(images, extractor, cache_dir() / "fid")
    return FidProbe(
        images, lambda recs: round(fidlib.frechet_distance(*reference, *fidlib.statistics(extractor(recs))), 3)
    )
