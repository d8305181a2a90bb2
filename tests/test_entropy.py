import numpy as np
import pytest

import lbaecodec
from lbaecodec import container, entropy, prior_tensors
from lbaecodec.container import Coding
from lbaecodec.errors import LbaeFormatError


def correlated_codes(n, bits=120, seed=0):
    mixing = np.random.default_rng(0).normal(size=(8, bits))  # one distribution, many samples
    rng = np.random.default_rng(seed + 1)
    z = rng.normal(size=(n, 8)) @ mixing + rng.normal(size=(n, bits))
    return np.where(z + 0.5 > 0, 1.0, -1.0).astype(np.float32)


@pytest.fixture(scope="module")
def priors():
    train = correlated_codes(4000)
    return entropy.fit(train, context=False), entropy.fit(train, steps=150), entropy.fit(train, steps=150, groups=6)


@pytest.mark.parametrize("tiles", [1, 2, 37])
def test_bit_exact_round_trip(priors, tiles):
    rng = np.random.default_rng(tiles)
    for codes in (
        correlated_codes(tiles, seed=tiles + 1),
        rng.choice([-1.0, 1.0], size=(tiles, 120)).astype(np.float32),
        np.ones((tiles, 120), np.float32),
        -np.ones((tiles, 120), np.float32),
    ):
        for prior in priors:
            for tight in (False, True):
                payload = entropy.encode(codes, prior, tight)
                np.testing.assert_array_equal(entropy.decode(payload, tiles, prior, tight), codes)


@pytest.mark.parametrize("big", [False, True], ids=["float32 sums", "float64 sums"])
def test_context_sums_are_exact_integers(priors, big):
    """The weighted sums run in float32 where every one is exact in it (Σ|W| < 2^24 per row), else
    in float64; either way the logits are the integer ones and the codes round-trip."""
    context = priors[1]
    scale = 2**24 // int(np.abs(context.weight).sum(1).max()) + 1 if big else 1
    prior = entropy.Prior(context.bias, context.weight * scale)
    assert prior.float_weight.dtype == (np.float64 if big else np.float32)
    codes = correlated_codes(50, seed=3)
    assert np.array_equal(prior.logits(codes), prior.bias + codes.astype(np.int64) @ prior.weight.T)
    np.testing.assert_array_equal(entropy.decode(entropy.encode(codes, prior), 50, prior), codes)


@pytest.mark.parametrize("which", [0, 1, 2], ids=["factorized", "context", "grouped"])
def test_many_payloads_decode_together_each_as_alone(priors, which):
    """decode_many: files of 1 and several tiles side by side, broken ones among them; each good
    file decodes to its codes, each broken one gets its own error, none disturbs another."""
    prior = priors[which]
    codes = [correlated_codes(t, seed=10 + i) for i, t in enumerate([1, 3, 1, 1, 5, 1])]
    payloads = [entropy.encode(c, prior) for c in codes]
    payloads[2] = payloads[2][:-4]  # cut short
    payloads[3] = payloads[3][:-1]  # not whole words
    flipped = bytearray(payloads[5])
    flipped[0] ^= 0x40
    payloads[5] = bytes(flipped)
    results = entropy.decode_many(payloads, [len(c) for c in codes], prior)
    for k in (0, 1, 4):
        np.testing.assert_array_equal(results[k], codes[k])
    assert all(isinstance(results[k], ValueError) for k in (2, 3))
    for k, result in enumerate(results):
        if isinstance(result, ValueError):
            with pytest.raises(ValueError, match=str(result)[:20]):
                entropy.decode(payloads[k], len(codes[k]), prior)
        else:
            np.testing.assert_array_equal(entropy.decode(payloads[k], len(codes[k]), prior), result)


def test_context_model_beats_factorized_on_correlated_bits(priors):
    test = correlated_codes(1000, seed=9)
    factorized, context = (p.cost_bits(test) / len(test) for p in priors[:2])
    assert context < factorized < 120
    coded = 8 * len(entropy.encode(test, priors[1])) / len(test)
    assert coded < context + 1  # the range coder stays within a bit per tile of the ideal


def test_a_tight_end_saves_whole_bytes_and_stays_canonical(priors):
    """A tight payload is the word-ended code with its last word cut to whole bytes: never longer,
    at most 3 bytes shorter, more than a byte shorter on average for one-tile payloads; a byte
    cut off or added never decodes to the same codes (it is refused, or another code's payload)."""
    prior = priors[1]
    test = correlated_codes(200, seed=11)
    words = [entropy.encode(c[None], prior) for c in test]
    tight = [entropy.encode(c[None], prior, tight=True) for c in test]
    assert all(0 <= len(w) - len(t) <= 3 for w, t in zip(words, tight, strict=True))
    assert sum(map(len, words)) - sum(map(len, tight)) > len(test)
    for codes, payload in zip(test[:50], tight[:50], strict=True):
        for other in (payload[:-1], payload + b"\0", payload + b"\1"):
            try:
                decoded = entropy.decode(other, 1, prior, tight=True)
            except ValueError:
                continue
            assert not np.array_equal(decoded[0], codes)


def test_tight_payloads_decode_together_each_as_alone(priors):
    codes = [correlated_codes(t, seed=20 + i) for i, t in enumerate([1, 4, 1, 2])]
    payloads = [entropy.encode(c, priors[2], tight=True) for c in codes]
    for c, decoded in zip(codes, entropy.decode_many(payloads, [len(c) for c in codes], priors[2], True), strict=True):
        np.testing.assert_array_equal(decoded, c)


def test_grouped_prior_decodes_a_group_per_coder_call(priors, monkeypatch):
    """The decoder finds a grouped prior's groups in its weights' zeros and takes each in one
    call; the stream is the one bit-by-bit decoding reads, and the rate sits between the dense
    context prior's and the factorized one's."""
    factorized, context, grouped = priors
    assert [(g.start, g.stop) for g in grouped.groups] == [(20 * k, 20 * k + 20) for k in range(6)]
    assert len(factorized.groups) == 1 and len(context.groups) == 120  # runs < MIN_RUN: bit by bit
    codes = [correlated_codes(t, seed=20 + t) for t in (1, 4)]
    payloads = [entropy.encode(c, grouped) for c in codes]
    calls = []
    real = entropy.constriction.stream.queue.RangeDecoder

    class Counting:
        def __init__(self, words):
            self.inner = real(words)

        def maybe_exhausted(self):
            return self.inner.maybe_exhausted()

        def decode(self, *args):
            calls.append(1)
            return self.inner.decode(*args)

    monkeypatch.setattr(entropy.constriction.stream.queue, "RangeDecoder", Counting)
    for c, result in zip(codes, entropy.decode_many(payloads, [1, 4], grouped), strict=True):
        np.testing.assert_array_equal(result, c)
    assert len(calls) == 2 * 6
    bit_by_bit = entropy.Prior(grouped.bias, grouped.weight)
    bit_by_bit.groups = [slice(i, i + 1) for i in range(120)]  # the cached property, overridden
    for c, payload in zip(codes, payloads, strict=True):
        np.testing.assert_array_equal(entropy.decode(payload, len(c), bit_by_bit), c)
    test = correlated_codes(1000, seed=9)
    assert context.cost_bits(test) < grouped.cost_bits(test) < factorized.cost_bits(test)


def test_prior_tensors_round_trip(priors):
    t = prior_tensors.to_tensors(*priors[:2])
    f, c = prior_tensors.from_tensors(t, Coding.FACTORIZED), prior_tensors.from_tensors(t, Coding.CONTEXT)
    np.testing.assert_array_equal(f.bias, priors[0].bias)
    np.testing.assert_array_equal(c.bias, priors[1].bias)  # the context prior's own bias, not the factorized one
    np.testing.assert_array_equal(c.weight, priors[1].weight)
    assert not np.array_equal(priors[0].bias, priors[1].bias)  # else the line above could not tell them apart
    assert prior_tensors.from_tensors({}, Coding.CONTEXT) is None


def test_codec_uses_tight_context_coding_by_default(rgb_image):
    data = lbaecodec.encode(rgb_image)
    assert lbaecodec.info(data).coding == "context-tight"
    others = {c: lbaecodec.encode(rgb_image, coding=c) for c in ("raw", "factorized", "factorized-tight", "context")}
    decoded = {np.asarray(lbaecodec.decode(d)).tobytes() for d in (data, *others.values())}
    assert len(decoded) == 1  # identical pixels whatever the coding
    assert all(lbaecodec.info(d).coding == c for c, d in others.items())
    assert len(data) <= len(others["context"])


def test_auto_falls_back_to_raw_when_coding_does_not_pay(rgb_image, weights_dir):
    # the 'other' test model ships no prior: auto stores raw bits
    assert lbaecodec.info(lbaecodec.encode(rgb_image, model="other")).coding == "raw"
    with pytest.raises(lbaecodec.ModelError, match="no context prior"):
        lbaecodec.encode(rgb_image, model="other", coding="context")


def test_corrupted_coded_payload_is_a_clean_error(rgb_image):
    h, payload = container.read(lbaecodec.encode(rgb_image, coding="context"))  # whole words
    for bad in (payload[:-1], payload[:-4], payload + b"\0\0\0\0"):
        with pytest.raises(LbaeFormatError):
            lbaecodec.decode(container.write(h, bad))


def test_coded_payload_claiming_absurd_tile_count_is_refused(priors):
    with pytest.raises(ValueError, match="cannot hold"):
        entropy.decode(b"\0" * 4, 10**9, priors[1])


def test_probability_table_is_exact_and_pinned():
    """The shipped table is round(2^16·σ(l/256)) computed in 40-digit decimal arithmetic (ties,
    only at l = 0, go to even), pinned by its hash, and equals what the float formula gave on
    the machine that wrote every earlier file."""
    import hashlib
    from decimal import ROUND_HALF_EVEN, Decimal, localcontext

    table = entropy.probability_table()
    assert (
        hashlib.sha256(table.astype("<u4").tobytes()).hexdigest()
        == "7338fc71b85324b07735132b19f0f8afeb130d2a26607a52cbc560b38eee1e14"
    )
    logits = range(-entropy.MAX_LOGIT, entropy.MAX_LOGIT + 1)
    with localcontext() as ctx:
        ctx.prec = 40
        exact = [
            int(
                (Decimal(entropy.P_STEPS) / (1 + (Decimal(-logit) / entropy.SCALE).exp())).quantize(
                    Decimal(1), rounding=ROUND_HALF_EVEN
                )
            )
            for logit in logits[::64]
        ]
    assert table[::64].tolist() == exact
    z = np.arange(-entropy.MAX_LOGIT, entropy.MAX_LOGIT + 1) / entropy.SCALE
    assert np.array_equal(table, np.round(entropy.P_STEPS / (1.0 + np.exp(-z))))
