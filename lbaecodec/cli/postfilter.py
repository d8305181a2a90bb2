"""`lbaecodec add-postfilter`: train a model's seam post-filter on photos and ship it as a new model."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from ..architecture import FILTER_LAYERS, FILTER_WIDTH, MAX_FILTER_LAYERS, MAX_FILTER_WIDTH
from ..errors import InputError
from ..registry import check_name
from .common import NEW_MODEL, PHOTO_DIR, clean_errors


@click.command("add-postfilter")
@click.argument("model")
@NEW_MODEL
@PHOTO_DIR
@click.option(
    "--steps",
    default=3000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Optimiser steps (batches of 16 crops of 96×96).",
)
@click.option(
    "--stages",
    "stage_count",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Train the filter for canvases decoded with this many residual stages (each number of "
    "stages has its own filter, or none).",
)
@click.option(
    "--seam-weight",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Weight of a loss on the pixel steps across tile borders (their squared difference from "
    "the original's) beside the MSE: higher removes more of the grid, at some PSNR.",
)
@click.option(
    "--width",
    default=FILTER_WIDTH,
    show_default=True,
    type=click.IntRange(1, MAX_FILTER_WIDTH),
    help="Channels inside the filter (its cost per pixel grows with the square).",
)
@click.option(
    "--layers",
    default=FILTER_LAYERS,
    show_default=True,
    type=click.IntRange(2, MAX_FILTER_LAYERS),
    help="3×3 convolutions: the filter sees this many pixels each way.",
)
@click.option(
    "--threads", default=None, type=click.IntRange(min=1), help="torch CPU threads [default: torch's choice]."
)
@clean_errors
def add_postfilter_cmd(
    model: str,
    name: str,
    target: str,
    delta: bool,
    data_dir: str | None,
    steps: int,
    stage_count: int,
    seam_weight: float,
    width: int,
    layers: int,
    threads: int | None,
) -> None:
    """Train a seam post-filter for MODEL and ship MODEL + filter as a new model.

    Training photos are coded and decoded by MODEL (its weights stay as they
    are) at long sides of 512 and 1024 pixels, with --stages residual stages; a
    small convolutional filter (--layers 3×3 layers of --width channels, told
    where the tile borders are) learns to turn the decoded canvases back into
    the originals: MSE, plus --seam-weight times a loss on the steps across tile
    borders (MSE alone leaves a visible grid; photo-s2f2's filters used 16).
    Its card records PSNR and blockiness on the validation photos
    without and with it. A staged model keeps one filter per number of stages
    decoded.

    \b
    Example:
      lbaecodec add-postfilter cifar10 --name cifar10-pf --out weights/lbae-cifar10-pf-600.safetensors
      lbaecodec add-postfilter photo-s2 --stages 2 --seam-weight 16 --name photo-s2-pf2 --out pf2.safetensors
    """
    import torch

    from ..lab.export import command_line, measured_on
    from ..lab.postfilter import PostFilterRecipe, add_postfilter, evaluate_postfilter, photo_sets, train_postfilter
    from ..zoo import load_model

    check_name(name)
    if threads:
        torch.set_num_threads(threads)
    base = load_model(model, "cpu")
    if stage_count > base.stage_count:
        raise InputError(f"--stages {stage_count}: model {base.id} has {base.stage_count} stage(s)")
    if base.stage(stage_count).postfilter is not None:
        raise InputError(f"model {base.id} has a post-filter after {stage_count} stage(s) already")
    train, val, names = photo_sets(data_dir)
    recipe = PostFilterRecipe(steps=steps, seam_weight=seam_weight, width=width, layers=layers)
    post, cost = train_postfilter(base, train, recipe, stage_count, log=lambda line: click.echo(line, err=True))
    figures = evaluate_postfilter(base, post, val, stage_count)
    click.echo(f"validation photos: {figures}", err=True)
    card = {
        "recipe": asdict(recipe),
        **cost,
        "photos": names,
        "validation": figures,
        "command": command_line(),
        "measured_on": measured_on(),
    }
    try:
        path = add_postfilter(base, post, name, Path(target), card, stage_count, delta)
    except ValueError as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {path}")
