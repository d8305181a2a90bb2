"""Rate–distortion optimised codes: the encoder's code, less the bits that cost more than they hold.

The encoder's code is sign(z), z = tanh(…) in (−1, 1): |z_i| says how sure the encoder is of bit
i. Walking the bits in the order the decoder reads them (``Prior.groups``), bit i is flipped
where the bits that saves under the prior, times ``strength``, exceed |z_i|: a bit the prior
finds surprising and the encoder barely chose. Strength 0 keeps the encoder's code; larger
strengths give smaller files and lower fidelity. Readers need nothing new: a file still holds a
code of ±1 bits, coded under the model's prior, just not exactly the encoder's own.
"""

from __future__ import annotations

import numpy as np

from .entropy import Prior, probabilities


def optimised_codes(z: np.ndarray, prior: Prior, strength: float) -> np.ndarray:
    """The encoder's values (tiles, bits) in (−1, 1) → (tiles, bits) codes of ±1, float32."""
    wanted = np.where(np.asarray(z) >= 0, 1.0, -1.0).T
    if strength <= 0:
        return wanted.T.astype(np.float32)
    sureness = np.abs(np.asarray(z, np.float64)).T
    signs = prior.signs_buffer(wanted.shape[1])
    for g in prior.groups:
        p_one = probabilities(prior.group_logits(g, signs))
        p_kept = np.where(wanted[g] > 0, p_one, 1 - p_one)
        saved_by_flip = np.log2(1 - p_kept) - np.log2(p_kept)  # bits; positive where the flip is cheaper
        signs[g] = np.where(strength * saved_by_flip > sureness[g], -wanted[g], wanted[g])
    return signs[: prior.bits].T.astype(np.float32)
