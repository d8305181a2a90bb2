"""What the commands share: options, the error handler, reading inputs and writing outputs."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import click

from ..architecture import DATASETS, FIDELITY
from ..errors import InputError, LbaeError, printable
from ..files import write_atomic
from ..search import DEFAULT_LAMBDA, Search

DEVICE = click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N."
)


PHOTO_DIR = click.option(
    "--data-dir",
    default=None,
    metavar="FOLDER",
    help="A folder of photos (split by whole photo as for training). [default: the Debian photos]",
)


def NEW_MODEL(command: Callable) -> Callable:  # noqa: N802  (a decorator, named like the options)
    """--name and --out of a command that ships a model as a new one."""
    command = click.option("--out", "target", required=True, metavar="PATH", help="The new .safetensors file.")(command)
    help_delta = (
        "Store only what the new model adds to MODEL's file, which it names by hash and needs "
        "installed (weights/, or beside the new file) to load. [default: a whole, self-contained file]"
    )
    command = click.option("--delta", is_flag=True, help=help_delta)(command)
    help_name = "Name of the new model (a new name: files name models by id)."
    return click.option("--name", required=True, help=help_name)(command)


def decoder_option(default: str) -> Callable:
    """--decoder: which of the model's decoders turns codes into pixels."""
    return click.option(
        "--decoder",
        default=default,
        show_default=True,
        metavar="fidelity|realism|auto",
        help="fidelity: closest to the original (trained on pixel error alone). realism: the same "
        "bits through an adversarially trained decoder, sharper textures, lower PSNR. auto: "
        "realism where the model has one.",
    )


MAX_PIXELS = click.option(
    "--max-pixels",
    default=None,
    type=click.IntRange(min=0),
    metavar="N",
    help="Refuse images (and .lbae headers) of more pixels, before any work. 0: no limit. "
    "[default: Pillow's decompression-bomb limit, 178956970]",
)


def pixel_limit(max_pixels: int | None) -> int | None:
    """--max-pixels → the limit the library takes (None: no limit)."""
    from ..fileinfo import PILLOW_LIMIT

    return PILLOW_LIMIT if max_pixels is None else (max_pixels or None)


RDO = click.option(
    "--rdo",
    "rdo_strength",
    type=click.FloatRange(0, None),
    default=0.0,
    show_default=True,
    help="Rate-distortion optimisation: flip the code bits the encoder was least sure of where "
    "the prior makes them expensive. 0 keeps the encoder's code; 0.05 saves ~4 % of the bits "
    "at ~0.25 dB, 0.1 ~7 % at ~0.5 dB (cifar10-w64-rh, validation images). One stage; every "
    "reader decodes the files.",
)


def search_options(command: Callable) -> Callable:
    """--search ROUNDS, --search-lambda DB and --search-decoder: codes chosen with the decoder in
    the loop."""
    command = click.option(
        "--search-decoder",
        default=FIDELITY,
        show_default=True,
        metavar="fidelity|realism",
        help="With --search: the decoder whose pixels the search compares with the image (either decodes the file).",
    )(command)
    command = click.option(
        "--search-lambda",
        type=click.FloatRange(0, None),
        default=DEFAULT_LAMBDA,
        show_default=True,
        metavar="DB",
        help="With --search: the PSNR in dB one bit of file is worth. Larger: smaller files, "
        "less fidelity; 0: fidelity at any size.",
    )(command)
    return click.option(
        "--search",
        "search_rounds",
        type=click.IntRange(0, None),
        default=0,
        show_default=True,
        metavar="ROUNDS",
        help="Choose each tile's code with the decoder in the loop: up to ROUNDS rounds of bit "
        "flips that lower 10·log10(MSE) + λ·bits (20 is plenty). Slower to encode (~0.15 s per "
        "32×32 tile on 2 CPU cores), more PSNR per bit; every reader decodes the files. 0: the "
        "encoder's code. One stage, the torch runtime, not with --rdo.",
    )(command)


def search_of(search_rounds: int, search_lambda: float, search_decoder: str) -> Search | None:
    """The --search options → a ``Search``, or None for the encoder's own codes."""
    if not search_rounds:
        if search_lambda != DEFAULT_LAMBDA or search_decoder != FIDELITY:
            raise InputError("--search-lambda and --search-decoder go with --search ROUNDS")
        return None
    return Search(search_lambda, search_rounds, decoder=search_decoder)


FORCE = click.option("--force", "-f", is_flag=True, help="Overwrite an existing output file.")


def model_option(default: str | None = None, default_help: str = "") -> Callable:
    """--model NAME|PATH: an installed model's name or a .safetensors file."""
    return click.option(
        "--model",
        "-m",
        default=default,
        show_default=default is not None,
        metavar="NAME|PATH",
        help=f"Installed model name (see `lbaecodec models`) or a .safetensors file. {default_help}".rstrip(),
    )


DATASET = click.option("--dataset", type=click.Choice(DATASETS), default="cifar10", show_default=True)
DATA_DIR = click.option("--data-dir", default=None, metavar="PATH", help="Local copy (folder or .npz).")


def model_dataset(use: str) -> Callable:
    """--dataset (required: the model's own) and --data-dir of a command that ships a new model;
    ``use`` says what the dataset is for."""

    def add(command: Callable) -> Callable:
        dataset = click.option(
            "--dataset", type=click.Choice(DATASETS), required=True, help=f"The model's dataset: {use}"
        )
        return dataset(DATA_DIR(command))

    return add


def clean_errors(fn):
    """Bad input → one line on stderr and the error's exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.showwarning = lambda msg, *a, **k: click.echo(f"warning: {msg}", err=True)
            try:
                return fn(*args, **kwargs)
            except LbaeError as e:
                click.echo(f"error: {printable(str(e))}", err=True)
                sys.exit(e.exit_code)
            except OSError as e:
                click.echo(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), err=True)
                sys.exit(1)
            except MemoryError:
                click.echo("error: out of memory (image too large for this machine?)", err=True)
                sys.exit(1)
            except KeyboardInterrupt:
                click.echo("interrupted", err=True)
                sys.exit(130)

    return wrapper


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None


def write_output(path: str, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` atomically (never a partial file), or to stdout for '-'."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if path.endswith(("/", os.sep)) or target.is_dir():
        raise InputError(f"{path}: is a directory, not a file name")
    refuse_existing(path, force)
    if not target.parent.is_dir():
        raise InputError(f"{target.parent}: no such directory")
    write_atomic(target, data, overwrite=force)


def refuse_existing(path: str, force: bool) -> None:
    if path != "-" and Path(path).exists() and not force:
        raise InputError(f"{path} exists; use --force to overwrite")
