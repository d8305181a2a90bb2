"""`lbaecodec train`'s options for the realism stage's adversary: its weight, the discriminator, what
it sees, the reconstruction term beside it, and the decoder's moving average."""

from __future__ import annotations

from collections.abc import Callable

import click

from ..architecture import DISC_AUGMENTS, DISC_NORMS, PERCEPTUAL_NETS


def _augment_policy(value: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [part for part in parts if part not in DISC_AUGMENTS]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: choose from {','.join(DISC_AUGMENTS)}")
    return parts


ADVERSARY_OPTIONS = [
    click.option(
        "--adv-weight",
        default=0.5,
        show_default=True,
        type=click.FloatRange(min=0),
        help="realism: λ on the adversarial loss, times VQGAN's adaptive balance (the ratio of "
        "the reconstruction and adversarial gradients at the last layer; ~0.002 with MSE). "
        "0: no discriminator, the decoder learns to reconstruct (best epoch by validation loss).",
    ),
    click.option(
        "--fixed-weight",
        is_flag=True,
        help="realism: use --adv-weight as a fixed λ (e.g. 0.1), no adaptive balance: one backward pass "
        "fewer per step.",
    ),
    click.option(
        "--disc-width",
        default=64,
        show_default=True,
        type=click.IntRange(min=1),
        help="realism: discriminator channels.",
    ),
    click.option(
        "--disc-depth",
        default=2,
        show_default=True,
        type=click.IntRange(1, 5),
        help="realism: stride-2 convolutions in the discriminator: how large the patches it judges are "
        "(2: 26 pixels, texture; 3: 54 pixels, parts of a 64×64 face).",
    ),
    click.option(
        "--disc-scales",
        default=1,
        show_default=True,
        type=click.IntRange(1, 3),
        help="realism: discriminators at this many scales (pix2pixHD's multi-scale), each judging the image "
        "downscaled 2× more than the last, all weighing alike: 2 adds one that sees a 64×64 face's layout "
        "(on CelebA it learnt more slowly).",
    ),
    click.option(
        "--disc-norm",
        type=click.Choice(DISC_NORMS),
        default="batch",
        show_default=True,
        help="realism: the discriminator's normalisation. batch is VQGAN's; spectral keeps it "
        "1-Lipschitz, too weak to tell decoded images from originals here (its loss stayed near chance).",
    ),
    click.option(
        "--disc-lr",
        default=2e-4,
        show_default=True,
        type=click.FloatRange(min=0, min_open=True),
        help="realism: the discriminator's Adam learning rate (lower it for a discriminator that wins too fast).",
    ),
    click.option(
        "--r1",
        "r1_gamma",
        default=0.0,
        show_default=True,
        type=click.FloatRange(min=0),
        help="realism: γ of an R1 gradient penalty on the discriminator's real images (e.g. 1 or 10; 0: none); "
        "keeps a winning discriminator's gradients informative. One extra backward pass through it per step.",
    ),
    click.option(
        "--disc-augment",
        default="",
        metavar="PARTS",
        callback=lambda ctx, param, value: _augment_policy(value),
        help="realism: DiffAugment what the discriminator sees, real and decoded alike, so that it cannot "
        f"memorise a small training set: comma-separated parts of {','.join(DISC_AUGMENTS)} "
        "(train extra: kornia). On CelebA translation,cutout reached the FID that color,translation,cutout "
        "reached in 4× the epochs (color lets off-colour outputs pass). [default: none]",
    ),
    click.option(
        "--disc-warmup",
        default=200,
        show_default=True,
        type=click.IntRange(min=0),
        help="realism: steps the discriminator trains alone before the decoder listens to it.",
    ),
    click.option(
        "--feature-match",
        default=0.0,
        show_default=True,
        type=click.FloatRange(min=0),
        help="realism: weight of pix2pixHD's feature-matching loss, the mean absolute difference between the "
        "discriminator's inner activations on each image and on its reconstruction (0.1 pulls about as hard as MSE "
        "on CelebA; it slowed the FID's fall there). 0: none.",
    ),
    click.option(
        "--rec-scale",
        default=1,
        show_default=True,
        type=click.Choice(["1", "2", "4"]),
        callback=lambda ctx, param, value: int(value),
        help="realism: hold the decoder to the original only at this coarser scale: its reconstruction loss is "
        "the MSE between both images average-pooled by this factor, so detail finer than that is left to the "
        "discriminator (frequency separation, Fritsche et al. 2019). On CelebA 2 grew a 2×2 grid that the "
        "discriminator let pass (validation FID 55 → 84). 1: the model's own loss at full resolution.",
    ),
    click.option(
        "--perceptual",
        default=0.0,
        show_default=True,
        type=click.FloatRange(min=0),
        help="realism: add this weight × a perceptual distance (shift-tolerant LPIPS on AlexNet, from the "
        "stlpips-pytorch wheel of the train extra) between each image and its reconstruction to the "
        "reconstruction loss, as VQGAN adds LPIPS. Not an Inception network: FID stays an outside judge. "
        "It adds about 1.5 s to a step of 64 faces of 64×64 on two cores. 0: none.",
    ),
    click.option(
        "--perceptual-net",
        default="alex",
        show_default=True,
        type=click.Choice(PERCEPTUAL_NETS),
        help="realism: the trunk of --perceptual's LPIPS. LPIPS's authors suggest vgg for optimising; it costs "
        "~5× alex (about 8 s more per step of 64 faces of 64×64 on two cores).",
    ),
    click.option(
        "--sample-adv",
        default=0.0,
        show_default=True,
        type=click.FloatRange(min=0),
        help="realism: also decode as many codes drawn like `sample --method cov` (the copula of the training "
        "codes) as there are images in a batch, and let the discriminator judge them too, their adversarial "
        "loss weighing this much against the reconstructions' (1: alike): a decoder for sampled codes as well "
        "as encoded ones. Logs val_sample_fid (samples against the validation FID images) and keeps every "
        "epoch's weights as epoch-N. 0: none.",
    ),
    click.option(
        "--ema",
        default=0.0,
        show_default=True,
        type=click.FloatRange(min=0, max=1, max_open=True),
        help="realism: keep a moving average of the decoder's weights with this decay per step (e.g. 0.995), "
        "and evaluate, select and ship the average; the log also gives the trained weights' validation "
        "PSNR and FID (val_psnr_trained, val_fid_trained). 0: none.",
    ),
]


def adversary_options(command: Callable) -> Callable:
    """The options above on ``command``, listed by --help in this order."""
    for option in reversed(ADVERSARY_OPTIONS):
        command = option(command)
    return command
