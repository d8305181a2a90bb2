"""The bit space as a generative model: sampling, interpolation, attribute editing.

Sampling follows the paper's "cov" method: a Gaussian copula whose thresholded signs have the
training codes' means and pairwise second moments. For z ~ N(0, R) with unit variances,
E[sign(z_i) sign(z_j)] = (2/π) arcsin(R_ij), so R = sin(π/2 · M) where M is the second-moment
matrix of the codes extended by a constant +1 bit (its row/column holds the means). A sample
takes the signs of z and multiplies them by the sign of the extra coordinate, which orients
it so that E[b_i] equals the code mean. The "prior" method draws codes bit by bit from the
model's context prior instead (a logistic model of each bit given the earlier ones, with a
hidden layer where the model ships one, fitted by maximum likelihood on the training codes):
not only pairwise moments.

Either can be refined (``refine``): each round decodes the codes with the fidelity decoder and
encodes the 8-bit pictures again, as the codec would, which moves sampled codes towards the
codes the encoder gives real images (the chain of a denoising autoencoder, Bengio et al. 2013).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..architecture import AUTO, FIDELITY, SAMPLE_REFINE
from ..errors import InputError, ModelError
from ..images import to_float, to_uint8
from ..packing import CONTEXT_CODINGS
from ..zoo import ATTRIBUTE_DIRECTION, LABEL_MEAN, STATS_MEAN, STATS_MOMENT, Model
from .codes import encode_all

EIG_FLOOR = 1e-4
GAP = 2  # white pixels between the images of a grid


def copula_factor(mean: np.ndarray, moment: np.ndarray) -> np.ndarray:
    """Cholesky factor of the latent Gaussian's correlation matrix, (bits+1)²."""
    n = len(mean)
    m = np.empty((n + 1, n + 1))
    m[:n, :n], m[:n, n], m[n, :n], m[n, n] = moment, mean, mean, 1.0
    r = np.sin(np.pi / 2 * m)
    w, v = np.linalg.eigh((r + r.T) / 2)  # nearest positive-definite correlation matrix
    r = (v * np.clip(w, EIG_FLOOR, None)) @ v.T
    d = np.sqrt(np.diag(r))
    return np.linalg.cholesky(r / d[:, None] / d[None, :])


def sample_codes(factor: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((n, factor.shape[0])) @ factor.T
    return np.where(z[:, :-1] * np.sign(z[:, -1:]) >= 0, 1.0, -1.0).astype(np.float32)


def random_codes(bits: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """The paper's weak baseline: independent uniform bits."""
    return rng.choice(np.array([-1.0, 1.0], np.float32), size=(n, bits))


def prior_codes(m: Model, n: int, rng: np.random.Generator) -> np.ndarray:
    """Codes drawn bit by bit from the model's context prior, the one `auto` codes its files with
    (with a hidden layer where the model ships one)."""
    prior = next((p for c in CONTEXT_CODINGS if (p := m.prior(c)) is not None), None)
    if prior is None:
        raise ModelError(f"model {m.id} ships no context prior to sample from")
    return prior.sample(n, rng)


def model_statistics(m: Model) -> tuple[np.ndarray, np.ndarray]:
    if STATS_MEAN not in m.extras or STATS_MOMENT not in m.extras:
        raise ModelError(f"model {m.id} ships no code statistics; re-export it with `lbaecodec export`")
    return m.extras[STATS_MEAN].double().numpy(), m.extras[STATS_MOMENT].double().numpy()


def sample(
    m: Model, n: int, method: str = "cov", seed: int = 0, decoder: str = AUTO, refine: int = SAMPLE_REFINE
) -> np.ndarray:
    """n new images (n, S, S, C) uint8 decoded from sampled codes, refined ``refine`` rounds."""
    return decode(m, refined(m, drawn_codes(m, n, method, seed), refine), decoder)


def drawn_codes(m: Model, n: int, method: str = "cov", seed: int = 0) -> np.ndarray:
    """n codes (n, bits) of ±1 drawn by ``method``, before any refining."""
    rng = np.random.default_rng(seed)
    if method == "cov":
        return sample_codes(copula_factor(*model_statistics(m)), n, rng)
    if method == "prior":
        return prior_codes(m, n, rng)
    if method == "random":
        return random_codes(m.arch.bits, n, rng)
    raise ValueError(f"unknown sampling method {method!r}")


def refined(m: Model, codes: np.ndarray, rounds: int) -> np.ndarray:
    """Codes after ``rounds`` of decoding with the fidelity decoder and encoding the pictures
    again (fewer where a round changes no bit: the chain has reached a fixed point)."""
    for _ in range(rounds):
        again = encode(m, decode(m, codes, FIDELITY))
        if np.array_equal(again, codes):
            break
        codes = again
    return codes


def refined_by_rounds(m: Model, codes: np.ndarray, rounds: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(r, ``codes`` refined r rounds) for each r of ``rounds`` in ascending order, each one
    continuing from the one before (the same codes as ``refined(m, codes, r)``)."""
    done = 0
    for r in sorted(rounds):
        codes, done = refined(m, codes, r - done), r
        yield r, codes


def decode(m: Model, codes: np.ndarray, decoder: str = AUTO, batch: int = 10_000) -> np.ndarray:
    """Codes (n, bits) → uint8 images (n, S, S, C) through the named decoder, ``batch`` at a
    time: a bench's 10,000 samples in one batch, as they always were (a CPU's float results
    can depend on the batch size, and FID caches key on pixels); more than that in parts."""
    net, codes = m.with_decoder(decoder), torch.from_numpy(np.ascontiguousarray(codes, np.float32))
    starts = range(0, len(codes), batch)
    return np.concatenate([to_uint8(net.decode(codes[i : i + batch].to(m.device))) for i in starts])


def latents(m: Model, tiles: np.ndarray) -> np.ndarray:
    """Pre-binarisation latents in (-1, 1) of uint8 tiles (n, S, S, C); signs are the codes."""
    x = to_float(tiles).to(m.device)
    with torch.inference_mode():
        return m.net.encoder(x).cpu().double().numpy()


def encode(m: Model, tiles: np.ndarray) -> np.ndarray:
    """Codes (n, bits) of ±1 of uint8 tiles (n, S, S, C), as float32 like the drawn ones."""
    return encode_all(m.net, tiles).astype(np.float32)


def interpolation_path(za: np.ndarray, zb: np.ndarray, steps: int) -> np.ndarray:
    """Codes from sign(za) to sign(zb) in ``steps`` (≥ 2) points.

    The differing bits flip in the order in which the straight line between the latents
    crosses zero, so the least certain bits flip first and the path stays near the codes
    the encoder produces; every step flips about the same number of bits."""
    a, b = np.where(za >= 0, 1.0, -1.0), np.where(zb >= 0, 1.0, -1.0)
    differ = np.flatnonzero(a != b)
    crossing = za[differ] / (za[differ] - zb[differ])
    order = differ[np.argsort(crossing, kind="stable")]
    path = []
    for k in range(steps):
        code = a.copy()
        flips = order[: round(len(order) * k / (steps - 1))]
        code[flips] = b[flips]
        path.append(code)
    return np.stack(path).astype(np.float32)


def edit_latent(z: np.ndarray, direction: np.ndarray, strength: float) -> np.ndarray:
    """Move a latent along an attribute direction (differences of mean codes) and binarise."""
    return np.where(z + strength * direction >= 0, 1.0, -1.0).astype(np.float32)


def label_direction(m: Model, label: int) -> np.ndarray:
    """Mean code of the label's training images minus the mean code of all the others."""
    if LABEL_MEAN not in m.extras:
        raise ModelError(f"model {m.id} ships no labelled code means")
    means = m.extras[LABEL_MEAN].double().numpy()
    if not 0 <= label < len(means):
        raise ModelError(f"label {label} out of range 0–{len(means) - 1}")
    others = np.delete(means, label, axis=0).mean(0)
    return means[label] - others


def direction(m: Model, towards: str) -> np.ndarray:
    """Bit-space direction towards a label (name or index on the card) or an attribute (CelebA)."""
    labels, attributes = m.card.get("labels") or [], m.card.get("attributes") or []
    if towards in attributes and ATTRIBUTE_DIRECTION in m.extras:
        return m.extras[ATTRIBUTE_DIRECTION].double().numpy()[attributes.index(towards)]
    if towards in labels:
        return label_direction(m, labels.index(towards))
    if towards.isdigit() and labels:
        return label_direction(m, int(towards))
    known = ", ".join(labels + attributes) or "none (export it with labels or --attributes)"
    raise InputError(f"unknown label or attribute {towards!r}; model {m.name} knows: {known}")


def mosaic_shape(n: int, cols: int, h: int, w: int, gap: int = GAP) -> tuple[int, int]:
    """(height, width) of the mosaic of n images of h×w in ``cols`` columns."""
    rows = -(-n // cols)
    return rows * (h + gap) - gap, cols * (w + gap) - gap


def mosaic(images: np.ndarray, cols: int, gap: int = GAP) -> np.ndarray:
    """(n, H, W, C) → one (rows·(H+gap)−gap, cols·(W+gap)−gap, C) image, white gaps."""
    n, h, w, c = images.shape
    out = np.full((*mosaic_shape(n, cols, h, w, gap), c), 255, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = img
    return out
