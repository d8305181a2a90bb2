"""`lbaecodec stage-data` and `add-stage`: train a model's next residual stage and ship it."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..registry import check_name
from .common import NEW_MODEL, PHOTO_DIR, clean_errors


@click.command("stage-data")
@click.argument("model")
@click.argument("out", metavar="OUT.npz")
@PHOTO_DIR
@clean_errors
def stage_data_cmd(model: str, out: str, data_dir: str | None) -> None:
    """Write the training tiles of MODEL's next residual stage to OUT.npz.

    Photo tiles (train, validation and test photos kept apart) are coded and decoded by every
    stage MODEL has; what is left of each tile, scaled around mid-grey, is an image for the next
    stage to code. Train that stage on it like any network, then ship it with `add-stage`.

    \b
    Example:
      lbaecodec stage-data cifar10 runs/cifar10-residuals.npz
      lbaecodec train --preset photo --dataset folder --data-dir runs/cifar10-residuals.npz --out runs/cifar10-stage2
      lbaecodec add-stage cifar10 runs/cifar10-stage2 runs/cifar10-residuals.npz --name cifar10-s2 \\
        --out runs/lbae-cifar10-s2-600.safetensors
    """
    from ..lab.stages import write_residual_set
    from ..zoo import load_model

    counts = write_residual_set(load_model(model, "cpu"), Path(out), data_dir)
    click.echo(f"wrote {out}: " + ", ".join(f"{n} {k[2:]} tiles" for k, n in counts.items()))


@click.command("add-stage")
@click.argument("model")
@click.argument("run", metavar="RUN_DIR")
@click.argument("residual_set", metavar="SET.npz")
@NEW_MODEL
@PHOTO_DIR
@clean_errors
def add_stage_cmd(
    model: str, run: str, residual_set: str, name: str, target: str, delta: bool, data_dir: str | None
) -> None:
    """Ship MODEL + the network of RUN_DIR (trained on SET.npz, which `stage-data MODEL` wrote)
    as MODEL's next residual stage.

    MODEL's tensors are kept as they are; the new stage's bit priors are fitted on its codes
    of the set's training tiles; the card records the run and, for each number of stages, PSNR
    and bits per tile on the test photos' tiles. The result is a new model (files name models by id).
    """
    from ..lab.export import command_line
    from ..lab.stages import add_stage
    from ..zoo import load_model

    check_name(name)
    if not (Path(run) / "best.json").is_file():
        raise InputError(f"{run}: no finished training run here (best.json missing)")
    try:
        base = load_model(model, "cpu")
        path = add_stage(base, Path(run), Path(residual_set), name, Path(target), data_dir, command_line(), delta)
    except ValueError as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {path}")
