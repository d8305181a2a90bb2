"""The fidelity stage's rate term (``--rate``): a learned context prior prices the codes."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lbaecodec import cli, entropy
from lbaecodec.architecture import PRESETS
from lbaecodec.images import to_float
from lbaecodec.lab import distributed
from lbaecodec.lab.rate import RateTerm
from lbaecodec.lab.steps import FidelityStep
from lbaecodec.lab.train import Recipe, train
from lbaecodec.network import LBAE, SignSTE

from .test_train import whole_and_resumed


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (96, 4, 4, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)


def correlated_codes(n: int = 4000, bits: int = 48) -> np.ndarray:
    """±1 codes whose odd bits mostly repeat the bit before them, and whose even bits lean to +1."""
    rng = np.random.default_rng(0)
    codes = np.where(rng.random((n, bits)) < 0.7, 1, -1)
    flips = np.where(rng.random((n, bits // 2)) < 0.1, -1, 1)
    codes[:, 1::2] = codes[:, 0::2] * flips
    return codes.astype(np.int8)


def entropy_of(p: float) -> float:
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def test_the_rate_term_prices_codes_as_the_coder_would():
    codes = correlated_codes()
    term = RateTerm(codes.shape[1])
    term.warm_start(codes)
    weight = (term.prior.skip * term.prior.skip_mask).detach().numpy()
    prior = entropy.Prior(np.round(term.prior.bias.detach().numpy() * entropy.SCALE), np.round(weight * entropy.SCALE))
    coder_bits = prior.cost_bits(codes) / len(codes)  # the same prior in the coder's integers
    assert term.bits_of(codes) == pytest.approx(coder_bits, rel=0.01)
    ideal = 24 * (entropy_of(0.7) + entropy_of(0.1))  # the lean of the even bits, the repeats of the odd
    assert term.bits_of(codes) < 1.02 * ideal


def test_a_prior_of_zeros_prices_every_bit_at_one_bit_and_moves_no_code():
    term = RateTerm(8)
    codes = torch.ones(4, 8, requires_grad=True)
    bits = term(codes)
    bits.backward()
    assert bits.item() == pytest.approx(8.0) and not term.fitted
    assert torch.count_nonzero(codes.grad) == 0


def test_the_rate_gradient_flips_the_bits_the_prior_finds_surprising():
    codes = correlated_codes()
    term = RateTerm(codes.shape[1])
    term.warm_start(codes)
    latents = (0.05 * torch.from_numpy(codes).float()).requires_grad_(True)  # signs weakly held
    before = term.bits_of(codes)
    for _ in range(5):
        term(SignSTE.apply(latents)).backward()
        with torch.no_grad():
            latents -= 0.2 * latents.grad * len(latents)  # the gradient of the mean, per tile
            latents.grad = None
    after = np.where(latents.detach().numpy() >= 0, 1, -1)
    assert term.bits_of(after) < 0.8 * before


def test_a_rated_run_logs_the_bits_and_selects_on_loss_plus_rate(tmp_path, images):
    arch = replace(PRESETS["cifar10"], width=4, bits=32)
    _, progress, _ = train(
        arch, images, images[:32], tmp_path, Recipe(epochs=2, batch=16, rate=0.2), show_progress=False
    )
    assert progress.best_metric == "val_rd"
    for h in progress.history:
        assert h["val_rd"] == pytest.approx(h["val_loss"] + 0.2 * h["val_bits"] / images[0].size)
        assert "train_bits" in h


def test_compile_reaches_a_rated_step(monkeypatch, images):
    compiled = []

    def fake_compile(fn):
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = LBAE(replace(PRESETS["cifar10"], width=4, bits=32))
    step = FidelityStep(model, Recipe(rate=0.2, compile=True), distributed.World())
    step.rate.warm_start(correlated_codes(64, 32))
    logged = step(to_float(images[:8]), 0)
    assert compiled == [model.codes_and_logits] and logged["bits"] > 0


def test_a_resumed_rated_run_repeats_an_uninterrupted_one(tmp_path, images):
    a, b = whole_and_resumed(tmp_path, images, Recipe(epochs=2, batch=32, rate=0.5))
    for mine, theirs in ((a.model.state_dict(), b.model.state_dict()), (a.rate, b.rate)):
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert a.rate  # the prior and its optimiser are in the checkpoint


@pytest.mark.parametrize("extra", [["--stage", "realism", "--init-from", "cifar10"], ["--kind", "vae"]])
def test_rate_is_only_for_an_lbae_fidelity_run(tmp_path, images, extra):
    np.savez(tmp_path / "c.npz", x_train=images, x_test=images[:16])
    args = ["train", "--data-dir", str(tmp_path / "c.npz"), "--width", "4", "--rate", "0.1", *extra]
    r = CliRunner().invoke(cli.main, args)
    assert r.exit_code == 2 and "--rate trains an LBAE" in r.output and "Traceback" not in r.output
