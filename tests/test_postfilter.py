"""The seam post-filter: strips equal one pass, shipping and loading, decoding with it, training."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import lbaecodec
from lbaecodec import cli, codec, deblock, zoo
from lbaecodec.errors import ModelError
from lbaecodec.lab.metrics import quality
from lbaecodec.lab.postfilter import (
    PostFilterRecipe,
    add_postfilter,
    decoded_canvases,
    seam_step_error,
    train_postfilter,
)

from .test_codec import SHIPPED_CIFAR10


def _random_filter(channels: int = 3, seed: int = 0, width: int = 16, layers: int = 3) -> deblock.PostFilter:
    torch.manual_seed(seed)
    post = deblock.PostFilter(channels, width, (1,) * layers)
    for p in post.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return post.eval()


def _cifar10_and_a_photo() -> tuple[zoo.Model, np.ndarray]:
    """The shipped cifar10 model and a real photograph (its tile seams are what a filter can fix)."""
    photo = Image.open(SHIPPED_CIFAR10.parents[1] / "examples" / "astronaut.png").convert("RGB")
    return zoo.load_model(SHIPPED_CIFAR10, "cpu"), np.asarray(photo)


def test_strips_give_what_one_pass_over_the_canvas_gives(monkeypatch):
    pixels = np.random.default_rng(0).integers(0, 256, (70, 45, 3), np.uint8)
    post = _random_filter()
    whole = deblock.apply(post, pixels, 32, torch.device("cpu"))
    monkeypatch.setattr(deblock, "STRIP_ROWS", 9)
    strips = deblock.apply(post, pixels, 32, torch.device("cpu"))
    diff = np.abs(whole.astype(int) - strips.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding at most, no halo error
    assert (whole != pixels).mean() > 0.5  # the filter did change the canvas


def test_a_new_filter_is_the_identity_and_masks_mark_the_borders():
    pixels = np.random.default_rng(1).integers(0, 256, (40, 40, 3), np.uint8)
    assert (deblock.apply(deblock.PostFilter(3), pixels, 32, torch.device("cpu")) == pixels).all()
    masks = deblock.seam_masks(4, 6, 4, top=2, left=1)[0]
    assert masks[0, :, 0].tolist() == [0, 1, 1, 0] and masks[1, 0].tolist() == [0, 0, 1, 1, 0, 0]


@pytest.fixture
def filtered_model(weights_dir, tmp_path):
    base = zoo.load_model(weights_dir / "dual.safetensors", "cpu")  # fidelity and realism decoders
    card = {"note": "random filter, for tests"}
    return base, add_postfilter(base, _random_filter(), "dual-pf", tmp_path / "dual-pf.safetensors", card)


def test_a_shipped_filter_is_loaded_and_runs_with_the_fidelity_decoder_only(filtered_model, rgb_image):
    base, path = filtered_model
    m = zoo.load_model(path, "cpu")
    assert m.postfilter is not None and m.id != base.id and m.realism is not None
    assert json.loads(path.with_suffix(".json").read_text())["base_model"] == base.id
    data = lbaecodec.encode(rgb_image, m)
    assert lbaecodec.encode(rgb_image, base)[:4] == data[:4]  # same codes, another model hash
    assert data[8:-4] == lbaecodec.encode(rgb_image, base)[8:-4]  # the CRC covers the hash
    plain = np.asarray(codec.decode(data, m.__class__(**{**m.__dict__, "postfilter": None})))
    assert (np.asarray(codec.decode(data, m)) != plain).any()
    realism = codec.decode(data, m, decoder="realism")
    base_realism = codec.decode(lbaecodec.encode(rgb_image, base), base, decoder="realism")
    assert np.array_equal(np.asarray(realism), np.asarray(base_realism))  # no filter after the realism decoder


def test_a_filter_of_another_size_ships_and_decodes_as_trained(weights_dir, tmp_path, rgb_image):
    base = zoo.load_model(weights_dir / "dual.safetensors", "cpu")
    post = _random_filter(width=8, layers=5)
    m = zoo.load_model(add_postfilter(base, post, "dual-pf8", tmp_path / "pf8.safetensors", {}), "cpu")
    assert m.postfilter.reach == 5 and m.postfilter.layers[0].weight.shape[0] == 8
    data = lbaecodec.encode(rgb_image, m)
    plain = np.array(codec.decode(data, m.__class__(**{**m.__dict__, "postfilter": None})))
    expected = deblock.apply(post, plain, m.arch.size, torch.device("cpu"))
    assert np.array_equal(np.asarray(codec.decode(data, m)), expected)


@pytest.mark.parametrize("width, layers", [(300, 3), (16, 17)])
def test_a_filter_beyond_the_size_limits_is_not_a_model(weights_dir, tmp_path, width, layers):
    base = zoo.load_model(weights_dir / "dual.safetensors", "cpu")
    path = add_postfilter(base, _random_filter(width=width, layers=layers), "big", tmp_path / "big.safetensors", {})
    with pytest.raises(ModelError, match="postfilter.layers"):
        zoo.load_model(path, "cpu")


def test_onnx_export_refuses_a_model_with_a_filter(filtered_model, tmp_path):
    pytest.importorskip("onnx")
    from lbaecodec.lab.onnx_export import export_onnx

    with pytest.raises(ModelError, match="post-filter"):
        export_onnx(zoo.load_model(filtered_model[1], "cpu"), tmp_path / "onnx")


def test_training_lowers_the_error_on_its_canvases():
    """A filter trained on the shipped cifar10 model's canvas of a photograph lowers its error."""
    m, photo = _cifar10_and_a_photo()
    post, cost = train_postfilter(m, [photo], PostFilterRecipe(steps=100, batch=4, crop=64), log=lambda _: None)
    decoded = decoded_canvases(m, [photo])[0]
    filtered = deblock.apply(post, decoded, m.arch.size, torch.device("cpu"))
    before, after = (np.mean((d.astype(float) - photo) ** 2) for d in (decoded, filtered))
    assert after < before and cost["cpu_hours"] >= 0


def test_the_seam_loss_sees_steps_across_tile_borders_only():
    original, filtered = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    filtered[..., 4:, :] = 1.0  # a step between rows 3 and 4
    assert seam_step_error(filtered, original, tile=4, top=0, left=0) == 0.5  # on the row border, not the column one
    assert seam_step_error(filtered, original, tile=4, top=1, left=0) == 0.0  # there the borders are rows 2|3 and 6|7
    assert seam_step_error(filtered, filtered, tile=4, top=0, left=0) == 0.0  # the original's own steps cost nothing


def test_the_seam_loss_leaves_less_of_the_grid():
    """The same short training with and without the border-step term, on cifar10's canvas of a photo."""
    m, photo = _cifar10_and_a_photo()
    recipes = [PostFilterRecipe(steps=60, batch=4, crop=64, seam_weight=w) for w in (0.0, 16.0)]
    filters = [train_postfilter(m, [photo], r, log=lambda _: None)[0] for r in recipes]
    decoded = decoded_canvases(m, [photo])[0]
    grid = [quality.blockiness(deblock.apply(f, decoded, 32, torch.device("cpu")), 32) for f in filters]
    assert grid[1] < grid[0] < quality.blockiness(decoded, 32)


def test_cli_add_postfilter(weights_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), np.uint8)).save(photos / f"p{k}.png")
    out = tmp_path / "pf.safetensors"
    args = ["add-postfilter", str(weights_dir / "cifar10.safetensors"), "--name", "cifar10-pf", "--out", str(out)]
    r = CliRunner().invoke(cli.main, [*args, "--data-dir", str(photos), "--steps", "5", "--seam-weight", "2"])
    assert r.exit_code == 0, r.output
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["postfilter"]["recipe"]["seam_weight"] == 2
    assert card["postfilter"]["recipe"]["steps"] == 5 and set(card["postfilter"]["validation"]) >= {"with", "without"}
    assert zoo.load_model(out, "cpu").postfilter is not None
    r = CliRunner().invoke(
        cli.main, ["add-postfilter", str(out), "--name", "x", "--out", str(tmp_path / "x.safetensors")]
    )
    assert r.exit_code == 2 and "post-filter after 1 stage(s) already" in r.output
