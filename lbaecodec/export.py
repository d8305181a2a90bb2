"""Turn a training run into a shipped model: weights, code statistics, and a measured card."""
from __future__ import annotations

import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch

from . import zoo
from .network import LBAE
from .train import evaluate, load_checkpoint, to_float

STATS_MEAN, STATS_MOMENT, STATS_COUNT = "stats.code_mean", "stats.code_moment", "stats.count"


@torch.inference_mode()
def code_statistics(net: LBAE, images: np.ndarray, batch: int = 500) -> dict[str, torch.Tensor]:
    """Mean and second-moment matrix E[b bᵀ] of the ±1 codes of ``images``."""
    net.eval()
    total = torch.zeros(net.arch.bits, dtype=torch.float64)
    moment = torch.zeros(net.arch.bits, net.arch.bits, dtype=torch.float64)
    for i in range(0, len(images), batch):
        b = net.encode(to_float(images[i: i + batch])).double()
        total += b.sum(0)
        moment += b.T @ b
    n = len(images)
    return {STATS_MEAN: total / n, STATS_MOMENT: moment / n, STATS_COUNT: torch.tensor([float(n)])}


def export_run(
    run: Path, name: str, path: Path, train_images: np.ndarray, test_images: np.ndarray,
    data_note: str, command: str, which: str = "best",
) -> Path:
    """Export a run's checkpoint with code statistics and a card measured on the test images."""
    arch, net, _, recipe, progress = load_checkpoint(run, which)
    net.eval()
    exported = zoo.export(net, name, path, extras=code_statistics(net, train_images))
    shipped = zoo.load_model(exported, device="cpu").net  # measure what ships (fp16 weights)
    figures = evaluate(shipped, test_images)
    card = {
        "preset_bits": arch.bits,
        "data": data_note,
        "train_images": len(train_images),
        "test_images": len(test_images),
        "epochs": progress.epoch,
        "best_epoch": progress.best_epoch,
        "cpu_hours": round(progress.cpu_seconds / 3600, 2),
        "recipe": recipe.__dict__,
        "test_psnr_db": round(figures["test_psnr"], 3),
        "test_loss": round(figures["test_loss"], 6),
        "weights_dtype": "float16",
        "measured_on": f"{platform.machine()} CPU, torch {torch.__version__}, {date.today()}",
        "command": command,
    }
    zoo.write_card(exported, card)
    return exported


def command_line() -> str:
    return "lbaecodec " + " ".join(sys.argv[1:])
