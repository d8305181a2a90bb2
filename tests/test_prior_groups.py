"""add-prior: a model's context prior refitted (dense, grouped or with a hidden layer), shipped as a new model."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import lbaecodec
from lbaecodec import cli, container, entropy, prior_tensors, zoo
from lbaecodec.container import Coding
from lbaecodec.lab import export

from .conftest import make_model


def test_grouped_prior_model_writes_the_same_codes_in_fewer_decode_steps(tmp_path, rgb_image):
    base = zoo.load_model(make_model(tmp_path, "digits", "mnist", priors=True), "cpu")
    images = np.random.default_rng(3).integers(0, 256, (400, 32, 32, 1), np.uint8)
    fit = lambda codes: entropy.fit(codes, groups=6)  # noqa: E731
    path = export.add_context_prior(
        base, "grouped", fit, images, images[:50], "digits-g6", tmp_path / "g6.safetensors", "pytest", val_count=100
    )
    new = zoo.load_model(path, "cpu")
    prior = new.prior(Coding.CONTEXT)
    assert len(prior.groups) == 6 and len(base.prior(Coding.CONTEXT).groups) > 6
    old_tensors, new_tensors = load_file(str(base.path)), load_file(str(path))
    changed = {k for k, v in old_tensors.items() if not torch.equal(v, new_tensors[k])}
    assert changed == {
        prior_tensors.CONTEXT_BIAS,
        prior_tensors.CONTEXT_WEIGHT,
    }  # network, statistics, factorized prior kept
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["base_model"] == base.id and card["grouped_prior"]["groups"] == 6
    assert card["grouped_prior"]["validation_bits_per_tile"]["images"] == 100
    old_file, new_file = lbaecodec.encode(rgb_image, model=base), lbaecodec.encode(rgb_image, model=new)
    assert lbaecodec.info(new_file).model.endswith(f"@{new.hash.hex()}") and new_file != old_file
    old_pixels, new_pixels = lbaecodec.decode(old_file, model=base), lbaecodec.decode(new_file, model=new)
    assert np.array_equal(np.asarray(old_pixels), np.asarray(new_pixels))


def test_a_dense_refit_changes_only_the_context_prior_and_codes_to_the_same_pixels(tmp_path, rgb_image):
    base = zoo.load_model(make_model(tmp_path, "digits", "mnist", priors=True), "cpu")
    images = np.random.default_rng(3).integers(0, 256, (400, 32, 32, 1), np.uint8)
    path = export.add_context_prior(
        base, "dense", entropy.fit, images, images[:50], "digits-d", tmp_path / "d.safetensors", "pytest", val_count=100
    )
    new = zoo.load_model(path, "cpu")
    old_tensors, new_tensors = load_file(str(base.path)), load_file(str(path))
    assert {k for k, v in old_tensors.items() if not torch.equal(v, new_tensors[k])} <= {
        prior_tensors.CONTEXT_BIAS,
        prior_tensors.CONTEXT_WEIGHT,
    }
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["dense_prior"]["l2"] == entropy.FIT_L2
    assert set(card["dense_prior"]["validation_bits_per_tile"]) == {"images", "dense_coded"}
    new_file = lbaecodec.encode(rgb_image, model=new)
    assert lbaecodec.info(new_file).model.endswith(f"@{new.hash.hex()}")
    old_pixels = lbaecodec.decode(lbaecodec.encode(rgb_image, model=base), model=base)
    assert np.array_equal(np.asarray(old_pixels), np.asarray(lbaecodec.decode(new_file, model=new)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--groups", "1"], "choose from 2 to 599"),
        (["--groups", "600"], "choose from 2 to 599"),
        (["--groups", "8", "--name", "cifar10"], "new name"),
        (["--groups", "8"], "needs more than 5000"),
        (["--hidden", "8"], "needs more than 5000"),
        (["--groups", "8", "--hidden", "8"], "give one of"),
        (["--dense", "--groups", "8"], "give one of"),
        (["--dense"], "needs more than 5000"),
        ([], "give one of"),
    ],
)
def test_add_prior_refuses_in_one_line(tmp_path, args, message):
    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    arrays = {k: rng.integers(0, 256, (20, 32, 32, 3), np.uint8) for k in ("x_train", "x_test")}
    np.savez(data, **arrays, y_train=np.zeros(20, np.int64), y_test=np.zeros(20, np.int64))
    base_args = ["add-prior", "cifar10", "--dataset", "cifar10", "--data-dir", str(data), "--out", str(tmp_path / "g")]
    result = CliRunner().invoke(cli.main, base_args + ["--name", "cifar10-g"] + args)
    assert result.exit_code != 0 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_hidden_prior_model_writes_the_same_codes_in_fewer_bytes_under_method_3(tmp_path, rgb_image):
    """A hidden prior joins the linear one (its tensors kept): `auto` codes with it, as method 7
    (method 3 with a tight end), which readers before it refuse; `context-tight` still writes the
    base model's stream."""
    from lbaecodec.lab import made

    base = zoo.load_model(make_model(tmp_path, "digits", "mnist", priors=True), "cpu")
    images = np.random.default_rng(3).integers(0, 256, (400, 32, 32, 1), np.uint8)
    fit = lambda codes: made.fit(codes, hidden=16, steps=20).to_prior()  # noqa: E731
    path = export.add_context_prior(
        base, "hidden", fit, images, images[:50], "digits-h", tmp_path / "h.safetensors", "pytest", val_count=100
    )
    new = zoo.load_model(path, "cpu")
    assert new.prior(Coding.HIDDEN).units == 16
    old_tensors, new_tensors = load_file(str(base.path)), load_file(str(path))
    assert all(torch.equal(v, new_tensors[k]) for k, v in old_tensors.items())
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["hidden_prior"]["hidden_units"] == 16
    assert "hidden_coded" in card["hidden_prior"]["validation_bits_per_tile"]
    new_file, old_file = lbaecodec.encode(rgb_image, model=new), lbaecodec.encode(rgb_image, model=base)
    assert lbaecodec.info(new_file).coding == "hidden-tight"
    assert (
        container.read(lbaecodec.encode(rgb_image, model=new, coding="context-tight"))[1] == container.read(old_file)[1]
    )
    old_pixels = lbaecodec.decode(old_file, model=base)
    assert np.array_equal(np.asarray(old_pixels), np.asarray(lbaecodec.decode(new_file, model=new)))
