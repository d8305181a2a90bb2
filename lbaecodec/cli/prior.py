"""`lbaecodec add-prior`: a model with another context prior (grouped or hidden), shipped as a new model."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..registry import check_name
from .common import NEW_MODEL, clean_errors, model_dataset


@click.command("add-prior")
@click.argument("model")
@click.option(
    "--groups",
    type=click.IntRange(min=1),
    help="A grouped prior of this many runs of consecutive bits, each decoded in one coder call per file "
    "(quicker, a few bits dearer).",
)
@click.option(
    "--hidden",
    type=click.IntRange(min=1, max=4096),
    help="A prior with a hidden layer of this many ReLU units (MADE): fewer bits, slower decoding.",
)
@click.option(
    "--dense",
    is_flag=True,
    help="A dense linear prior refitted as export now fits one (for models exported before lbaecodec "
    "0.12, whose priors were fitted with 100x the L2 weight: 4-20 % more bits on validation codes).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=4000,
    show_default=True,
    help="Adam steps (batches of 512 codes) to fit a --hidden prior.",
)
@NEW_MODEL
@model_dataset("the prior is fitted on its training split, measured on its test split.")
@clean_errors
def add_prior_cmd(model, groups, hidden, dense, steps, name, target, delta, dataset, data_dir) -> None:
    """Ship MODEL with another context prior as a new model: the same codes, in other bytes.

    The network is MODEL's; the prior is refitted on the codes of the training split. Give one
    of --groups (no dependencies inside each run of bits: --groups coder calls per file instead
    of one per bit), --hidden (each bit's logit adds ReLU units that see only earlier bits:
    cifar10 8.5 % and cifar10-w64 6 % fewer bits, at 1.2–1.5× the decoding time of a lone file)
    or --dense (the model's own kind of prior, refitted as lbaecodec now fits one). The card
    gives the rate on a validation split (a seeded random 5,000 training images, left out of
    that fit) for the new and a dense linear prior, and on the test split.

    \b
    Examples:
      lbaecodec add-prior cifar10 --groups 32 --name cifar10-g32 --dataset cifar10 \\
        --data-dir cifar10.npz --out weights/lbae-cifar10-g32-600.safetensors
      lbaecodec add-prior cifar10 --hidden 256 --name cifar10-h --dataset cifar10 \\
        --data-dir cifar10.npz --delta --out weights/lbae-cifar10-h-600.safetensors
    """
    from .. import entropy
    from ..lab import data
    from ..lab.export import add_context_prior, command_line
    from ..zoo import load_model

    if (groups is not None) + (hidden is not None) + dense != 1:
        raise InputError("give one of --groups N, --hidden UNITS or --dense")
    check_name(name)
    base = load_model(model, "cpu")
    if groups is not None and not 1 < groups < base.arch.bits:
        raise InputError(f"--groups {groups}: choose from 2 to {base.arch.bits - 1}")
    if hidden is not None:
        from ..lab import made

        kind, fit = "hidden", lambda codes: made.fit(codes, hidden, steps).to_prior()
    elif dense:
        kind, fit = "dense", entropy.fit
    else:
        kind, fit = "grouped", lambda codes: entropy.fit(codes, groups=groups)
    train, test = data.load(dataset, "train", data_dir)[0], data.load(dataset, "test", data_dir)[0]
    try:
        path = add_context_prior(base, kind, fit, train, test, name, Path(target), command_line(), delta=delta)
    except ValueError as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {path}")
