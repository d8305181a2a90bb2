"""Training loop: resumable, checkpoint every epoch, best-on-test kept, JSONL log.

Checkpoints are safetensors (model and Adam state) plus a JSON file: nothing is pickled.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .baselines import build
from .network import LBAE, Architecture

CHECKPOINT = "last"
BEST = "best"


@dataclass
class Recipe:
    epochs: int = 30
    batch: int = 128
    lr: float = 1e-3
    final_lr_fraction: float = 0.01  # cosine decay from lr to lr * this
    hflip: bool = True
    seed: int = 0


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step: int = 0
    cpu_seconds: float = 0.0
    best_test_loss: float = math.inf
    best_epoch: int = 0
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


def to_float(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) → float (N, C, H, W) in [0, 1], channels_last memory."""
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255)
    return t.contiguous(memory_format=torch.channels_last)


def loss_fn(arch: Architecture, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if arch.loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(torch.sigmoid(logits), target)


@torch.inference_mode()
def evaluate(model: LBAE, images: np.ndarray, batch: int = 500) -> dict:
    """Test loss and PSNR (on 8-bit rounded reconstructions) over uint8 images."""
    model.eval()
    loss_sum, se_sum, n = 0.0, 0.0, 0
    for i in range(0, len(images), batch):
        x = to_float(images[i: i + batch])
        logits = model.reconstruct(x)
        loss_sum += loss_fn(model.arch, logits, x).item() * len(x)
        rec = torch.sigmoid(logits).mul(255).round().div(255)
        se_sum += (rec - x).pow(2).flatten(1).mean(1).clamp_min(1e-10).log10().mul(-10).sum().item()
        n += len(x)
    return {"test_loss": loss_sum / n, "test_psnr": se_sum / n}


def _lr_at(recipe: Recipe, step: int, total_steps: int) -> float:
    t = min(step / max(total_steps, 1), 1.0)
    floor = recipe.final_lr_fraction
    return recipe.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def _optimizer_tensors(opt: torch.optim.Adam) -> dict[str, torch.Tensor]:
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"optim.{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
    return out


def _load_optimizer(opt: torch.optim.Adam, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, i, k = key.split(".", 2)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def save_checkpoint(out: Path, name: str, model: LBAE, opt, arch, recipe, progress) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update(_optimizer_tensors(opt))
    meta = {"kind": model.kind, "arch": arch.to_dict(), "recipe": asdict(recipe), "progress": asdict(progress)}
    tmp = out / f"{name}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out / f"{name}.safetensors")
    (out / f"{name}.json.tmp").write_text(json.dumps(meta, indent=1))
    (out / f"{name}.json.tmp").replace(out / f"{name}.json")


def load_checkpoint(out: Path, name: str = CHECKPOINT):
    meta = json.loads((out / f"{name}.json").read_text())
    tensors = load_file(str(out / f"{name}.safetensors"))
    arch = Architecture.from_dict(meta["arch"])
    model = build(meta.get("kind", "lbae"), arch)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return arch, model, optim, Recipe(**meta["recipe"]), Progress(**meta["progress"])


def train(
    arch: Architecture,
    train_images: np.ndarray,
    test_images: np.ndarray,
    out: Path,
    recipe: Recipe,
    resume: bool = False,
    init_from: LBAE | None = None,
    show_progress: bool = True,
    init_progress: Progress | None = None,
    kind: str = "lbae",
) -> tuple[LBAE, Progress]:
    """Train (or resume) a model (LBAE, or a baseline ``kind``); returns the best-on-test
    model and the progress record."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    if resume and (out / f"{CHECKPOINT}.json").exists():
        arch, model, optim_state, old_recipe, progress = load_checkpoint(out)
        recipe.seed = old_recipe.seed
    else:
        model, optim_state, progress = build(kind, arch), None, init_progress or Progress()
        if init_from is not None:
            model.load_state_dict(init_from.state_dict())
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    if optim_state:
        _load_optimizer(opt, optim_state)
    steps_per_epoch = math.ceil(len(train_images) / recipe.batch)
    total_steps = steps_per_epoch * recipe.epochs
    rng = np.random.default_rng(recipe.seed + progress.epoch)
    log = open(out / "log.jsonl", "a")
    for epoch in range(progress.epoch, recipe.epochs):
        model.train()
        cpu0, wall0 = time.process_time(), time.time()
        order = rng.permutation(len(train_images))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{recipe.epochs}",
                   disable=not show_progress, mininterval=5)
        running = 0.0
        for b in bar:
            x = to_float(train_images[order[b * recipe.batch: (b + 1) * recipe.batch]])
            if recipe.hflip:
                flip = torch.rand(len(x)) < 0.5
                x[flip] = x[flip].flip(3)
            for g in opt.param_groups:
                g["lr"] = _lr_at(recipe, progress.step, total_steps)
            logits, aux_loss = model(x)
            loss = loss_fn(arch, logits, x) + aux_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            progress.step += 1
            running = 0.98 * running + 0.02 * loss.item() if b else loss.item()
            bar.set_postfix(loss=f"{running:.5f}", refresh=False)
        progress.epoch = epoch + 1
        progress.cpu_seconds += time.process_time() - cpu0
        record = {"epoch": progress.epoch, "train_loss": running, **evaluate(model, test_images),
                  "lr": opt.param_groups[0]["lr"], "wall_s": round(time.time() - wall0, 1),
                  "cpu_hours": round(progress.cpu_seconds / 3600, 3)}
        progress.history.append(record)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if show_progress:
            print(json.dumps(record), flush=True)
        if record["test_loss"] < progress.best_test_loss:
            progress.best_test_loss, progress.best_epoch = record["test_loss"], progress.epoch
            save_checkpoint(out, BEST, model, opt, arch, recipe, progress)
        save_checkpoint(out, CHECKPOINT, model, opt, arch, recipe, progress)
    log.close()
    best = out / f"{BEST}.json"
    if best.exists():
        model = load_checkpoint(out, BEST)[1]
    model.eval()
    return model, progress
