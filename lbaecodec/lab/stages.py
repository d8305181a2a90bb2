"""Residual stages: the training tiles of a model's next stage, and shipping a trained one.

A stage is trained like any network (`lbaecodec train --dataset folder --data-dir SET.npz`) on
the residual images (``lbaecodec.stages.residual_image``) of photo tiles after every stage the
model has; `add-stage` then fits the new stage's bit priors on its training codes and ships the
model + stage under a new name.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import entropy, prior_tensors, stages
from ..architecture import ModelKind
from ..container import Coding
from ..errors import InputError
from ..files import atomic_path
from ..zoo import Model, as_shipped, load_model, write_card
from . import photos
from .checkpoint import load_checkpoint
from .export import encode_all, extend_model, measured_on
from .metrics.quality import psnr


def residual_tiles(model: Model, tiles: np.ndarray) -> np.ndarray:
    """uint8 tiles → the residual images a stage after ``model``'s last one is trained to code."""
    decoded = stages.code_tiles(model, tiles, model.stage_count, decoded=True)[1]
    return stages.residual_image(tiles, decoded)


def write_residual_set(model: Model, out: Path, data_dir: str | Path | None = None) -> dict[str, int]:
    """An .npz (x_train, x_val, x_test) of the photo tiles' residuals after ``model``, split by
    whole photo as ``lab.photos`` splits them, and ``model``: the id of the model they follow.
    Returns each split's tile count."""
    arrays = {}
    for split in photos.SPLITS:
        arrays[f"x_{split}"] = residual_tiles(model, photos.load_tiles(split, model.arch.size, data_dir))
    with atomic_path(Path(out)) as tmp, open(tmp, "wb") as f:
        np.savez(f, model=np.array(model.id), **arrays)
    return {name: len(a) for name, a in arrays.items()}


def training_residuals(model: Model, path: Path) -> np.ndarray:
    """The training tiles of a residual set ``write_residual_set`` wrote after ``model``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            made_after, train = str(z["model"]), z["x_train"]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: not a residual set of `lbaecodec stage-data` ({e})") from None
    if made_after != model.id:
        raise InputError(f"{path} holds residuals after {made_after}, not after {model.id}")
    return train


def stage_figures(model: Model, tiles: np.ndarray) -> list[dict]:
    """After each stage of ``model``: PSNR of the decoded tiles (of their pooled MSE, and the
    mean of each tile's) and the bits each stage costs per tile under its context prior (ideal
    code length)."""
    figures = []
    for k in range(1, model.stage_count + 1):
        codes, decoded = stages.code_tiles(model, tiles, k, decoded=True)
        prior = prior_tensors.from_tensors(model.stage(k).extras, Coding.CONTEXT)
        cost = prior.cost_bits(codes[-1]) / len(tiles) if prior is not None else float(model.arch.bits)
        mse = np.mean((tiles.astype(np.float64) - decoded) ** 2)
        figures.append(
            {
                "stages": k,
                "psnr_db": round(float(10 * np.log10(255**2 / mse)), 3),
                "mean_tile_psnr_db": round(psnr(tiles, decoded), 3),
                "context_bits_per_tile": round(cost, 1),
            }
        )
    return figures


def add_stage(
    base: Model,
    run: Path,
    residual_set: Path,
    name: str,
    path: Path,
    data_dir: str | None,
    command: str,
    delta: bool = False,
) -> Path:
    """A new model file: ``base`` unchanged plus the best network of ``run`` (trained on the
    ``residual_set`` of ``base``) as its next stage, with bit priors fitted on the codes of that
    set's training tiles; its card gains the run's effort and each stage's figures on the test
    photos' tiles (``delta``: see ``extend_model``)."""
    ckpt = load_checkpoint(run, "best")
    if ckpt.model.kind != ModelKind.LBAE or ckpt.arch != base.arch:
        raise InputError(f"{run}: not an LBAE of {base.id}'s architecture ({base.arch})")
    train = training_residuals(base, residual_set)
    codes = encode_all(as_shipped(ckpt.model), train)
    priors = prior_tensors.to_tensors(entropy.fit(codes, context=False), entropy.fit(codes))
    later = [(s.net, s.extras) for s in base.later_stages] + [(ckpt.model, priors)]
    exported, card = extend_model(base, name, path, later_stages=later, delta=delta)
    progress = ckpt.progress
    stage = {
        "stage": base.stage_count + 1,
        "run": str(run),
        "data": f"{residual_set.name}: residuals after {base.id} of {len(train)} photo training tiles",
        "epochs": progress.total_epochs,
        "best_epoch": progress.best_epoch,
        "selected_on": f"validation photos' tiles ({progress.best_metric})",
        "cpu_hours": round(progress.total_cpu_hours, 2),
        "recipe": asdict(ckpt.recipe),
    }
    model = load_model(exported, "cpu")
    test = photos.load_tiles("test", base.arch.size, data_dir)
    card.update(
        later_stages=[*card.get("later_stages", []), stage],
        test_tiles_by_stage=stage_figures(model, test),
        stage_command=command,
        measured_on=measured_on(),
    )
    write_card(exported, card)
    return exported
