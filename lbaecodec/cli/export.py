"""`lbaecodec export`, `add-decoder` and `export-onnx`: shipping trained models."""

from __future__ import annotations

from pathlib import Path

import click

from ..architecture import DATASETS, PRESETS
from ..errors import InputError
from ..registry import check_name
from .common import DATA_DIR, NEW_MODEL, clean_errors, model_dataset
from .train import ATTRIBUTES


@click.command("export")
@click.argument("run")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), required=True)
@click.option("--dataset", type=click.Choice([*DATASETS, "folder"]), default=None)
@DATA_DIR
@click.option(
    "--out",
    "export_to",
    default=None,
    metavar="PATH",
    help="[default: weights/lbae-PRESET-BITS.safetensors; baselines: weights/baseline-KIND-PRESET.safetensors]",
)
@click.option("--name", default=None, help="Model name stored in the file. [default: PRESET, or KIND-PRESET]")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option(
    "--realism",
    default=None,
    metavar="RUN",
    help="A realism run trained on RUN's encoder: its best decoder ships in the same file.",
)
@ATTRIBUTES
@clean_errors
def export_cmd(run, preset, dataset, data_dir, export_to, name, checkpoint, realism, attributes) -> None:
    """Export a training RUN folder as a shipped model: fp16 weights, code statistics, and a
    card with the test PSNR measured on the exported weights."""
    if name is not None:
        check_name(name)  # before the minutes of work an export takes
    for folder, which in ((run, checkpoint), (realism, "best")):
        if folder is not None and not (Path(folder) / f"{which}.json").is_file():
            raise InputError(f"{folder}: no {which} checkpoint found")
    from ..lab.export import export_from_run
    from ..lab.trainset import celeba_attributes, load_training_data

    found = celeba_attributes(attributes, dataset or preset, data_dir)
    data = load_training_data(dataset or preset, data_dir, PRESETS[preset])
    target = export_from_run(
        Path(run),
        preset,
        dataset or preset,
        data,
        name,
        Path(export_to) if export_to else None,
        checkpoint,
        found,
        Path(realism) if realism else None,
    )
    click.echo(f"exported {target}")


@click.command("add-decoder")
@click.argument("model")
@click.argument("realism_run")
@NEW_MODEL
@model_dataset("its test split gives the card's realism PSNR.")
@click.option(
    "--epoch",
    type=click.IntRange(min=1),
    help="Ship the decoder kept at this epoch (epoch-N.safetensors: runs with --sample-adv keep every "
    "epoch, to choose between reconstruction and sample FID in the log) instead of the best checkpoint.",
)
@clean_errors
def add_decoder_cmd(model, realism_run, name, target, delta, dataset, data_dir, epoch) -> None:
    """Ship MODEL with the realism decoder of REALISM_RUN as a new model.

    Weights, statistics and priors of MODEL are copied unchanged, so the new model writes
    the same bits; its files name the new model.

    \b
    Example:
      lbaecodec train --stage realism --init-from cifar10 --out runs/cifar10-realism ...
      lbaecodec add-decoder cifar10 runs/cifar10-realism --name cifar10-r --dataset cifar10 \\
        --data-dir cifar10.npz --out weights/lbae-cifar10-r-600.safetensors
      (add --delta to store the realism decoder alone, naming cifar10's file by hash)
    """
    from ..lab import data
    from ..lab.export import add_realism, command_line
    from ..zoo import load_model

    check_name(name)
    if not (Path(realism_run) / "best.json").is_file():
        raise InputError(f"{realism_run}: no best checkpoint found")
    if epoch is not None and not (Path(realism_run) / f"epoch-{epoch}.safetensors").is_file():
        raise InputError(f"{realism_run}: no weights kept at epoch {epoch} (epoch-{epoch}.safetensors)")
    base = load_model(model, "cpu")
    test = data.load(dataset, "test", data_dir)[0]
    try:
        path = add_realism(base, Path(realism_run), name, Path(target), test, command_line(), delta, epoch)
    except ValueError as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {path}")


@click.command("export-onnx")
@click.argument("model")
@click.argument("folder", required=False)
@clean_errors
def export_onnx_cmd(model: str, folder: str | None) -> None:
    """Write MODEL as ONNX graphs (encoder, each decoder) with its priors and a model.json, for
    decoders outside Python and for `lbaecodec decode --runtime onnx`.

    FOLDER defaults to where `decode --runtime onnx` looks: ~/.cache/lbaecodec/onnx/NAME@HASH.

    \b
    Example:  lbaecodec export-onnx cifar10 cifar10-onnx/
    """
    from ..lab.onnx_export import export_onnx
    from ..zoo import load_model

    out = export_onnx(load_model(model, "cpu"), Path(folder) if folder else None)
    click.echo(f"wrote {out}")
