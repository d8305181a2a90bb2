"""Model files that extend another: only what they add, the extended file named by its hash."""

import hashlib
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import lbaecodec
from lbaecodec import zoo
from lbaecodec.architecture import PRESETS
from lbaecodec.errors import ModelError
from lbaecodec.lab import export
from lbaecodec.lab.train import Recipe, train
from lbaecodec.registry import META_BASE, read_metadata


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny exported model, a realism run on its frozen encoder, and that decoder added to it
    twice: as a whole file and as a file that extends the model's."""
    root = tmp_path_factory.mktemp("delta")
    rng = np.random.default_rng(0)
    images = np.repeat(np.repeat(rng.integers(0, 256, (64, 4, 4, 3)).astype(np.uint8), 8, axis=1), 8, axis=2)
    arch = replace(PRESETS["cifar10"], width=4, bits=32)
    train(arch, images, images[:16], root / "fidelity", Recipe(epochs=1, batch=16), show_progress=False)
    base_path = export.export_run(
        root / "fidelity", "base", root / "models" / "base.safetensors", images, images[:16], "synthetic", "pytest"
    )
    base = zoo.load_model(base_path, "cpu")
    realism = Recipe(epochs=1, batch=32, stage="realism", disc_width=8, disc_warmup_steps=0)
    train(arch, images, images[:16], root / "realism", realism, init_from=base.net, show_progress=False)
    whole = export.add_realism(base, root / "realism", "base-r", root / "whole" / "r.safetensors", images, "pytest")
    delta = export.add_realism(
        base, root / "realism", "base-rd", root / "models" / "rd.safetensors", images, "pytest", delta=True
    )
    return base_path, whole, delta, images


def test_the_file_holds_what_it_adds_and_names_what_it_extends(made):
    base_path, whole, delta, _ = made
    assert set(load_file(str(delta))) == {k for k in load_file(str(whole)) if k.startswith(zoo.REALISM_PREFIX)}
    assert read_metadata(delta)[META_BASE] == hashlib.sha256(base_path.read_bytes()).hexdigest()
    assert delta.stat().st_size < whole.stat().st_size / 2


def test_it_loads_as_the_whole_file_does(made):
    _, whole, delta, images = made
    models, image = (whole, delta), Image.fromarray(images[0])
    a, b = (zoo.load_model(m, "cpu") for m in models)
    assert b.decoders == ("fidelity", "realism") and b.name == "base-rd"
    assert zoo.model_hash(delta.read_bytes()) == b.hash
    assert a.extras.keys() == b.extras.keys() and all(torch.equal(v, b.extras[k]) for k, v in a.extras.items())
    for decoder in ("fidelity", "realism"):
        decoded = [
            lbaecodec.decode(lbaecodec.encode(image, model=str(m)), model=str(m), decoder=decoder) for m in models
        ]
        assert np.array_equal(*(np.asarray(d) for d in decoded))
    card = json.loads(delta.with_suffix(".json").read_text())
    assert card["model_id"] == b.id and card["base_model"].startswith("base@")


def test_without_the_file_it_extends_loading_is_a_clear_error(made, tmp_path):
    _, _, delta, _ = made
    alone = shutil.copy(delta, tmp_path / "rd.safetensors")
    with pytest.raises(ModelError, match="extends the model file of SHA-256 [0-9a-f]{16}…, which is not installed"):
        zoo.load_model(alone, "cpu")


def test_a_changed_base_is_not_the_base(made, tmp_path):
    base_path, _, delta, _ = made
    for f in (base_path, delta):
        shutil.copy(f, tmp_path / f.name)
    tensors = load_file(str(base_path))
    tensors["stats.count"] = tensors["stats.count"] + 1
    save_file(tensors, str(tmp_path / base_path.name), metadata=read_metadata(base_path))
    with pytest.raises(ModelError, match="not installed"):
        zoo.load_model(tmp_path / delta.name, "cpu")


def test_a_base_that_is_not_a_hash_is_refused(made, tmp_path):
    _, _, delta, _ = made
    forged = tmp_path / "forged.safetensors"
    save_file(load_file(str(delta)), str(forged), metadata={**read_metadata(delta), META_BASE: "../base.safetensors"})
    with pytest.raises(ModelError, match="not a SHA-256"):
        zoo.load_model(forged, "cpu")


def test_extending_an_extension_names_the_first_file(made, tmp_path):
    base_path, _, delta, _ = made
    post = zoo.load_model(delta, "cpu")
    again = export.extend_model(post, "base-rd2", tmp_path / "rd2.safetensors", realism=post.realism, delta=True)[0]
    assert read_metadata(again)[META_BASE] == read_metadata(delta)[META_BASE]
    shutil.copy(base_path, tmp_path / base_path.name)
    assert zoo.load_model(again, "cpu").decoders == ("fidelity", "realism")


def test_a_file_cannot_extend_one_whose_tensors_it_lacks(made, tmp_path):
    base_path, _, _, _ = made
    base = zoo.load_model(base_path, "cpu")
    with pytest.raises(ValueError, match="has no prior.context_bias of base"):  # no priors nor statistics given
        zoo.export(base.net, "bare", tmp_path / "bare.safetensors", extends=base_path)
