"""`lbaecodec train`: making models (fidelity networks, baselines, realism decoders); shipping them: export.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from click.core import ParameterSource

from ..architecture import DATASETS, PRESETS, STAGES, TRANSPOSE, UPSAMPLES, ModelKind
from ..errors import InputError
from .adversary_options import adversary_options
from .common import clean_errors

ATTRIBUTES = click.option(
    "--attributes",
    default=None,
    metavar="FILE",
    help="CelebA list_attr_celeba.txt: store attribute directions so that `lbaecodec edit --towards Smiling` works.",
)


# recipe fields a resumed run may change
RESUME_CHANGES = ("lr", "adv_weight", "disc_lr", "r1_gamma", "feature_match", "rec_scale", "perceptual", "ema", "rate")


def _resume_changes(recipe, ctx: click.Context) -> dict[str, float]:
    """The recipe fields given on the command line that a resumed run takes over its checkpoint's."""
    given = [name for name in RESUME_CHANGES if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    return {name: getattr(recipe, name) for name in given}


def _check_realism_options(
    stage: str,
    adv_weight: float,
    ema: float,
    feature_match: float,
    rec_scale: int,
    perceptual: float,
    sample_adv: float,
    decoder_width: int | None,
) -> None:
    """A one-line error for an option that only a realism decoder's training (or its adversary) uses."""
    realism = stage == "realism"
    adversarial = realism and adv_weight > 0
    with_realism, with_adversary = "use it with --stage realism", "give --stage realism --adv-weight > 0"
    rules = (
        (ema, realism, f"--ema averages a realism decoder's weights: {with_realism}"),
        (feature_match, adversarial, f"--feature-match compares discriminator activations: {with_adversary}"),
        (rec_scale > 1, adversarial, f"--rec-scale leaves fine detail to a discriminator: {with_adversary}"),
        (perceptual, realism, f"--perceptual is a realism decoder's loss: {with_realism}"),
        (sample_adv, adversarial, f"--sample-adv lets a discriminator judge sampled codes: {with_adversary}"),
        (
            decoder_width is not None,
            realism,
            "--decoder-width is for --stage realism (a second decoder for a trained model's codes)",
        ),
    )
    for given, applies, message in rules:
        if given and not applies:
            raise InputError(message)


@click.command("train")
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="cifar10",
    show_default=True,
    help="Architecture preset: tile size, channels, bits, loss.",
)
@click.option(
    "--dataset",
    type=click.Choice([*DATASETS, "folder"]),
    default=None,
    help="Training data. [default: the preset's dataset]",
)
@click.option(
    "--data-dir",
    default=None,
    metavar="PATH",
    help="Local copy: folder with the official files, an .npz, or your image folder. "
    "Without it the official files are downloaded and checksummed.",
)
@click.option("--out", default=None, metavar="DIR", help="Run folder. [default: runs/PRESET]")
@click.option(
    "--stage",
    type=click.Choice(STAGES),
    default="fidelity",
    show_default=True,
    help="fidelity: train the network on its reconstruction loss. realism: train a second "
    "decoder with an adversarial loss on a trained model's frozen encoder (give "
    "--init-from the model or run).",
)
@click.option(
    "--epochs",
    default=30,
    show_default=True,
    type=click.IntRange(min=0),
    help="Total epochs. 0: fit --budget-minutes. With --resume: the run's own plan unless given.",
)
@click.option(
    "--budget-minutes",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="With --epochs 0: the second epoch's time sets how many epochs fit this budget.",
)
@click.option(
    "--max-minutes",
    default=None,
    type=click.FloatRange(min=0),
    help="Stop (checkpointed) after the epoch that passes this much time; --resume continues.",
)
@click.option(
    "--width",
    default=24,
    show_default=True,
    type=click.IntRange(min=1),
    help="Channels of the first layer (64 = paper size).",
)
@click.option(
    "--decoder-width",
    default=None,
    type=click.IntRange(min=1),
    help="realism: the realism decoder's width (wider than the model's: more capacity for the same "
    "codes). A width other than that of the decoder it starts from means a new decoder, trained from "
    "scratch: teach it to reconstruct first (--adv-weight 0), then continue that run adversarially "
    "(--init-from RUN). [default: the decoder it starts from]",
)
@click.option(
    "--upsample",
    default=None,
    type=click.Choice(UPSAMPLES),
    help="How the decoder doubles resolution: 4×4 transposed convolutions (the paper's) or a "
    "nearest-neighbour resize then a 3×3 convolution (no checkerboard texture under adversarial "
    "training; 2.25× the arithmetic in those layers). With --stage realism, like --decoder-width: "
    "another upsampling than the decoder it starts from means a new decoder. "
    "[default: transpose, or that of the decoder it starts from]",
)
@click.option("--batch", default=128, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--shift",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Move each training image by up to N pixels each way, a new draw every time (a random "
    "crop of the image reflect-padded by N): more distinct tiles than the dataset holds, against "
    "overfitting (the paper-size CIFAR-10 network overfits its 45,000 images after ~120 epochs). "
    "0: none. Needs the train extra (kornia).",
)
@click.option(
    "--lr",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Peak learning rate (cosine decay to 1%). [default: 1e-3; realism: 1e-4]",
)
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="fidelity: add W x the codes' bits per image value (under a context prior learned beside "
    "them) to the loss: fewer bits (CIFAR-10: bench/TRAINING.md). Best epoch: least loss + W x bits.",
)
@adversary_options
@click.option(
    "--val-size",
    default=5000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Validation images carved (seeded, at random) from the training split; the best "
    "epoch is chosen on them, never on the test split.",
)
@click.option(
    "--val-fid",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Also measure FID on this many validation images each epoch, spread evenly through "
    "them (bench extra; realism selects its best epoch by it).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its last checkpoint, with its recipe; --epochs may extend it, and "
    "--lr, --adv-weight, --disc-lr, --r1, --feature-match, --rec-scale, --perceptual, --ema and --rate given with it "
    "change the rest of the run.",
)
@click.option(
    "--init-from",
    default=None,
    metavar="NAME|PATH",
    help="Start from shipped weights (e.g. on a fresh machine) instead of random; a run "
    "folder's best checkpoint also works. --stage realism continues the model's realism decoder "
    "if it ships one (else starts from its fidelity decoder).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--bf16",
    is_flag=True,
    help="bf16 autocast: CUDA, and CPUs with AVX-512 BF16 or AMX (~1.6x faster on a Zen 4 for a realism decoder).",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (fidelity stage).")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads. [default: all cores]")
@click.option(
    "--limit", default=None, type=click.IntRange(min=2), help="Use only the first N training images (smoke runs)."
)
@click.option(
    "--export",
    "export_to",
    default=None,
    metavar="PATH",
    help="Export the best model here when done. [default: weights/lbae-PRESET-BITS.safetensors]",
)
@click.option("--no-export", is_flag=True, help="Do not export when done.")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in ModelKind]),
    default=ModelKind.LBAE.value,
    show_default=True,
    help="lbae: the codec. vae / vqvae: the paper's baselines for the bench (VAE: the paper's "
    "float latents, 16 for MNIST and Fashion-MNIST, 64 for CelebA, 128 for CIFAR-10; VQ-VAE: "
    "8x8x10 indexes into 512 codes), on the same body, data and loss.",
)
@ATTRIBUTES
@clean_errors
def train_cmd(
    preset,
    dataset,
    data_dir,
    out,
    stage,
    epochs,
    budget_minutes,
    max_minutes,
    width,
    decoder_width,
    upsample,
    batch,
    shift,
    lr,
    rate,
    adv_weight,
    fixed_weight,
    disc_width,
    disc_depth,
    disc_scales,
    disc_norm,
    disc_lr,
    r1_gamma,
    disc_augment,
    disc_warmup,
    feature_match,
    rec_scale,
    perceptual,
    perceptual_net,
    sample_adv,
    ema,
    val_size,
    val_fid,
    resume,
    init_from,
    device,
    bf16,
    compile_,
    threads,
    limit,
    export_to,
    no_export,
    kind,
    attributes,
) -> None:
    """Train an LBAE model (or a baseline, or a realism decoder); checkpoints every epoch,
    resumable, keeps the best epoch on a validation split, exports it.

    \b
    Example (the shipped CIFAR-10 model, on a local copy):
      lbaecodec train --preset cifar10 --data-dir ../shared/datasets/cifar10-jpeg75.npz
    Resume after an interruption:   add --resume
    Continue from shipped weights:  add --init-from cifar10 --out runs/cifar10-more
    The VAE baseline:               add --kind vae --out runs/vae-cifar10
    A realism decoder:              add --stage realism --init-from cifar10 --out runs/cifar10-realism --val-fid 1000
    Several processes (DDP):        torchrun --standalone --nproc_per_node 2 -m lbaecodec train ...
    """
    import torch

    from ..lab import distributed
    from ..lab import train as training
    from ..lab.adversarial import augmenter
    from ..lab.baselines import baseline_architecture
    from ..lab.checkpoint import initial_weights
    from ..lab.perceptual import weights_file
    from ..lab.trainset import celeba_attributes, load_training_data, split_validation

    kind = ModelKind(kind)
    if threads:
        torch.set_num_threads(threads)
    if attributes is not None and kind != ModelKind.LBAE:
        raise InputError("--attributes is for LBAE models, not baselines")
    if stage == "realism" and (kind != ModelKind.LBAE or not (init_from or resume)):
        raise InputError("--stage realism trains a decoder for a trained LBAE: give --init-from MODEL|RUN")
    _check_realism_options(stage, adv_weight, ema, feature_match, rec_scale, perceptual, sample_adv, decoder_width)
    if rate and (stage != "fidelity" or kind != ModelKind.LBAE):
        raise InputError("--rate trains an LBAE to spend fewer bits: use it with --stage fidelity --kind lbae")
    if perceptual:
        weights_file(perceptual_net)  # the same for a missing stlpips-pytorch, before any training
    if upsample is not None and kind != ModelKind.LBAE:
        raise InputError("--upsample is for LBAE decoders, not baselines")
    if upsample is not None and stage != "realism" and (init_from or resume):
        raise InputError("--upsample continues no fidelity run: use it from scratch, or with --stage realism")
    if epochs == 0 and budget_minutes <= 0:
        raise InputError("--epochs 0 needs --budget-minutes")
    found = celeba_attributes(attributes, dataset or preset, data_dir)  # fail before training, not after
    augmenter(disc_augment)  # the same for a missing kornia
    arch = baseline_architecture(replace(PRESETS[preset], width=width, upsample=upsample or TRANSPOSE), kind, preset)
    if shift > arch.size // 2:
        raise InputError(f"--shift {shift}: at most half the {arch.size}-pixel tile ({arch.size // 2})")
    training.shifter(shift, (arch.size, arch.size))  # the same for a missing kornia
    data = load_training_data(dataset or preset, data_dir, arch, limit)
    if data.val is not None:  # held out by whole photo, not carved from the training tiles
        fit_images, val_images = data.train, data.val
    else:
        fit_images, _, val_images = split_validation(data.train, data.labels, min(val_size, len(data.train) // 5 or 1))
    start, init_progress = None, None
    if init_from and not (resume and (Path(out or "") / "last.json").is_file()):
        start, arch, init_progress = initial_weights(init_from, kind, stage)
        if decoder_width is not None or upsample is not None:  # a new decoder; the encoder copied
            arch = arch.with_decoder(decoder_width or arch.decoder_arch.width, upsample or arch.upsample)
    run = Path(out or (f"runs/{preset}" if kind == ModelKind.LBAE else f"runs/{kind}-{preset}"))
    ctx = click.get_current_context()
    if resume and (run / "last.json").is_file() and ctx.get_parameter_source("epochs") != ParameterSource.COMMANDLINE:
        epochs = 0  # the checkpoint's planned epochs go on, not --epochs' default
    recipe = training.Recipe(
        epochs=epochs,
        batch=batch,
        lr=lr or (1e-4 if stage == "realism" else 1e-3),
        stage=stage,
        budget_minutes=budget_minutes,
        bf16=bf16,
        compile=compile_,
        adv_weight=adv_weight,
        adaptive=not fixed_weight,
        disc_width=disc_width,
        disc_depth=disc_depth,
        disc_scales=disc_scales,
        disc_norm=disc_norm,
        disc_lr=disc_lr,
        r1_gamma=r1_gamma,
        disc_augment=disc_augment,
        disc_warmup_steps=disc_warmup,
        feature_match=feature_match,
        rec_scale=rec_scale,
        perceptual=perceptual,
        perceptual_net=perceptual_net,
        sample_adv=sample_adv,
        ema=ema,
        hflip=preset not in ("mnist", "fashion-mnist"),
        shift=shift,
        rate=rate,
    )
    changes = _resume_changes(recipe, ctx) if resume else {}
    world = distributed.join(distributed.rank_device(torch.device(device)))
    probe = training.validation_fid_probe(val_images, val_fid) if val_fid and world.main else None
    _, progress, ran = training.train(
        arch,
        fit_images,
        val_images,
        run,
        recipe,
        resume=resume,
        resume_changes=changes,
        init_from=start,
        init_progress=init_progress,
        kind=kind,
        device=device,
        max_minutes=max_minutes,
        fid_probe=probe,
    )
    distributed.leave(world)
    if not world.main:
        return  # under torchrun rank 0 alone reports and exports
    click.echo(f"best {progress.best_metric} {progress.best_score:.6g} at epoch {progress.best_epoch}; run in {run}")
    if progress.epoch < ran.epochs or not ran.epochs:  # cut by the clock (a budget's plan is fixed after epoch 2)
        plan = f" of {ran.epochs}" if ran.epochs else ""
        click.echo(f"stopped after epoch {progress.epoch}{plan} (--max-minutes); add --resume to go on")
    elif not no_export and stage == "fidelity":
        from ..lab.export import export_from_run

        target = export_from_run(
            run, preset, dataset or preset, data, target=Path(export_to) if export_to else None, attributes=found
        )
        click.echo(f"exported {target}")
    elif stage == "realism":
        click.echo(
            f"ship it with its base: lbaecodec add-decoder MODEL {run} --name NEW ... "
            f"(or lbaecodec export BASE_RUN --realism {run} ...)"
        )
