"""`lbaecodec train` and `lbaecodec export`: the training side of the command line."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cli import clean_errors
from .architecture import DATASETS, PRESETS, STAGES
from .errors import InputError

if TYPE_CHECKING:
    import numpy as np
from .registry import check_name


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
            which: str = "best", attributes: tuple[list[str], "np.ndarray"] | None = None,
            realism: Path | None = None) -> Path:
    import json

    from .data import LABEL_NAMES
    from .export import command_line, export_baseline, export_run

    train, labels, test, note = loaded
    kind = json.loads((run / f"{which}.json").read_text()).get("kind", "lbae")
    target = target or default_weights(preset, kind)
    if kind != "lbae":
        if realism is not None:
            raise InputError("--realism is for LBAE models, not baselines")
        if attributes is not None:
            raise InputError("--attributes is for LBAE models, not baselines")
        return export_baseline(run, name or f"{kind}-{preset}", target, len(train), test, note,
                               command_line(), which)
    if attributes is not None:
        attributes = attributes[0], attributes[1][: len(train)]
    return export_run(run, name or preset, target, train, test, note, command_line(), which,
                      train_labels=labels, label_names=LABEL_NAMES.get(dataset), attributes=attributes,
                      realism_run=realism)


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


def split_validation(images: "np.ndarray", labels, size: int, seed: int = 0):
    """(train, train labels, validation): a seeded random ``size`` images carved from the
    training split (the local CIFAR-10 copy is sorted by class: the last images are all trucks)."""
    import numpy as np

    if not 0 < size < len(images):
        raise InputError(f"--val-size {size}: must be between 1 and {len(images) - 1}")
    order = np.random.default_rng(seed).permutation(len(images))
    keep, val = np.sort(order[size:]), np.sort(order[:size])
    return images[keep], None if labels is None else labels[keep], images[val]


def _fid_probe(val_images, count: int):
    """Validation FID each epoch on the first ``count`` validation images (needs the bench extra)."""
    from .data import default_cache
    from .metrics import fid as fidlib
    from .train import FidProbe

    images = val_images[:count]
    extractor = fidlib.InceptionFeatures("cpu", progress=False)
    reference = fidlib.cached_statistics(images, extractor, default_cache() / "fid")
    return FidProbe(images, lambda recs: round(fidlib.frechet_distance(*reference, *fidlib.statistics(extractor(recs))), 3))


@click.command("train")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="cifar10", show_default=True,
              help="Architecture preset: tile size, channels, bits, loss.")
@click.option("--dataset", type=click.Choice([*DATASETS, "folder"]), default=None,
              help="Training data. [default: the preset's dataset]")
@click.option("--data-dir", default=None, metavar="PATH",
              help="Local copy: folder with the official files, an .npz, or your image folder. "
                   "Without it the official files are downloaded and checksummed.")
@click.option("--out", default=None, metavar="DIR", help="Run folder. [default: runs/PRESET]")
@click.option("--stage", type=click.Choice(STAGES), default="fidelity", show_default=True,
              help="fidelity: train the network on its reconstruction loss. realism: train a second "
                   "decoder with an adversarial loss on a trained model's frozen encoder (give "
                   "--init-from the model or run).")
@click.option("--epochs", default=30, show_default=True,
              help="Total epochs (a resumed run continues to this). 0: fit --budget-minutes.")
@click.option("--budget-minutes", default=0.0, show_default=True,
              help="With --epochs 0: the second epoch's time sets how many epochs fit this budget.")
@click.option("--max-minutes", default=None, type=float,
              help="Stop (checkpointed) after the epoch that passes this much time; --resume continues.")
@click.option("--width", default=24, show_default=True, help="Channels of the first layer (64 = paper size).")
@click.option("--batch", default=128, show_default=True)
@click.option("--lr", default=None, type=float, help="Peak learning rate (cosine decay to 1%). "
              "[default: 1e-3; realism: 1e-4]")
@click.option("--adv-weight", default=0.5, show_default=True,
              help="realism: λ on the adversarial loss, times VQGAN's adaptive balance (the ratio of "
                   "the reconstruction and adversarial gradients at the last layer; ~0.002 with MSE).")
@click.option("--fixed-weight", is_flag=True,
              help="realism: use --adv-weight as a fixed λ (e.g. 0.1), no adaptive balance: one "
                   "backward pass fewer per step.")
@click.option("--disc-width", default=64, show_default=True, help="realism: discriminator channels.")
@click.option("--val-size", default=5000, show_default=True,
              help="Validation images carved (seeded, at random) from the training split; the best "
                   "epoch is chosen on them, never on the test split.")
@click.option("--val-fid", default=0, show_default=True,
              help="Also measure FID on this many validation images each epoch (bench extra; "
                   "realism selects its best epoch by it).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--init-from", default=None, metavar="NAME|PATH",
              help="Start from shipped weights (e.g. on a fresh machine) instead of random; a run "
                   "folder's best checkpoint also works.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--bf16", is_flag=True, help="bf16 autocast (CUDA).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (fidelity stage).")
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
def train_cmd(preset, dataset, data_dir, out, stage, epochs, budget_minutes, max_minutes, width, batch, lr,
              adv_weight, fixed_weight, disc_width, val_size, val_fid, resume, init_from, device, bf16, compile_, threads,
              limit, export_to, no_export, kind, attributes) -> None:
    """Train an LBAE model (or a baseline, or a realism decoder); checkpoints every epoch,
    resumable, keeps the best epoch on a validation split, exports it.

    \b
    Example (the shipped CIFAR-10 model, on a local copy):
      lbaecodec train --preset cifar10 --data-dir ../shared/datasets/cifar10-jpeg75.npz
    Resume after an interruption:   add --resume
    Continue from shipped weights:  add --init-from cifar10 --out runs/cifar10-more
    The VAE baseline:               add --kind vae --out runs/vae-cifar10
    A realism decoder:              add --stage realism --init-from cifar10 --out runs/cifar10-realism --val-fid 1000
    """
    import torch

    from . import train as training

    if threads:
        torch.set_num_threads(threads)
    if attributes is not None and kind != "lbae":
        raise InputError("--attributes is for LBAE models, not baselines")
    if stage == "realism" and (kind != "lbae" or not (init_from or resume)):
        raise InputError("--stage realism trains a decoder for a trained LBAE: give --init-from MODEL|RUN")
    if epochs == 0 and budget_minutes <= 0:
        raise InputError("--epochs 0 needs --budget-minutes")
    found = _attributes(attributes, dataset or preset, data_dir)  # fail before training, not after
    loaded = _load_data(dataset or preset, data_dir, preset, limit)
    train_images, labels, _, _ = loaded
    fit_images, _, val_images = split_validation(train_images, labels, min(val_size, len(train_images) // 5 or 1))
    arch = replace(PRESETS[preset], width=width)
    start, init_progress = None, None
    if init_from and not (resume and (Path(out or "") / "last.json").is_file()):
        start, arch, init_progress = _initial_weights(init_from, kind, stage)
    run = Path(out or (f"runs/{preset}" if kind == "lbae" else f"runs/{kind}-{preset}"))
    recipe = training.Recipe(
        epochs=epochs, batch=batch, lr=lr or (1e-4 if stage == "realism" else 1e-3), stage=stage,
        budget_minutes=budget_minutes, bf16=bf16, compile=compile_, adv_weight=adv_weight,
        adaptive=not fixed_weight,
        disc_width=disc_width, hflip=preset not in ("mnist", "fashion-mnist"))
    probe = _fid_probe(val_images, val_fid) if val_fid else None
    _, progress = training.train(arch, fit_images, val_images, run, recipe, resume=resume, init_from=start,
                                 init_progress=init_progress, kind=kind, device=device,
                                 max_minutes=max_minutes, fid_probe=probe)
    click.echo(f"best {progress.best_metric} {progress.best_score:.6g} at epoch {progress.best_epoch}; run in {run}")
    if recipe.epochs and progress.epoch < recipe.epochs:
        click.echo(f"stopped after epoch {progress.epoch} of {recipe.epochs} (--max-minutes); add --resume to go on")
    elif not no_export and stage == "fidelity":
        target = _export(run, None, preset, Path(export_to) if export_to else None, dataset or preset,
                         loaded, attributes=found)
        click.echo(f"exported {target}")
    elif stage == "realism":
        click.echo(f"ship it with its base: lbaecodec add-decoder MODEL {run} --name NEW ... "
                   f"(or lbaecodec export BASE_RUN --realism {run} ...)")


def _initial_weights(spec: str, kind: str, stage: str):
    """(network, architecture, progress) to start from: a shipped model or a run folder."""
    from . import train as training
    from .zoo import load_model

    if Path(spec).is_dir():
        ckpt = training.load_checkpoint(Path(spec), "best")
        prior = ckpt.progress
        progress = training.Progress(init_from=str(spec), init_epochs=prior.total_epochs,
                                     init_cpu_seconds=prior.cpu_seconds + prior.init_cpu_seconds)
        return ckpt.model, ckpt.arch, progress if stage == "fidelity" else training.Progress(init_from=str(spec))
    shipped = load_model(spec, "cpu", kinds=(kind,))
    if stage == "realism":
        return shipped.net, shipped.arch, training.Progress(init_from=shipped.id)
    progress = training.Progress(
        init_from=shipped.id, init_epochs=int(shipped.card.get("epochs", 0)),
        init_cpu_seconds=float(shipped.card.get("cpu_hours", 0.0)) * 3600)
    return shipped.net, shipped.arch, progress


@click.command("export")
@click.argument("run")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), required=True)
@click.option("--dataset", type=click.Choice([*DATASETS, "folder"]), default=None)
@click.option("--data-dir", default=None, metavar="PATH")
@click.option("--out", "export_to", default=None, metavar="PATH",
              help="[default: weights/lbae-PRESET-BITS.safetensors; baselines: weights/baseline-KIND-PRESET.safetensors]")
@click.option("--name", default=None, help="Model name stored in the file. [default: PRESET, or KIND-PRESET]")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--realism", default=None, metavar="RUN",
              help="A realism run trained on RUN's encoder: its best decoder ships in the same file.")
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
    found = _attributes(attributes, dataset or preset, data_dir)
    target = _export(Path(run), name, preset, Path(export_to) if export_to else None, dataset or preset,
                     _load_data(dataset or preset, data_dir, preset, None), checkpoint, found,
                     Path(realism) if realism else None)
    click.echo(f"exported {target}")


@click.command("add-decoder")
@click.argument("model")
@click.argument("realism_run")
@click.option("--name", required=True, help="Name of the new model (a new name: files name models by id).")
@click.option("--out", "target", required=True, metavar="PATH", help="The new .safetensors file.")
@click.option("--dataset", type=click.Choice(DATASETS), required=True,
              help="The model's dataset: its test split gives the card's realism PSNR.")
@click.option("--data-dir", default=None, metavar="PATH")
@clean_errors
def add_decoder_cmd(model, realism_run, name, target, dataset, data_dir) -> None:
    """Ship MODEL with the realism decoder of REALISM_RUN as a new model.

    Weights, statistics and priors of MODEL are copied unchanged, so the new model writes
    the same bits; its files name the new model.

    \b
    Example:
      lbaecodec train --stage realism --init-from cifar10 --out runs/cifar10-realism ...
      lbaecodec add-decoder cifar10 runs/cifar10-realism --name cifar10-r --dataset cifar10 \\
        --data-dir cifar10.npz --out weights/lbae-cifar10-r-600.safetensors
    """
    from . import data
    from .export import add_realism, command_line
    from .zoo import load_model

    check_name(name)
    if not (Path(realism_run) / "best.json").is_file():
        raise InputError(f"{realism_run}: no best checkpoint found")
    base = load_model(model, "cpu")
    test = data.load(dataset, "test", data_dir)[0]
    try:
        path = add_realism(base, Path(realism_run), name, Path(target), test, command_line())
    except ValueError as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {path}")
