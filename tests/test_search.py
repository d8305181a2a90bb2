import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import lbaecodec
from lbaecodec import cli, codec, packing, zoo
from lbaecodec.images import to_float
from lbaecodec.search import Search, prior_cost, searched_codes

from .conftest import make_model


@pytest.fixture(scope="module")
def tiles():
    """Smooth 32×32 colour tiles (random networks decode noise-free tiles no better than any)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (24, 4, 4, 3)).astype(np.float32)
    return np.kron(base, np.ones((1, 8, 8, 1))).astype(np.uint8)


def tile_costs(model, prior, tiles, codes, lam):
    """J = 10·log10(MSE) + λ·bits of each tile, as the search counts it."""
    with torch.no_grad():
        decoded = torch.sigmoid(model.net.decoder(torch.from_numpy(codes)))
        mse = (decoded - to_float(tiles)).pow(2).flatten(1).mean(1) * 255**2
        return (10 * torch.log10(mse) + lam * prior_cost(prior)(torch.from_numpy(codes))).numpy()


@pytest.mark.parametrize("name", ["cifar10", "hidden"])
def test_prior_cost_is_the_coders_ideal_length(name, tiles):
    model = zoo.load_model(name, "cpu")
    prior = packing.coding_prior(model)[1]
    codes = codec.encode_codes_many(model, [tiles.reshape(-1, 32, 3)])[0][0]
    ours = prior_cost(prior)(torch.from_numpy(codes)).numpy()
    exact = np.array([prior.cost_bits(c[None]) for c in codes])
    # the coder's logits are whole 1/256ths and its probabilities whole 2^-16ths
    np.testing.assert_allclose(ours, exact, rtol=2e-3, atol=0.25)


@pytest.mark.parametrize("lam", [0.0, 0.05, 1.0])
def test_the_search_only_lowers_each_tiles_cost(tiles, lam):
    model = zoo.load_model("hidden", "cpu")
    prior = packing.coding_prior(model)[1]
    own = codec.encode_codes_many(model, [tiles.reshape(-1, 32, 3)])[0][0]
    found = searched_codes(model.net.decoder, prior, to_float(tiles), torch.from_numpy(own), Search(lam, 5)).numpy()
    before, after = tile_costs(model, prior, tiles, own, lam), tile_costs(model, prior, tiles, found, lam)
    assert np.all(after <= before + 1e-4)
    assert np.any(after < before - 1e-3) and np.any(found != own)
    assert set(np.unique(found)) == {-1.0, 1.0}


def test_a_larger_lambda_gives_fewer_bits(tiles):
    model = zoo.load_model("cifar10", "cpu")
    prior = packing.coding_prior(model)[1]
    column = tiles.reshape(-1, 32, 3)
    bits = [prior.cost_bits(codec.codes_to_store(model, [column], search=Search(lam, 10))[0][0]) for lam in (0, 1)]
    assert bits[1] < bits[0]


def test_a_searched_file_decodes_with_every_decoder_and_codes_alike_alone_or_among_many(tmp_path, rgb_image):
    model = zoo.load_model(make_model(tmp_path, "dual-priors", "cifar10", seed=4, priors=True, realism=True), "cpu")
    search = Search(0.05, 4)
    searched = lbaecodec.encode(rgb_image, model=model, search=search)
    assert searched != lbaecodec.encode(rgb_image, model=model)
    for decoder in ("fidelity", "realism"):
        assert lbaecodec.decode(searched, model=model, decoder=decoder).size == rgb_image.size
    many = codec.encode_many([rgb_image.rotate(90), rgb_image], model, search=search)
    assert many[1] == searched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--search", "3", "--rdo", "0.1"], "give one of them"),
        (["--search", "3", "--coding", "raw"], "--search needs a coded file"),
        (["--search", "3", "--model", "other"], "--search needs a coded file"),  # ships no prior
        (["--search-lambda", "0.1"], "--search-lambda and --search-decoder go with --search ROUNDS"),
        (["--search", "2", "--search-decoder", "realism"], "has no realism decoder"),
    ],
)
def test_search_without_what_it_needs_is_a_one_line_error(tmp_path, rgb_image, args, message):
    rgb_image.save(tmp_path / "a.png")
    r = CliRunner().invoke(cli.main, ["encode", str(tmp_path / "a.png"), str(tmp_path / "a.lbae"), *args])
    assert r.exit_code != 0 and r.output.count("\n") == 1 and message in r.output
    assert not (tmp_path / "a.lbae").exists()


def test_search_needs_the_torch_runtime(tmp_path, rgb_image):
    class NoTorch:  # what the pipeline sees of an ONNX model: no ``net``
        id = "x@00"

    with pytest.raises(lbaecodec.InputError, match="torch runtime"):
        codec.check_code_choice(NoTorch(), 1, "auto", 0.0, Search())


def test_evaluate_and_encode_take_the_search(tmp_path, rgb_image):
    images = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "c.npz", x_train=images, y_train=np.zeros(6), x_test=images, y_test=np.zeros(6))
    args = ["evaluate", "--model", "hidden", "--data-dir", str(tmp_path / "c.npz"), "--json"]
    r = CliRunner().invoke(cli.main, [*args, "--codings", "hidden-tight", "--search", "2", "--search-lambda", "0.1"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output[r.output.index("{") :])
    assert result["search"] == {"lam": 0.1, "rounds": 2, "candidates": 8, "decoder": "fidelity"}
    rgb_image.save(tmp_path / "a.png")
    out = tmp_path / "coded"
    r = CliRunner().invoke(cli.main, ["encode", str(tmp_path / "a.png"), "-o", str(out), "--search", "2"])
    assert r.exit_code == 0, r.output
    expected = lbaecodec.encode(rgb_image, model="cifar10", search=Search(rounds=2))
    assert (out / "a.lbae").read_bytes() == expected
