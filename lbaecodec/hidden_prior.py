"""A context prior with one hidden layer (MADE, Germain et al. 2015), in integer arithmetic.

Bit i of a tile has integer logit

    l_i = c_i + Σ_{j<i} W_ij b_j + floor(Σ_k V_ik h_k / 4096),
    h_k = max(0, a_k + Σ_{j<d_k} U_kj b_j),

the linear context prior of ``entropy`` plus ReLU units: unit k sees only the bits before its
degree d_k and feeds only bits i ≥ d_k, so the prior stays autoregressive and decodes bit by
bit. U and a are in logit units (1/256), V in 1/4096: every sum is an integer, computed in
float64 where it is exact (the model is refused unless Σ_k |V_ik| · max h_k < 2^53), so encoder
and decoder agree on every machine. Entries outside those masks are ignored.

A model ships it beside its linear context prior, under its own tensor names (``prior_tensors``),
for files of coding method 3 (``Coding.HIDDEN``), which readers before lbaecodec 0.9 refuse as
an unknown method: decoding under the linear part alone would give other bits, and that the
payload re-encodes to itself would not catch it.
"""

from __future__ import annotations

import functools

import numpy as np

from .entropy import Prior
from .errors import ModelError

OUTER_SCALE = 4096  # V's integer units per logit unit
EXACT = 2.0**53


class HiddenPrior(Prior):
    """Integer coefficients of a MADE context prior; ``degree`` (units,) as above."""

    def __init__(
        self,
        bias: np.ndarray,
        weight: np.ndarray,
        degree: np.ndarray,
        inner: np.ndarray,
        inner_bias: np.ndarray,
        outer: np.ndarray,
    ) -> None:
        super().__init__(bias, weight)
        self.degree, self.inner_bias = np.asarray(degree, np.int64), np.asarray(inner_bias, np.int64)
        if self.degree.min(initial=0) < 0 or self.degree.max(initial=0) > self.bits:
            raise ModelError(f"the hidden prior's unit degrees must lie in 0…{self.bits}")
        sees = np.arange(self.bits)[None] < self.degree[:, None]
        self.inner = np.where(sees, inner, 0).astype(np.int64)
        self.outer = np.where(self.degree[None] <= np.arange(self.bits)[:, None], outer, 0).astype(np.int64)
        if self.outer_reach.max(initial=0) >= EXACT:
            raise ModelError("the hidden prior's coefficients are too large for exact sums")
        # units in order of degree, so that those bit i brings in are one run of buffer rows
        order = np.argsort(self.degree, kind="stable")
        self._inner, self._inner_bias = self.inner[order].astype(np.float64), self.inner_bias[order].astype(np.float64)
        self._outer = self.outer[:, order].astype(np.float64)
        self._first_unit = np.searchsorted(self.degree[order], np.arange(self.bits + 1))

    @property
    def units(self) -> int:
        return len(self.degree)

    @functools.cached_property
    def outer_reach(self) -> np.ndarray:
        """Σ_k |V_ik| · (the largest h_k can be), per bit: bounds the hidden term's size."""
        peak = np.maximum(0, self.inner_bias + np.abs(self.inner).sum(1)).astype(np.float64)
        return np.abs(self.outer).astype(np.float64) @ peak

    @functools.cached_property
    def groups(self) -> list[slice]:
        return [slice(i, i + 1) for i in range(self.bits)]

    @functools.cached_property
    def min_bit_costs(self) -> np.ndarray:
        hidden_reach = np.ceil(self.outer_reach / OUTER_SCALE).astype(np.int64)
        return self._cost_at(np.abs(self.bias) + np.abs(self.weight).sum(1) + hidden_reach)

    @functools.cached_property
    def float_weight(self) -> np.ndarray:
        return self.weight.astype(np.float64)  # the signs buffer holds float64 unit activations too

    def logits(self, codes: np.ndarray) -> np.ndarray:
        c = np.asarray(codes, np.float64)
        activations = np.maximum(0.0, self._inner_bias + c @ self._inner.T)
        return super().logits(c) + _hidden_term(activations @ self._outer.T)

    def signs_buffer(self, tiles: int) -> np.ndarray:
        """Zeros (bits + units, tiles): the decoded bits, then the unit activations, filled in as
        decoding reaches each unit's degree."""
        return np.zeros((self.bits + self.units, tiles))

    def group_logits(self, group: slice, signs: np.ndarray) -> np.ndarray:
        """Bit i's integer logits (1, tiles), given bits < i in ``signs``; first computes the units
        of degree i (they see exactly the bits now known) into their rows of ``signs``."""
        i = group.start
        new = slice(self._first_unit[i], self._first_unit[i + 1])
        if new.stop > new.start:
            sums = self._inner[new, :i] @ signs[:i]
            signs[self.bits + new.start : self.bits + new.stop] = np.maximum(0.0, self._inner_bias[new, None] + sums)
        active = self._first_unit[i + 1]
        hidden = self._outer[i, :active] @ signs[self.bits : self.bits + active]
        return super().group_logits(group, signs) + _hidden_term(hidden)[None]

    def arrays(self) -> dict[str, np.ndarray]:
        """The integer arrays that define this prior (``prior_tensors.ARRAY_TYPES`` names them)."""
        hidden = {"degree": self.degree, "inner": self.inner, "inner_bias": self.inner_bias, "outer": self.outer}
        return super().arrays() | hidden


def _hidden_term(sums: np.ndarray) -> np.ndarray:
    """floor(Σ V h / 4096) of exact float64 integer sums (a power-of-two division is exact too)."""
    return np.floor(sums / OUTER_SCALE).astype(np.int64)
