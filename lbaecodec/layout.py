"""Where a model file keeps each part (docs/ARCHITECTURE.md, "Model file"): the tensor names,
and the check that every tensor an architecture implies is there with its shape — the networks
built on the meta device from the file's own tensor table, before anything is allocated."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import torch

from . import deblock
from .architecture import REALISM, RESIZE, TRANSPOSE, Architecture, ModelKind
from .deblock import PostFilter
from .errors import ModelError
from .network import Decoder, build_network

# Tensor names in a model file
MODEL_PREFIX = "model."  # the network: encoder and fidelity decoder
REALISM_PREFIX = REALISM + "."  # the realism decoder, when the model has one
POSTFILTER_PREFIX = "postfilter."  # the seam filter over canvases decoded with stage 1 alone, if any
STAGE_PREFIX = "stage{}."  # residual stage k ≥ 2: its network, priors and seam filter, named as a model's own
STAGE_NAME = re.compile(r"stage([0-9]+)\.")
STATS_MEAN, STATS_MOMENT, STATS_COUNT = "stats.code_mean", "stats.code_moment", "stats.count"
LABEL_MEAN = "stats.label_mean"  # (labels, bits): mean code of each label's training images
ATTRIBUTE_DIRECTION = "stats.attribute_direction"  # (attributes, bits): mean code with − without


def stage_numbers(names: Iterable[str], path: Path) -> list[int]:
    """The later stages a model file holds (2, 3, …); ModelError unless they follow on from 2."""
    found = sorted({int(m.group(1)) for n in names if (m := STAGE_NAME.match(n))})
    if found != list(range(2, 2 + len(found))):
        raise ModelError(f"{path}: not a valid lbaecodec model (stages {found}: they must be 2, 3, …)")
    return found


def check_table(path: Path, table: dict[str, dict], kind: ModelKind, arch: Architecture) -> None:
    """Every network tensor the architecture implies is in the file with its shape: checked on
    a skeleton on the meta device, before any real allocation."""
    with torch.device("meta"):
        network = {MODEL_PREFIX + k: list(v.shape) for k, v in build_network(kind, arch).state_dict().items()}
        expected = dict(network)
        later = stage_numbers(table, path)
        for k in later:
            expected.update({STAGE_PREFIX.format(k) + name: shape for name, shape in network.items()})
        if any(k.startswith(REALISM_PREFIX) for k in table):
            realism = realism_like(table, arch, path)().state_dict()
            expected.update({REALISM_PREFIX + k: list(v.shape) for k, v in realism.items()})
        for prefix in (postfilter_prefix(k) for k in (1, *later)):
            if any(k.startswith(prefix) for k in table):
                post = filter_like(table, prefix, arch)().state_dict()
                expected.update({prefix + k: list(v.shape) for k, v in post.items()})
    for name, shape in expected.items():
        if name not in table or table[name]["shape"] != shape:
            found = table[name]["shape"] if name in table else "missing"
            raise ModelError(
                f"{path}: not a valid lbaecodec model (tensor {name}: {found}, the architecture needs {shape})"
            )


def filter_like(table: dict[str, dict], prefix: str, arch: Architecture) -> Callable[[], PostFilter]:
    """Builds the filter stored under ``prefix`` at the size its tensor table gives: the same
    for the shape check (``check_table``) as for loading."""
    shapes = {k[len(prefix) :]: entry["shape"] for k, entry in table.items() if k.startswith(prefix)}
    return lambda: deblock.from_shapes(arch.channels, shapes)


def realism_like(table: dict[str, dict], arch: Architecture, path: Path) -> Callable[[], Decoder]:
    """Builds the realism decoder at the width its tensor table gives (the input channels of
    its last convolution, ``pixels.N``): it may be wider than the fidelity decoder, and it
    upsamples by resizing where it has resize convolutions (``pixels.N.conv``)."""
    last = [(int(m.group(1)), entry["shape"]) for k, entry in table.items() if (m := _REALISM_LAST.fullmatch(k))]
    shape = max(last)[1] if last else []
    upsample = RESIZE if any(_REALISM_RESIZE.fullmatch(k) for k in table) else TRANSPOSE
    width = shape[1] if len(shape) == 4 else arch.width
    decoder_arch = replace(arch, width=width, decoder_width=None, upsample=upsample)
    try:
        decoder_arch.check()
    except ValueError as e:
        raise ModelError(f"{path}: not a valid lbaecodec model (realism decoder: {e})") from None
    return lambda: Decoder(decoder_arch)


_REALISM_LAST = re.compile(re.escape(REALISM_PREFIX) + r"pixels\.([0-9]+)\.weight")
_REALISM_RESIZE = re.compile(re.escape(REALISM_PREFIX) + r"pixels\.[0-9]+\.conv\.weight")


def postfilter_prefix(stage: int) -> str:
    """Where a model file keeps the seam filter for canvases decoded with stages 1..``stage``."""
    return POSTFILTER_PREFIX if stage == 1 else STAGE_PREFIX.format(stage) + POSTFILTER_PREFIX
