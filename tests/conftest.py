from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lbaecodec import entropy, prior_tensors, registry, zoo
from lbaecodec.architecture import PRESETS
from lbaecodec.lab import made
from lbaecodec.lab.export import encode_all
from lbaecodec.network import LBAE, Decoder

TEST_WIDTH = 4  # tiny random networks: same code path as shipped models, fast on CPU
torch.set_num_threads(1)  # tiny tensors: threads cost more than they give


def make_model(
    folder: Path, name: str, preset: str, seed: int = 0, priors: bool | str = False, realism: bool = False
) -> Path:
    """A random test model; ``priors``: True for a factorized and a linear context prior, "hidden"
    for a hidden-layer context prior too."""
    torch.manual_seed(seed)
    arch = replace(PRESETS[preset], width=TEST_WIDTH)
    net = LBAE(arch).eval()
    second = Decoder(arch).eval() if realism else None
    extras = {}
    if priors:
        images = np.random.default_rng(seed).integers(0, 256, (256, arch.size, arch.size, arch.channels), np.uint8)
        codes = encode_all(net, images)
        # L2 as before lbaecodec 0.12: on 256 codes of a random network a weaker one overfits, and the
        # tests' hand-cut payloads were sized for this prior
        context = entropy.fit(codes, steps=30, l2=1e-4)
        extras = prior_tensors.to_tensors(entropy.fit(codes, context=False), context)
        if priors == "hidden":
            extras |= prior_tensors.hidden_to_tensors(made.fit(codes, 16, 30).to_prior())
    return zoo.export(
        net, name, folder / f"{name}.safetensors", card={"note": "random, for tests"}, extras=extras, realism=second
    )


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    make_model(folder, "cifar10", "cifar10", priors=True)  # stands in for the default model
    make_model(folder, "gray", "mnist")
    make_model(folder, "other", "cifar10", seed=1)
    make_model(folder, "dual", "cifar10", seed=2, realism=True)  # fidelity and realism decoders
    make_model(folder, "hidden", "cifar10", seed=3, priors="hidden")  # a context prior with a hidden layer
    return folder


@pytest.fixture(autouse=True)
def use_test_weights(weights_dir, monkeypatch):
    """Name lookups see only the random test models, never shipped weights."""
    monkeypatch.setattr(registry, "weights_dirs", lambda: [weights_dir])
    monkeypatch.setattr(registry, "DEFAULT_MODEL", "cifar10")  # the test zoo's stand-in


@pytest.fixture
def rgb_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (33, 31, 3), dtype=np.uint8))


def save_image(folder: Path, name: str, array: np.ndarray, mode: str | None = None) -> Path:
    path = folder / name
    Image.fromarray(array, mode).save(path)
    return path
