import numpy as np
import pytest

from lbaecodec import entropy, hidden_prior, prior_tensors
from lbaecodec.container import Coding
from lbaecodec.errors import ModelError
from lbaecodec.lab import made

from .test_entropy import correlated_codes


def xor_codes(n, bits=40, seed=0):
    """Bits that a linear context prior cannot predict and one hidden layer can: every bit from
    8 on is the product (XOR) of two earlier ones, flipped 5 % of the time."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=(n, bits))
    for i in range(8, bits):
        x[:, i] = x[:, i - 8] * x[:, i - 5] * np.where(rng.random(n) < 0.05, -1, 1)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def prior():
    return made.fit(xor_codes(4000), hidden=128, steps=800).to_prior()


@pytest.mark.parametrize("tiles", [1, 3, 40])
def test_bit_exact_round_trip(prior, tiles):
    for codes in (xor_codes(tiles, seed=tiles), -np.ones((tiles, 40), np.float32), correlated_codes(tiles, 40)):
        for tight in (False, True):
            payload = entropy.encode(codes, prior, tight)
            np.testing.assert_array_equal(entropy.decode(payload, tiles, prior, tight), codes)


def test_a_hidden_layer_codes_what_a_linear_prior_cannot(prior):
    linear = entropy.fit(xor_codes(4000), steps=300)
    test = xor_codes(1000, seed=5)
    assert prior.cost_bits(test) < 0.6 * linear.cost_bits(test)
    assert len(b"".join(entropy.encode(c[None], prior) for c in test)) < 0.7 * len(
        b"".join(entropy.encode(c[None], linear) for c in test)
    )


def test_decoding_and_teacher_forcing_give_the_same_integer_logits(prior):
    """The decoder's bit-by-bit logits (units computed as their degree is reached) equal the
    encoder's all-at-once ones, and those equal the formula in plain integer arithmetic."""
    codes = xor_codes(7, seed=3)
    signs = prior.signs_buffer(7)
    stepwise = []
    for g in prior.groups:
        stepwise.append(prior.group_logits(g, signs))
        signs[g] = codes[:, g].T
    np.testing.assert_array_equal(np.concatenate(stepwise).T, prior.logits(codes))
    b = codes.astype(np.int64)
    h = np.maximum(0, prior.inner_bias + b @ prior.inner.T)
    np.testing.assert_array_equal(prior.logits(codes), prior.bias + b @ prior.weight.T + (h @ prior.outer.T) // 4096)


def test_units_of_any_degree_and_order_round_trip():
    """Degrees 0 (a constant unit) to 40 (feeds no bit), unsorted: stepwise decoding still meets
    the encoder's logits."""
    rng = np.random.default_rng(4)
    degree = rng.permutation(np.r_[0, 0, 40, rng.integers(1, 40, 29)])
    made_up = hidden_prior.HiddenPrior(
        rng.integers(-300, 300, 40), rng.integers(-99, 99, (40, 40)), degree, rng.integers(-300, 300, (32, 40)),
        rng.integers(-500, 500, 32), rng.integers(-3000, 3000, (40, 32)),
    )  # fmt: skip
    codes = xor_codes(9, seed=6)
    np.testing.assert_array_equal(entropy.decode(entropy.encode(codes, made_up), 9, made_up), codes)


def test_masks_keep_it_autoregressive(prior):
    """Entries that would let a bit see itself or a later bit are ignored: changing bit i moves
    no logit of bits ≤ i."""
    inner, outer = np.full_like(prior.inner, 300), np.full_like(prior.outer, 99)
    noisy = hidden_prior.HiddenPrior(prior.bias, np.full((40, 40), 300), prior.degree, inner, prior.inner_bias, outer)
    codes = xor_codes(1, seed=8)
    for i in (0, 17, 39):
        flipped = codes.copy()
        flipped[0, i] *= -1
        np.testing.assert_array_equal(noisy.logits(codes)[0, : i + 1], noisy.logits(flipped)[0, : i + 1])


def test_tensors_round_trip_beside_the_linear_prior(prior):
    linear = entropy.fit(xor_codes(500), steps=5)
    tensors = {
        **prior_tensors.to_tensors(entropy.fit(xor_codes(500), context=False), linear),
        **prior_tensors.hidden_to_tensors(prior),
    }
    back = prior_tensors.from_tensors(tensors, Coding.HIDDEN)
    assert isinstance(back, hidden_prior.HiddenPrior)
    for name, array in prior.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], array)
    np.testing.assert_array_equal(prior_tensors.from_tensors(tensors, Coding.CONTEXT).weight, linear.weight)
    assert prior_tensors.from_tensors(prior_tensors.hidden_to_tensors(prior), Coding.CONTEXT) is None
    with pytest.raises(ModelError, match="prior.hidden.outer"):
        prior_tensors.from_tensors(
            {**tensors, "prior.hidden.outer": tensors["prior.hidden.outer"].int()}, Coding.HIDDEN
        )


def test_coefficients_too_large_for_exact_sums_are_refused():
    """1,024 units at the int16/int32 limits: Σ|V|·max h reaches 2^56, past float64's exact integers."""
    units, bits = 1024, 40
    big = dict(degree=np.ones(units), inner=np.full((units, bits), 32767), inner_bias=np.full(units, 2**31 - 1))
    with pytest.raises(ModelError, match="too large"):
        hidden_prior.HiddenPrior(np.zeros(bits), np.zeros((bits, bits)), outer=np.full((bits, units), 32767), **big)
    hidden_prior.HiddenPrior(np.zeros(bits), np.zeros((bits, bits)), outer=np.full((bits, units), 32), **big)


def test_samples_follow_the_prior(prior):
    samples = prior.sample(2000, np.random.default_rng(0))
    assert samples.shape == (2000, 40)
    agree = (samples[:, 8:] == samples[:, :-8] * samples[:, 3:-5]).mean()
    assert agree > 0.7  # the XOR structure (95 % in the data); factorized or linear priors give ~50 %
