import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lbaecodec import cli, entropy, zoo
from lbaecodec.lab import export, generate
from lbaecodec.lab.export import code_statistics
from lbaecodec.zoo import LABEL_MEAN, STATS_MEAN, STATS_MOMENT

from .conftest import save_image


def correlated_bits(n, seed):
    """Signs of a correlated Gaussian, oriented by a last coordinate: biased, correlated bits
    of the family the copula describes exactly."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4)) @ np.array(
        [
            [1.0, 0.8, -0.5, 0.0, 0.3, 0.5],
            [0.0, 0.6, 0.5, 0.2, 0.0, -0.3],
            [0.0, 0.0, 0.7, 0.9, -0.4, 0.0],
            [0.2, 0.0, 0.0, 0.3, 0.5, 1.0],
        ]
    )
    return np.where(z[:, :-1] * np.sign(z[:, -1:]) >= 0, 1.0, -1.0)


def test_copula_reproduces_means_and_pairwise_moments():
    codes = correlated_bits(200_000, 0)
    stats = code_statistics(codes.astype(np.int8))
    mean, moment = stats[STATS_MEAN].double().numpy(), stats[STATS_MOMENT].double().numpy()
    factor = generate.copula_factor(mean, moment)
    samples = generate.sample_codes(factor, 200_000, np.random.default_rng(1)).astype(np.float64)
    tol = 4 / np.sqrt(200_000) * 2  # a few standard errors of a ±1 mean
    np.testing.assert_allclose(samples.mean(0), mean, atol=tol)
    np.testing.assert_allclose(samples.T @ samples / len(samples), moment, atol=tol)


def test_random_method_is_uniform():
    bits = generate.random_codes(50, 20_000, np.random.default_rng(0))
    assert abs(bits.mean()) < 0.02 and set(np.unique(bits)) == {-1.0, 1.0}


def test_interpolation_endpoints_and_monotone_path():
    rng = np.random.default_rng(0)
    za, zb = rng.uniform(-1, 1, 100), rng.uniform(-1, 1, 100)
    path = generate.interpolation_path(za, zb, 6)
    assert np.array_equal(path[0], np.sign(za)) and np.array_equal(path[-1], np.sign(zb))
    distances = [(p != path[0]).sum() for p in path]
    assert distances == sorted(distances)  # every step moves away from a, towards b
    assert all(((p == path[0]) | (p == path[-1])).all() for p in path)


def test_interpolation_endpoints_decode_to_endpoint_codes():
    m = zoo.load_model("cifar10", device="cpu")
    rng = np.random.default_rng(1)
    za, zb = rng.uniform(-1, 1, 600), rng.uniform(-1, 1, 600)
    path = generate.interpolation_path(za, zb, 4)
    ends = generate.decode(m, path[[0, -1]])
    np.testing.assert_array_equal(ends, generate.decode(m, np.stack([np.sign(za), np.sign(zb)]).astype(np.float32)))


def test_attribute_directions():
    codes = np.array([[1, 1], [-1, 1], [1, -1]], np.int8)
    attributes = np.array([[1, -1], [-1, -1], [1, 1]])
    d = export.attribute_directions(codes, attributes)[zoo.ATTRIBUTE_DIRECTION].numpy()
    np.testing.assert_allclose(d[0], [2.0, -1.0])  # first attribute: mean of rows 0, 2 minus row 1
    np.testing.assert_allclose(d[1], [1.0, -2.0])


def test_edit_moves_codes_towards_the_direction():
    z = np.array([0.5, -0.2, 0.1])
    assert generate.edit_latent(z, np.array([-1.0, 1.0, 0.0]), 1.0).tolist() == [-1.0, 1.0, 1.0]


@pytest.fixture
def labelled_model(tmp_path):
    m = zoo.load_model("cifar10", device="cpu")
    extras = dict(m.extras)
    extras[STATS_MEAN] = torch.zeros(600)
    extras[STATS_MOMENT] = torch.eye(600)
    extras[LABEL_MEAN] = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 600))).float()
    extras[zoo.ATTRIBUTE_DIRECTION] = torch.ones(1, 600)
    path = zoo.export(
        m.net,
        "labelled",
        tmp_path / "labelled.safetensors",
        extras=extras,
        card={"labels": ["cat", "dog", "ship"], "attributes": ["Bright"]},
    )
    return str(path)


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def test_generation_commands(tmp_path, labelled_model):
    from PIL import Image

    r = run("sample", tmp_path / "s.png", "-m", labelled_model, "-n", 9, "--scale", 1, "--out-dir", tmp_path / "each")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "s.png").size == (3 * 34 - 2, 3 * 34 - 2)
    assert len(list((tmp_path / "each").glob("sample_*.png"))) == 9
    assert run("sample", tmp_path / "r.png", "-m", labelled_model, "--method", "random", "-n", 4).exit_code == 0
    rng = np.random.default_rng(0)
    a = save_image(tmp_path, "a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    b = save_image(tmp_path, "b.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    r = run("interpolate", a, b, tmp_path / "i.png", "-m", labelled_model, "--steps", 5, "--scale", 1)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "i.png").size == (5 * 34 - 2, 32)
    r = run("edit", a, tmp_path / "e.png", "-m", labelled_model, "--towards", "dog", "--steps", 3)
    assert r.exit_code == 0, r.output
    r = run("edit", a, tmp_path / "e2.png", "-m", labelled_model, "--towards", "horse")
    assert r.exit_code == 2 and "knows: cat, dog, ship, Bright" in r.output


def test_edit_towards_an_attribute_sets_every_bit(tmp_path, labelled_model):
    m = zoo.load_model(labelled_model, device="cpu")
    z = np.random.default_rng(0).uniform(-1, 1, 600)
    code = generate.edit_latent(z, generate.direction(m, "Bright"), 2.0)
    assert (code == 1).all()  # the direction is +1 on every bit and outweighs any |z| ≤ 1
    a = save_image(tmp_path, "a.png", np.zeros((32, 32, 3), np.uint8))
    r = run("edit", a, tmp_path / "e.png", "-m", labelled_model, "--towards", "Bright", "--strength", 2)
    assert r.exit_code == 0, r.output


def test_interpolate_accepts_single_tile_lbae(tmp_path, labelled_model):
    rng = np.random.default_rng(0)
    a = save_image(tmp_path, "a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    big = save_image(tmp_path, "big.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert run("encode", a, tmp_path / "a.lbae", "-m", labelled_model).exit_code == 0
    assert run("encode", big, tmp_path / "big.lbae", "-m", labelled_model).exit_code == 0
    assert run("interpolate", tmp_path / "a.lbae", big, tmp_path / "i.png", "-m", labelled_model).exit_code == 0
    r = run("interpolate", tmp_path / "big.lbae", a, tmp_path / "j.png", "-m", labelled_model)
    assert r.exit_code == 2 and "single-tile" in r.output


def test_sample_without_statistics_is_a_clean_error(tmp_path):
    r = run("sample", tmp_path / "s.png", "-m", "other")
    assert r.exit_code == 4 and "no code statistics" in r.output


def markov_bits(n, bits, stay, seed):
    """Each bit repeats the one before it with probability ``stay``: a chain the context prior
    (each bit's logit linear in the earlier bits) describes exactly."""
    rng = np.random.default_rng(seed)
    flips = np.where(rng.random((n, bits)) < stay, 1.0, -1.0)
    flips[:, 0] = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return np.cumprod(flips, axis=1)


def test_prior_method_samples_the_context_prior():
    prior = entropy.fit(markov_bits(20_000, 12, 0.9, 0), steps=1000)
    samples = prior.sample(20_000, np.random.default_rng(1))
    assert set(np.unique(samples)) == {-1.0, 1.0} and samples.shape == (20_000, 12)
    repeats = (samples[:, 1:] == samples[:, :-1]).mean(0)
    np.testing.assert_allclose(repeats, 0.9, atol=0.02)
    assert abs(samples[:, 0].mean()) < 0.03
    np.testing.assert_array_equal(samples, prior.sample(20_000, np.random.default_rng(1)))


def test_sample_cli_prior_method(tmp_path):
    from PIL import Image

    r = run("sample", tmp_path / "s.png", "-m", "cifar10", "--method", "prior", "-n", 4, "--scale", 1)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "s.png").size == (2 * 34 - 2, 2 * 34 - 2)
    r = run("sample", tmp_path / "o.png", "-m", "other", "--method", "prior")
    assert r.exit_code == 4 and "no context prior" in r.output


def test_prior_method_takes_the_hidden_prior_where_a_model_ships_one(monkeypatch):
    """`auto` codes the "hidden" test model's files with its hidden-layer prior: sampling draws
    from that one too, not from the linear prior beside it."""
    from lbaecodec import hidden_prior
    from lbaecodec.lab import generate

    model = zoo.load_model("hidden", "cpu")
    drawn_by, original = [], entropy.Prior.sample  # HiddenPrior inherits it
    monkeypatch.setattr(entropy.Prior, "sample", lambda self, *a: drawn_by.append(type(self)) or original(self, *a))
    assert generate.prior_codes(model, 3, np.random.default_rng(0)).shape == (3, 600)
    assert drawn_by == [hidden_prior.HiddenPrior]


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "{out}", "--seed", "-1"], "-1 is not in the range x>=0"),
        (["sample", "{out}", "--scale", "0"], "0 is not in the range 1<=x<=64"),
        (["sample", "{out}", "-n", "400000"], "over the limit"),
        (["sample", "{out}", "-n", "64", "--scale", "64"], "over the limit"),
    ],
)
def test_generation_options_are_checked_before_any_work(tmp_path, args, message):
    r = run(*(a.format(out=tmp_path / "g.png") for a in args))
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "g.png").exists()


def test_decode_in_parts_keeps_the_order():
    m = zoo.load_model("cifar10", device="cpu")
    codes = np.where(np.random.default_rng(0).random((10, 600)) < 0.5, 1.0, -1.0).astype(np.float32)
    parts, whole = generate.decode(m, codes, batch=3), generate.decode(m, codes).astype(np.int16)
    assert parts.shape == whole.shape == (10, 32, 32, 3)
    assert np.abs(parts - whole).max() <= 1  # a CPU's float kernels may differ by batch size: a level at most


def test_refining_decodes_with_the_fidelity_decoder_and_encodes_again(labelled_model):
    m = zoo.load_model(labelled_model, device="cpu")
    drawn = generate.sample_codes(generate.copula_factor(*generate.model_statistics(m)), 16, np.random.default_rng(0))
    once = generate.refined(m, drawn, 1)
    assert np.array_equal(once, generate.encode(m, generate.decode(m, drawn, "fidelity")))
    assert np.array_equal(generate.refined(m, drawn, 0), drawn)
    twice = generate.refined(m, drawn, 2)
    assert (once != drawn).any() and np.array_equal(twice, generate.refined(m, once, 1))
    np.testing.assert_array_equal(
        generate.sample(m, 16, "cov", seed=0, refine=2),
        generate.decode(m, twice),
        err_msg="sample draws, refines, decodes",
    )


def test_refining_stops_at_a_fixed_point(monkeypatch):
    m = zoo.load_model("cifar10", device="cpu")
    codes = generate.random_codes(600, 4, np.random.default_rng(0))
    decodes = []
    monkeypatch.setattr(generate, "decode", lambda m, c, d: decodes.append(d) or c)
    monkeypatch.setattr(generate, "encode", lambda m, images: images)  # every code is its own picture's code
    assert np.array_equal(generate.refined(m, codes, 50), codes) and decodes == ["fidelity"]


def test_sample_refine_option(tmp_path, labelled_model):
    r = run("sample", tmp_path / "s.png", "-m", labelled_model, "-n", 4, "--refine", 0)
    assert r.exit_code == 0, r.output
    r = run("sample", tmp_path / "t.png", "-m", labelled_model, "--refine", 101)
    assert r.exit_code == 2 and "101 is not in the range 0<=x<=100" in r.output and not (tmp_path / "t.png").exists()


def test_refining_by_rounds_continues_each_number_from_the_one_before(labelled_model):
    m = zoo.load_model(labelled_model, device="cpu")
    drawn = generate.drawn_codes(m, 8, "cov", seed=3)
    steps = list(generate.refined_by_rounds(m, drawn, [3, 0, 1]))
    assert [r for r, _ in steps] == [0, 1, 3]
    for rounds, codes in steps:
        assert np.array_equal(codes, generate.refined(m, drawn, rounds))
