"""A file's payloads ↔ its codes under a model: which coding method and prior a file gets.

``auto`` takes the best prior the model ships (hidden, context, then factorized) with a tight
end (coding methods 5–7), and raw bits where coding would not save space; a named coding is
taken as it is (the word-ended methods for older readers). Each stage of a file is coded under
its own stage's prior, with the method stage 1 got.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import bits, container, entropy
from .container import Coding
from .errors import InputError, LbaeError, ModelError, value_or_raise
from .stages import TileNetwork

AUTO_CODING = "auto"
CODINGS = (AUTO_CODING, *(c.label for c in Coding))  # what encode's ``coding`` accepts
CONTEXT_CODINGS = (Coding.HIDDEN, Coding.CONTEXT)  # priors over a tile's earlier bits, best first
BEST_FIRST = (*CONTEXT_CODINGS, Coding.FACTORIZED)  # ``auto`` takes the first the model ships


def model_prior(m: TileNetwork, coding: Coding, required: bool = True) -> entropy.Prior | None:
    coding = coding.prior_method
    if coding not in m.derived.setdefault("priors", {}):
        m.derived["priors"][coding] = m.prior(coding)
    prior = m.derived["priors"][coding]
    if prior is None:
        if not required:
            return None
        raise ModelError(f"model {m.id} ships no {coding.label} prior")
    if prior.bits != m.arch.bits:
        raise ModelError(f"model {m.id}: prior has {prior.bits} bits, network {m.arch.bits}")
    return prior


def coding_prior(m: TileNetwork, coding: str = AUTO_CODING) -> tuple[Coding, entropy.Prior | None]:
    """The coding method ``coding`` names and the prior it codes under (None for raw bits):
    ``auto`` takes the model's best prior, with a tight end (raw where it ships none)."""
    if coding not in CODINGS:
        raise InputError(f"unknown coding {coding!r}; choose from {', '.join(CODINGS)}")
    if coding == AUTO_CODING:
        best = ((c.tightened(), p) for c in BEST_FIRST if (p := model_prior(m, c, required=False)) is not None)
        return next(best, (Coding.RAW, None))
    method = Coding.from_label(coding)
    return method, None if method == Coding.RAW else model_prior(m, method)


def pack_codes(m: TileNetwork, codes: np.ndarray, coding: str = AUTO_CODING) -> tuple[Coding, bytes]:
    """Codes → (coding method, payload). ``auto`` falls back to raw bits when coding would not
    save space."""
    method, prior = coding_prior(m, coding)
    raw = Coding.RAW, bits.pack(codes)
    if prior is None:
        return raw
    coded = entropy.encode(codes, prior, method.tight)
    return (method, coded) if coding != AUTO_CODING or len(coded) < len(raw[1]) else raw


def pack_stages(
    m: TileNetwork, stage_codes: Sequence[np.ndarray], coding: str = AUTO_CODING
) -> tuple[Coding, list[bytes]]:
    """The codes of stages 1, 2, … → (coding method, each stage's payload): one method for the
    file, the one ``pack_codes`` picks for stage 1; each stage is coded under its own prior."""
    method, first = pack_codes(m, stage_codes[0], coding)
    later = [pack_codes(m.stage(k), c, method.label)[1] for k, c in enumerate(stage_codes[1:], start=2)]
    return method, [first, *later]


def unpack_codes(h: container.Header, payload: bytes, m: TileNetwork) -> np.ndarray:
    """Payload → (tiles, bits) codes; coded payloads need the model's prior. ``h`` bound to ``m``
    (``check_model``)."""
    return value_or_raise(unpack_many(m, h.coding, [(0, h, payload)])[0])


def unpack_many(model: TileNetwork, coding: Coding, group: list) -> list[np.ndarray | LbaeError]:
    """The codes of files (index, header, payload) of one coding, or each file's error."""
    if not group:
        return []
    try:
        prior = None if coding == Coding.RAW else model_prior(model, coding)
    except ModelError as e:
        return [e] * len(group)
    return entropy.payloads_codes([h for _, h, _ in group], [p for _, _, p in group], prior)
