"""`lbaecodec train` and `lbaecodec export`: the training side of the command line."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from .cli import clean_errors
from .data import DATASETS
from .errors import InputError
from .network import PRESETS


def _load_data(dataset: str, data_dir: str | None, preset: str, limit: int | None):
    """(train images, train labels or None, test images, note on the data)."""
    import numpy as np

    from . import data

    arch = PRESETS[preset]
    labels = None
    if dataset == "folder":
        if not data_dir:
            raise InputError("--dataset folder needs --data-dir with your images")
        images = data.load_folder(Path(data_dir), arch.size, arch.channels)
        cut = max(1, len(images) // 10)
        rng = np.random.default_rng(0).permutation(len(images))
        train, test = images[rng[cut:]], images[rng[:cut]]
    else:
        train, labels = data.load(dataset, "train", data_dir)
        test = data.load(dataset, "test", data_dir)[0]
    if train.shape[1:] != (arch.size, arch.size, arch.channels):
        raise InputError(f"{dataset} images are {train.shape[1:]}, preset {preset} needs "
                         f"{(arch.size, arch.size, arch.channels)}")
    if limit:
        train, test = train[:limit], test[: max(1, limit // 5)]
        labels = None if labels is None else labels[:limit]
    source = data.describe_source(dataset, data_dir)
    note = f"{dataset} ({source}), {len(train)} train / {len(test)} test images"
    return train, labels, test, note


def _export(run: Path, name: str | None, preset: str, target: Path | None, dataset: str, loaded,
            which: str = "best", attributes: tuple[list[str], "np.ndarray"] | None = None) -> Path:
    import json

    from .data import LABEL_NAMES
    from .export import command_line, export_baseline, export_run

    train, labels, test, note = loaded
    kind = json.loads((run / f"{which}.json").read_text()).get("kind", "lbae")
    target = target or default_weights(preset, kind)
    if kind != "lbae":
        if attributes is not None:
            raise InputError("--attributes is for LBAE models, not baselines")
        return export_baseline(run, name or f"{kind}-{preset}", target, len(train), test, note,
                               command_line(), which)
    if attributes is not None:
        attributes = attributes[0], attributes[1][: len(train)]
    return export_run(run, name or preset, target, train, test, note, command_line(), which,
                      train_labels=labels, label_names=LABEL_NAMES.get(dataset), attributes=attributes)


def _attributes(path: str | None, dataset: str, data_dir: str | None):
    """CelebA attribute names and the training images' ±1 attribute matrix, or None."""
    if path is None:
        return None
    if dataset != "celeba":
        raise InputError("--attributes is the CelebA list_attr_celeba.txt; use it with --dataset celeba")
    from .data import celeba_attributes

    return celeba_attributes(path, "train", data_dir)


ATTRIBUTES = click.option(
    "--attributes", default=None, metavar="FILE",
    help="CelebA list_attr_celeba.txt: store attribute directions so that `lbaecodec edit "
         "--towards Smiling` works.")


def default_weights(preset: str, kind: str = "lbae") -> Path:
    if kind != "lbae":
        return Path("weights") / f"baseline-{kind}-{preset}.safetensors"
    return Path("weights") / f"lbae-{preset}-{PRESETS[preset].bits}.safetensors"


@click.command("train")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="cifar10", show_default=True,
              help="Architecture preset: tile size, channels, bits, loss.")
@click.option("--dataset", type=click.Choice([*DATASETS, "folder"]), default=None,
              help="Training data. [default: the preset's dataset]")
@click.option("--data-dir", default=None, metavar="PATH",
              help="Local copy: folder with the official files, an .npz, or your image folder. "
                   "Without it the official files are downloaded and checksummed.")
@click.option("--out", default=None, metavar="DIR", help="Run folder. [default: runs/PRESET]")
@click.option("--epochs", default=30, show_default=True, help="Total epochs (a resumed run continues to this).")
@click.option("--width", default=24, show_default=True, help="Channels of the first layer (64 = paper size).")
@click.option("--batch", default=128, show_default=True)
@click.option("--lr", default=1e-3, show_default=True, help="Peak learning rate (cosine decay to 1%).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--init-from", default=None, metavar="NAME|PATH",
              help="Start from shipped weights (e.g. on a fresh machine) instead of random.")
@click.option("--threads", default=None, type=int, help="CPU threads. [default: all cores]")
@click.option("--limit", default=None, type=int, help="Use only the first N training images (smoke runs).")
@click.option("--export", "export_to", default=None, metavar="PATH",
              help="Export the best model here when done. [default: weights/lbae-PRESET-BITS.safetensors]")
@click.option("--no-export", is_flag=True, help="Do not export when done.")
@click.option("--kind", type=click.Choice(["lbae", "vae", "vqvae"]), default="lbae", show_default=True,
              help="lbae: the codec. vae / vqvae: the paper's baselines for the bench (128 float "
                   "latents; 8x8x10 indexes into 512 codes), on the same body, data and loss.")
@ATTRIBUTES
@clean_errors
def train_cmd(preset, dataset, data_dir, out, epochs, width, batch, lr, resume, init_from,
              threads, limit, export_to, no_export, kind, attributes) -> None:
    """Train an LBAE model (or a baseline); checkpoints every epoch, resumable, exports the best.

    \b
    Example (the shipped CIFAR-10 model, on a local copy):
      lbaecodec train --preset cifar10 --data-dir ../shared/datasets/cifar10-jpeg75.npz
    Resume after an interruption:   add --resume
    Continue from shipped weights:  add --init-from cifar10 --out runs/cifar10-more
    The VAE baseline:               add --kind vae --out runs/vae-cifar10
    """
    import torch

    from . import train as training
    from .zoo import load_model

    if threads:
        torch.set_num_threads(threads)
    if attributes is not None and kind != "lbae":
        raise InputError("--attributes is for LBAE models, not baselines")
    found = _attributes(attributes, dataset or preset, data_dir)  # fail before training, not after
    loaded = _load_data(dataset or preset, data_dir, preset, limit)
    train_images, _, test_images, _ = loaded
    arch = replace(PRESETS[preset], width=width)
    start, init_progress = None, None
    if init_from:
        shipped = load_model(init_from, "cpu", kinds=(kind,))
        start, arch = shipped.net, shipped.arch
        init_progress = training.Progress(
            init_from=shipped.id, init_epochs=int(shipped.card.get("epochs", 0)),
            init_cpu_seconds=float(shipped.card.get("cpu_hours", 0.0)) * 3600)
    run = Path(out or (f"runs/{preset}" if kind == "lbae" else f"runs/{kind}-{preset}"))
    recipe = training.Recipe(epochs=epochs, batch=batch, lr=lr,
                             hflip=preset not in ("mnist", "fashion-mnist"))
    _, progress = training.train(arch, train_images, test_images, run, recipe, resume=resume,
                                 init_from=start, init_progress=init_progress, kind=kind)
    click.echo(f"best test loss {progress.best_test_loss:.6f} at epoch {progress.best_epoch}; run in {run}")
    if not no_export:
        target = _export(run, None, preset, Path(export_to) if export_to else None, dataset or preset,
                         loaded, attributes=found)
        click.echo(f"exported {target}")


@click.command("export")
@click.argument("run")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), required=True)
@click.option("--dataset", type=click.Choice([*DATASETS, "folder"]), default=None)
@click.option("--data-dir", default=None, metavar="PATH")
@click.option("--out", "export_to", default=None, metavar="PATH",
              help="[default: weights/lbae-PRESET-BITS.safetensors; baselines: weights/baseline-KIND-PRESET.safetensors]")
@click.option("--name", default=None, help="Model name stored in the file. [default: PRESET, or KIND-PRESET]")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@ATTRIBUTES
@clean_errors
def export_cmd(run, preset, dataset, data_dir, export_to, name, checkpoint, attributes) -> None:
    """Export a training RUN folder as a shipped model: fp16 weights, code statistics, and a
    card with the test PSNR measured on the exported weights."""
    if not (Path(run) / f"{checkpoint}.json").is_file():
        raise InputError(f"{run}: no {checkpoint} checkpoint found")
    found = _attributes(attributes, dataset or preset, data_dir)
    target = _export(Path(run), name, preset, Path(export_to) if export_to else None, dataset or preset,
                     _load_data(dataset or preset, data_dir, preset, None), checkpoint, found)
    click.echo(f"exported {target}")
