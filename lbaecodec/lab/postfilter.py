"""Training a model's seam post-filter (``deblock.PostFilter``) on decoded photos.

The model's encoder and decoder stay as they are: whole training photos are coded and decoded
at several sizes with a given number of residual stages, and the filter learns to map each
decoded canvas back to its original on random crops (MSE). Each batch's crops share one position
relative to the tile grid, so the filter is told where the borders are exactly as when it runs
over a whole canvas. A model keeps one filter per number of stages decoded: one filter for all
had over-smoothed the cleaner two-stage canvases.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import codec
from ..architecture import FILTER_LAYERS, FILTER_WIDTH
from ..deblock import PostFilter, apply
from ..images import to_float
from ..tiling import Grid
from ..zoo import Model, write_card
from .export import extend_model
from .metrics import quality
from .schedule import cosine, set_lr


@dataclass
class PostFilterRecipe:
    steps: int = 3000
    batch: int = 16
    crop: int = 96
    lr: float = 1e-3
    seed: int = 0
    seam_weight: float = 0.0  # weight of the border-step term (see seam_step_error) beside the MSE
    width: int = FILTER_WIDTH  # channels inside the filter
    layers: int = FILTER_LAYERS  # 3×3 convolutions


def decoded_canvases(model: Model, images: list[np.ndarray], stage_count: int = 1) -> list[np.ndarray]:
    """Each (H, W, C) uint8 image coded and decoded by ``model`` in ``stage_count`` stages
    (fidelity decoder, no filter)."""
    codes = codec.encode_codes_many(model, images, stage_count)
    grids = [Grid(a.shape[1], a.shape[0], model.arch.size) for a in images]
    canvases = codec.decode_codes_many(model, [c[0] for c in codes], grids, later=[c[1:] for c in codes])
    return [c.cropped().copy() for c in canvases]


def train_postfilter(
    model: Model, train: list[np.ndarray], recipe: PostFilterRecipe, stage_count: int = 1, log=print
) -> tuple[PostFilter, dict]:
    """A post-filter for ``model``'s canvases decoded with ``stage_count`` stages, trained on the
    photos ``train`` (RGB arrays at several sizes)."""
    started, cpu0 = time.time(), time.process_time()
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    decoded = decoded_canvases(model, train, stage_count)
    pairs = [(d, o) for d, o in zip(decoded, train, strict=True) if min(o.shape[:2]) >= recipe.crop]
    weights = np.array([o.shape[0] * o.shape[1] for _, o in pairs], np.float64)
    post = PostFilter(model.arch.channels, recipe.width, (1,) * recipe.layers)
    opt = torch.optim.Adam(post.parameters(), lr=recipe.lr)
    tile, total = model.arch.size, 0.0
    for step in range(recipe.steps):
        set_lr(opt, cosine(recipe.lr, step / recipe.steps))
        top, left = rng.integers(tile, size=2)  # this batch's position relative to the tile grid
        decoded, original = _crops(pairs, weights, recipe, rng, tile, int(top), int(left))
        filtered = post(decoded, tile, int(top), int(left))
        loss = F.mse_loss(filtered, original)
        if recipe.seam_weight:
            loss = loss + recipe.seam_weight * seam_step_error(filtered, original, tile, int(top), int(left))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
        if (step + 1) % 500 == 0:
            log(f"step {step + 1}/{recipe.steps}: training loss {total / 500:.6f}")
            total = 0.0
    post.eval()
    return post, {"wall_s": round(time.time() - started, 1), "cpu_hours": round((time.process_time() - cpu0) / 3600, 3)}


def seam_step_error(filtered: torch.Tensor, original: torch.Tensor, tile: int, top: int, left: int) -> torch.Tensor:
    """Mean squared difference between the filtered and the original steps from pixel to pixel
    across tile borders, for crops cut at (``top``, ``left``) of a canvas. MSE alone leaves
    these steps too large: the errors of neighbouring tiles are independent, so a visible grid
    costs little MSE."""
    errors = []
    for axis, offset in ((2, top), (3, left)):
        border = ((torch.arange(filtered.shape[axis] - 1) + offset + 1) % tile == 0).nonzero().flatten()
        step = filtered.diff(dim=axis).index_select(axis, border)
        errors.append((step - original.diff(dim=axis).index_select(axis, border)).square().flatten())
    return torch.cat(errors).mean()


def _crops(pairs, weights, recipe, rng, tile, top, left) -> tuple[torch.Tensor, torch.Tensor]:
    decoded, original = [], []
    for k in rng.choice(len(pairs), size=recipe.batch, p=weights / weights.sum()):
        d, o = pairs[k]
        rows = (o.shape[0] - recipe.crop - top) // tile + 1
        cols = (o.shape[1] - recipe.crop - left) // tile + 1
        y = top + tile * int(rng.integers(max(rows, 1)))
        x = left + tile * int(rng.integers(max(cols, 1)))
        decoded.append(d[y : y + recipe.crop, x : x + recipe.crop])
        original.append(o[y : y + recipe.crop, x : x + recipe.crop])
    return to_float(np.stack(decoded)), to_float(np.stack(original))


def evaluate_postfilter(model: Model, post: PostFilter, images: list[np.ndarray], stage_count: int = 1) -> dict:
    """Mean PSNR and blockiness of ``images`` decoded with ``stage_count`` stages, without and
    with the filter."""
    before = decoded_canvases(model, images, stage_count)
    after = [apply(post, d, model.arch.size, torch.device("cpu")) for d in before]

    def figures(decoded):
        psnrs = [quality.psnr(o[None], d[None]) for o, d in zip(images, decoded, strict=True)]
        blocks = [quality.blockiness(d, model.arch.size) for d in decoded]
        return {"psnr_db": round(float(np.mean(psnrs)), 3), "blockiness": round(float(np.mean(blocks)), 3)}

    return {"without": figures(before), "with": figures(after), "images": len(images), "stages": stage_count}


TRAIN_LONG_SIDES = (512, 1024)  # the training photos are decoded at these sizes of their long side
VAL_LONG_SIDE = 512


def photo_sets(data_dir: str | None) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(training canvases, validation photos, every photo's name and split) from ``lab.photos``."""
    from . import photos

    found = photos.folder_photos(Path(data_dir)) if data_dir else photos.default_photos()
    train = [a for p in photos.split_photos(found, "train") for a in photos.downscales(p, TRAIN_LONG_SIDES)]
    val = [photos.downscales(p, (VAL_LONG_SIDE,))[0] for p in photos.split_photos(found, "val")]
    names = [f"{photos.describe(p).split(' (')[0]} ({s})" for s in photos.SPLITS for p in photos.split_photos(found, s)]
    return train, val, names


def card_key(stage_count: int) -> str:
    """The card entry describing the seam filter after ``stage_count`` stages."""
    return "postfilter" if stage_count == 1 else f"stage{stage_count}_postfilter"


def add_postfilter(
    base: Model, post: PostFilter, name: str, path: Path, card: dict, stage_count: int = 1, delta: bool = False
) -> Path:
    """A new model file: ``base`` unchanged (weights, priors, a realism decoder, its other
    filters) plus ``post`` as the filter after ``stage_count`` stages, described in the card
    (``delta``: see ``extend_model``)."""
    exported, base_card = extend_model(base, name, path, postfilter=post, postfilter_stage=stage_count, delta=delta)
    write_card(exported, {**base_card, card_key(stage_count): card})
    return exported
