"""Bit priors and range coding of ±1 codes with constriction.

Two priors, both fitted on training-set codes and shipped inside the model file:

* ``factorized``: an independent Bernoulli per bit position.
* ``context``: a logistic model over earlier bits of the same tile,
  logit_i = c_i + Σ_{j<i} W_ij b_j  (a fully visible sigmoid belief net).
  A *grouped* context prior has W_ij = 0 wherever i and j fall in the same group of
  consecutive bits: a group's bits then depend only on earlier groups, and the decoder takes
  a whole group per coder call (it finds the groups in W's zeros, so any prior decodes this way
  and the coded stream is the same as bit by bit).

(A third, ``hidden``, adds a hidden layer to the context prior: ``hidden_prior.py``. How a model
file stores priors: ``prior_tensors.py``.)

Coefficients are stored as integers (scale 1/256) and logits are computed in integer
arithmetic; each logit's probability, a multiple of 2^-16, comes from a shipped integer table,
so encoder and decoder get bit-identical probabilities on any machine.

Symbols are coded bit-major: bit 0 of every tile, then bit 1 of every tile, and so on, so
decoding takes one vectorised step per group of bits however many tiles an image has.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import constriction
import numpy as np

from . import bits
from .container import Header
from .errors import LbaeFormatError, value_or_raise

SCALE = 256  # integer logit units per nat
MAX_LOGIT = 16 * SCALE
P_STEPS = 1 << 16
MIN_RUN = 8  # the shortest run of bits decoded in one coder call (``Prior.groups``)
CODER_SLACK_BITS = 64  # a range coder's output may fall short of the ideal cost by its final state


TABLE_FILE = Path(__file__).with_name("probabilities.u32")


@functools.cache
def probability_table() -> np.ndarray:
    """round(2^16 · σ(l / 256)) for every integer logit l in [−MAX_LOGIT, MAX_LOGIT]: shipped
    as data (little-endian uint32), computed once in exact decimal arithmetic (see
    tests/test_entropy.py), so that no float ``exp`` of any machine decides a probability."""
    table = np.fromfile(TABLE_FILE, "<u4").astype(np.int64)
    if len(table) != 2 * MAX_LOGIT + 1:
        raise RuntimeError(f"{TABLE_FILE}: damaged installation ({len(table)} entries)")
    return table


@functools.cache
def _coder_probabilities() -> np.ndarray:
    """The table as the coder's float64 probabilities, kept 2^-16 away from 0 and 1."""
    return np.clip(probability_table() / P_STEPS, 1.0 / P_STEPS, 1.0 - 1.0 / P_STEPS)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Integer logits → P(bit = +1) as float64 on a 2^-16 grid, away from 0 and 1. (Two ufuncs,
    not np.clip: for the one-tile files this codec is made for, np.clip's Python wrapper cost
    more than the arithmetic, 600 times per file.)"""
    return _coder_probabilities()[np.minimum(np.maximum(logits, -MAX_LOGIT), MAX_LOGIT) + MAX_LOGIT]


class Prior:
    """Integer coefficients of a bit prior; ``weight`` is None for the factorized one."""

    def __init__(self, bias: np.ndarray, weight: np.ndarray | None = None) -> None:
        self.bias = np.asarray(bias, np.int64)
        self.weight = None if weight is None else np.tril(np.asarray(weight, np.int64), -1)

    @property
    def bits(self) -> int:
        return len(self.bias)

    @functools.cached_property
    def groups(self) -> list[slice]:
        """Runs of consecutive bits that depend on no bit of their own run (W's zeros), each
        decoded in one step: one run for a factorized prior, bit by bit for a dense context
        prior. Runs shorter than MIN_RUN are taken bit by bit (a coder call with a fixed
        model per bit is quicker than one call with a vector of probabilities for so few)."""
        if self.weight is None:
            return [slice(0, self.bits)]
        starts = [0]
        for i in range(1, self.bits):
            if self.weight[i, starts[-1] : i].any():
                starts.append(i)
        groups = []
        for a, b in zip(starts, [*starts[1:], self.bits], strict=True):
            groups += [slice(a, b)] if b - a >= MIN_RUN else [slice(i, i + 1) for i in range(a, b)]
        return groups

    @functools.cached_property
    def min_bit_costs(self) -> np.ndarray:
        """A lower bound on the coded cost of each bit position of any tile: the most confident
        probability its logit can reach (|bias| + Σ|weights|)."""
        return self._cost_at(np.abs(self.bias) + (np.abs(self.weight).sum(1) if self.weight is not None else 0))

    @staticmethod
    def _cost_at(reach: np.ndarray) -> np.ndarray:
        """−log2 of the most confident probability each bit's logit can reach (|logit| ≤ reach)."""
        return -np.log2(probabilities(reach))

    @functools.cached_property
    def still_to_cost(self) -> np.ndarray:
        """The least cost of bits i.. of one tile, for each i (and 0 past the last bit)."""
        return np.append(np.cumsum(self.min_bit_costs[::-1])[::-1], 0.0)

    @property
    def min_tile_bits(self) -> float:
        """The least any tile can cost: a payload shorter than tiles × this cannot be a real file,
        and is refused before any decoding work."""
        return float(self.min_bit_costs.sum())

    def logits(self, codes: np.ndarray) -> np.ndarray:
        """All integer logits at once (teacher forcing), (tiles, bits). The products run in
        floats (BLAS) in which they are exact integers (``float_weight``)."""
        if self.weight is None:
            return np.broadcast_to(self.bias, np.shape(codes))
        c = np.asarray(codes, self.float_weight.dtype)
        return self.bias + (c @ self.float_weight.T).astype(np.int64)

    @functools.cached_property
    def float_weight(self) -> np.ndarray:
        """The context weights as floats for exact integer products through BLAS: float32 when
        no row's Σ|W| reaches 2^24 (every partial sum of ±W is then exact in it; ~4x quicker
        decoding steps than float64), else float64 (exact below 2^53)."""
        exact_in_float32 = np.abs(self.weight).sum(1).max() < 2**24
        return self.weight.astype(np.float32 if exact_in_float32 else np.float64)

    def signs_buffer(self, tiles: int) -> np.ndarray:
        """Zeros (bits, tiles) to hold decoded ±1 bits, in the dtype ``group_logits`` sums in
        exactly (``float_weight``'s)."""
        return np.zeros((self.bits, tiles), np.float64 if self.weight is None else self.float_weight.dtype)

    def group_logits(self, group: slice, signs: np.ndarray) -> np.ndarray:
        """Integer logits (group bits, tiles) of a ``groups`` entry, given the earlier groups'
        bits in ``signs`` (a ``signs_buffer``)."""
        if self.weight is not None and group.start:
            return self.bias[group, None] + _earlier_sums(self.float_weight, group, signs).astype(np.int64)
        return np.repeat(self.bias[group, None], signs.shape[1], axis=1)  # the first group, or factorized

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n codes (n, bits) of ±1 drawn from this prior, group by group, with the logits the
        coder uses: the distribution the files are coded under, as a generative model."""
        signs = self.signs_buffer(n)
        for g in self.groups:
            ones = rng.random((n, g.stop - g.start)).T < probabilities(self.group_logits(g, signs))
            signs[g] = np.where(ones, 1.0, -1.0)
        return signs[: self.bits].T.astype(np.float32)

    def cost_bits(self, codes: np.ndarray) -> float:
        """Ideal code length in bits of a (tiles, bits) array of ±1 codes."""
        p = probabilities(self.logits(codes))
        return float(-np.log2(np.where(np.asarray(codes) > 0, p, 1 - p)).sum())

    def arrays(self) -> dict[str, np.ndarray]:
        """The integer arrays that define this prior: ``bias``, and ``weight`` for a context prior."""
        return {"bias": self.bias} | ({} if self.weight is None else {"weight": self.weight})


def payload_codes(h: Header, payload: bytes, prior: Prior | None) -> np.ndarray:
    """A file's payload → its (tiles, bits) codes of ±1: raw bits, or range-coded under ``prior``."""
    return value_or_raise(payloads_codes([h], [payload], prior)[0])


def payloads_codes(
    headers: Sequence[Header], payloads: Sequence[bytes], prior: Prior | None
) -> list[np.ndarray | LbaeFormatError]:
    """Many files' payloads (all of one coding, under one prior) → each file's codes, or the
    error that file alone raised. Range-coded files are decoded together, one step per bit."""
    tiles = [h.grid.count for h in headers]
    if prior is None:
        return [_raw_codes(p, t, h.bits) for h, p, t in zip(headers, payloads, tiles, strict=True)]
    results = decode_many(payloads, tiles, prior, tight=bool(headers) and headers[0].coding.tight)
    return [r if isinstance(r, np.ndarray) else LbaeFormatError(f"corrupted .lbae payload: {r}") for r in results]


def _raw_codes(payload: bytes, tiles: int, n_bits: int) -> np.ndarray | LbaeFormatError:
    try:
        return bits.unpack(payload, tiles, n_bits)
    except ValueError as e:
        return LbaeFormatError(f"corrupted .lbae payload: {e}")


def encode(codes: np.ndarray, prior: Prior, tight: bool = False) -> bytes:
    """(tiles, bits) ±1 → range-coded bytes: 32-bit words little-endian, or with ``tight``
    big-endian and the last one cut to whole bytes (``_tight_bytes``)."""
    codes = np.asarray(codes)
    return _range_encode(codes > 0, probabilities(prior.logits(codes)), tight)


def _range_encode(ones: np.ndarray, probs: np.ndarray, tight: bool = False) -> bytes:
    """(tiles, bits) booleans (bit = +1) and their probabilities → the words, bit-major."""
    coder = constriction.stream.queue.RangeEncoder()
    symbols = np.ascontiguousarray(ones.T, np.int32).reshape(-1)
    probs = np.ascontiguousarray(probs.T).reshape(-1)
    coder.encode(symbols, _FAMILY, probs)
    words = coder.get_compressed()
    return _tight_bytes(words, symbols, probs) if tight else words.astype("<u4").tobytes()


_FAMILY = constriction.stream.model.Bernoulli(perfect=False)
MAX_CUT_BYTES = 3  # a tight code keeps at least the first byte of its last word


def _tight_bytes(words: np.ndarray, symbols: np.ndarray, probs: np.ndarray) -> bytes:
    """The words big-endian, the last one raised to the most zero low bytes (up to 3) with which
    they still decode to ``symbols``, and those zero bytes left out (a reader puts them back).
    The coder ends on the lowest word of its final interval, where any word of that interval
    would do: one with zero low bytes saves them (~14 bits per one-tile file, measured)."""
    cut = 0
    for zero_bytes in range(1, MAX_CUT_BYTES + 1):
        step = 1 << 8 * zero_bytes
        raised = -(-int(words[-1]) // step) * step
        if raised >= 1 << 32 or not _decodes_to(np.append(words[:-1], np.uint32(raised)), symbols, probs):
            break
        words[-1], cut = raised, zero_bytes
    data = words.astype(">u4").tobytes()
    return data[: len(data) - cut]


def _decodes_to(words: np.ndarray, symbols: np.ndarray, probs: np.ndarray) -> bool:
    try:
        return np.array_equal(constriction.stream.queue.RangeDecoder(words).decode(_FAMILY, probs), symbols)
    except AssertionError:  # constriction's "no encoder wrote this"
        return False


def _words(data: bytes, tight: bool) -> np.ndarray:
    """A payload's 32-bit words: a tight one's last word gets back its cut zero bytes."""
    if tight:
        return np.frombuffer(data + bytes(-len(data) % 4), ">u4").astype(np.uint32)
    if len(data) % 4:
        raise ValueError("coded payload is not a whole number of 32-bit words")
    return np.frombuffer(data, "<u4").astype(np.uint32)


def decode(data: bytes, tiles: int, prior: Prior, tight: bool = False) -> np.ndarray:
    """Inverse of encode; raises ValueError when the data cannot be what encode wrote."""
    return value_or_raise(decode_many([data], [tiles], prior, tight)[0])


class _Stream:
    """One file's range decoder and its columns among all tiles being decoded."""

    def __init__(self, index: int, data: bytes, rows: slice, prior: Prior, tight: bool) -> None:
        tiles = rows.stop - rows.start
        words = _words(data, tight)
        if tiles * prior.min_tile_bits > 32 * len(words) + CODER_SLACK_BITS:  # before any work or memory
            raise ValueError(f"{len(data)} coded bytes cannot hold {tiles} tiles")
        self.index, self.data, self.rows = index, data, rows
        self.decoder = constriction.stream.queue.RangeDecoder(words)
        self.may_end_before = int(np.argmax(tiles * prior.still_to_cost <= CODER_SLACK_BITS))
        self.first = rows.start if tiles == 1 else None  # one-tile files take the quicker coder call


def _decode_step(
    streams: list[_Stream], group: slice, entries: np.ndarray, probs: np.ndarray, n_bits: int, results: list
) -> np.ndarray:
    """The ``group``'s bits of every tile (1 = +1), (group bits, tiles), given each one's table
    entry and its probability; a stream that fails gets its error in ``results`` and leaves
    ``streams``."""
    one_bit, first_bit, models = entries.shape[0] == 1, group.start, _bernoulli_models()
    one_tile_files = one_bit and any(s.first is not None for s in streams)
    if one_tile_files:  # Python lists: numpy's per-element cost would rival the coder's
        ones = entries[0].tolist()
    elif one_bit:
        ones = np.zeros(entries.shape[1], np.int32)
    else:  # tile-major, so that a one-tile file's bits are one contiguous row
        ones, probs_by_tile = np.zeros(entries.shape[::-1], np.int32), np.ascontiguousarray(probs.T)
    for s in list(streams):
        try:
            if first_bit < s.may_end_before and s.decoder.maybe_exhausted():  # ran past its words
                raise ValueError(f"coded payload ends at bit {first_bit} of {n_bits}")
            if one_bit and s.first is not None:
                ones[s.first] = s.decoder.decode(models[ones[s.first]])
            elif one_bit:
                decoded = s.decoder.decode(_FAMILY, probs[0, s.rows])
                ones[s.rows] = decoded.tolist() if one_tile_files else decoded
            elif s.first is not None:
                ones[s.first] = s.decoder.decode(_FAMILY, probs_by_tile[s.first])
            else:  # bit-major within the group, as encode wrote it
                ones[s.rows] = s.decoder.decode(_FAMILY, probs[:, s.rows].reshape(-1)).reshape(len(probs), -1).T
        except (ValueError, RuntimeError, AssertionError) as e:  # Assertion: constriction's "no encoder wrote this"
            results[s.index] = ValueError(str(e))
            streams.remove(s)
    return np.array(ones, np.float64)[None] if one_bit else ones.T


@functools.cache
def _bernoulli_models() -> list:
    """A coder model per table entry: for one symbol, a fixed model is a much quicker call than
    the parameterised family (the same probabilities, so the same code)."""
    return [constriction.stream.model.Bernoulli(p, perfect=False) for p in _coder_probabilities().tolist()]


def decode_many(
    payloads: Sequence[bytes], tiles: Sequence[int], prior: Prior, tight: bool = False
) -> list[np.ndarray | ValueError]:
    """Many range-coded payloads (all tight or none) → each one's (tiles, bits) codes, or the
    ValueError that says why it cannot be what encode wrote. All tiles advance together, group by group
    (``Prior.groups``): one vectorised prior step per group for every file, one coder call per
    file and group."""
    results: list = [None] * len(payloads)
    streams, start = [], 0
    for k, (data, count) in enumerate(zip(payloads, tiles, strict=True)):
        try:
            streams.append(_Stream(k, data, slice(start, start + count), prior, tight))
            start += count
        except ValueError as e:
            results[k] = e
    signs = prior.signs_buffer(start)
    probs, n_bits = np.zeros((prior.bits, start)), prior.bits
    for g in prior.groups:
        entries = np.minimum(np.maximum(prior.group_logits(g, signs), -MAX_LOGIT), MAX_LOGIT) + MAX_LOGIT
        probs[g] = _coder_probabilities()[entries]
        signs[g] = 2.0 * _decode_step(streams, g, entries, probs[g], n_bits, results) - 1
    for s in streams:  # only the canonical stream is accepted: no silent junk (the probabilities are known)
        signs_s = signs[: prior.bits, s.rows].T
        if _range_encode(signs_s > 0, probs[:, s.rows].T, tight) != s.data:
            results[s.index] = ValueError("coded payload does not re-encode to itself")
        else:
            results[s.index] = signs_s.astype(np.float32)
    return results


def _earlier_sums(weight: np.ndarray, group: slice, signs: np.ndarray) -> np.ndarray:
    """Σ_{j < group start} W_ij b_j for the group's bits i: (group bits, tiles). One bit takes
    numpy's vector-matrix product: as a one-row matrix product it runs ~10× slower."""
    if group.stop - group.start == 1:
        return (weight[group.start, : group.start] @ signs[: group.start])[None]
    return weight[group, : group.start] @ signs[: group.start]


# entropy.fit's L2 weight on the context weights: 1e-4 before lbaecodec 0.12 cost 4–20 % more bits
# on validation codes (bench/results/context-l2-*); 1e-6 is as good as none there
FIT_L2 = 1e-6


def fit(
    codes: np.ndarray, context: bool = True, steps: int = 300, l2: float = FIT_L2, seed: int = 0, groups: int = 0
) -> Prior:
    """Fit a prior on training codes (tiles, bits) of ±1 by maximum likelihood (Adam). ``groups``
    > 0: a grouped context prior, the bits cut into that many runs of (nearly) equal length."""
    import torch

    x = torch.from_numpy(np.asarray(codes, np.float32))
    mean = x.mean(0).clamp(-0.999, 0.999)
    bias = torch.atanh(mean) * 2  # logit of (1 + mean) / 2
    if not context:
        return Prior(np.round(bias.numpy() * SCALE))
    torch.manual_seed(seed)
    n = x.shape[1]
    mask = torch.from_numpy(group_mask(n, groups or n))  # groups of one bit: a dense context prior
    w = torch.zeros(n, n, requires_grad=True)
    b = bias.clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=0.01)
    for _ in range(steps):
        batch = x[torch.randint(len(x), (min(len(x), 8192),))]
        t = (batch > 0).float()
        logits = b + batch @ (w * mask).T
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, t) + l2 * (w * mask).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    weight = np.round((w * mask).detach().numpy() * SCALE).clip(-32767, 32767)
    return Prior(np.round(b.detach().numpy() * SCALE), weight)


def group_mask(bits: int, groups: int) -> np.ndarray:
    """(bits, bits) float32: 1 where bit i may depend on bit j, i.e. j is in an earlier group."""
    group_of = np.arange(bits) * groups // bits
    return (group_of[:, None] > group_of[None, :]).astype(np.float32)
