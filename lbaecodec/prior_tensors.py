"""A model's priors ↔ the integer tensors its model file stores them as (names and shapes in
docs/FORMAT.md, "Coding methods"): the factorized and linear context priors of ``entropy`` and
the hidden-layer prior of ``hidden_prior``, each checked for type and shape on the way in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .container import Coding
from .entropy import Prior
from .errors import ModelError
from .hidden_prior import HiddenPrior

if TYPE_CHECKING:  # torch is imported where model tensors are made
    import torch

# int32 (bits,), int32 (bits,), int16 (bits, bits)
FACTORIZED_BIAS, CONTEXT_BIAS, CONTEXT_WEIGHT = "prior.factorized_bias", "prior.context_bias", "prior.context_weight"
HIDDEN_PREFIX = "prior.hidden."  # + each name of HiddenPrior.arrays()
ARRAY_TYPES = {  # the integer type of each array a prior is made of (``Prior.arrays``)
    "bias": np.int32,
    "weight": np.int16,
    "degree": np.int32,
    "inner": np.int16,
    "inner_bias": np.int32,
    "outer": np.int16,
}


def to_tensors(factorized: Prior, context: Prior | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a factorized and (optionally) a linear context prior."""
    import torch

    if context is not None and type(context) is not Prior:
        raise TypeError(f"a {type(context).__name__} has tensors of its own (hidden_to_tensors)")
    out = {FACTORIZED_BIAS: torch.from_numpy(factorized.bias.astype(np.int32))}
    if context is not None:
        out[CONTEXT_BIAS] = torch.from_numpy(context.bias.astype(np.int32))
        out[CONTEXT_WEIGHT] = torch.from_numpy(context.weight.astype(np.int16))
    return out


def hidden_to_tensors(prior: HiddenPrior) -> dict[str, torch.Tensor]:
    """The tensors of a hidden-layer prior, which a model ships beside its other priors."""
    import torch

    return {HIDDEN_PREFIX + name: torch.from_numpy(a.astype(ARRAY_TYPES[name])) for name, a in prior.arrays().items()}


def from_tensors(tensors: dict[str, torch.Tensor], coding: Coding) -> Prior | None:
    """The model's prior for this coding (factorized, context, or context with a hidden layer), or
    None if it ships none; ModelError if its tensors are not the integers of the shapes FORMAT.md
    gives."""
    if coding == Coding.CONTEXT and (CONTEXT_WEIGHT in tensors or CONTEXT_BIAS in tensors):
        bias = integer_tensor(tensors, CONTEXT_BIAS, np.int32, None)
        return Prior(bias, integer_tensor(tensors, CONTEXT_WEIGHT, np.int16, (len(bias), len(bias))))
    if coding == Coding.HIDDEN and any(k.startswith(HIDDEN_PREFIX) for k in tensors):
        return _hidden_from_tensors(tensors)
    if coding == Coding.FACTORIZED and FACTORIZED_BIAS in tensors:
        return Prior(integer_tensor(tensors, FACTORIZED_BIAS, np.int32, None))
    return None


def _hidden_from_tensors(tensors: dict[str, torch.Tensor]) -> HiddenPrior:
    n = len(integer_tensor(tensors, HIDDEN_PREFIX + "bias", np.int32, None))
    h = len(integer_tensor(tensors, HIDDEN_PREFIX + "degree", np.int32, None))
    shapes = {"bias": (n,), "weight": (n, n), "degree": (h,), "inner": (h, n), "inner_bias": (h,), "outer": (n, h)}
    return HiddenPrior(
        **{name: integer_tensor(tensors, HIDDEN_PREFIX + name, ARRAY_TYPES[name], shapes[name]) for name in shapes}
    )


def integer_tensor(tensors: dict[str, torch.Tensor], name: str, dtype: type, shape: tuple | None) -> np.ndarray:
    """Model tensor ``name`` as a numpy array; ModelError unless it is there, of numpy ``dtype``
    and of ``shape`` (None: any one-dimensional length)."""
    t = tensors.get(name)
    if t is None:
        raise ModelError(f"the model's prior has no {name}")
    kind = np.dtype(dtype).name
    wrong_shape = t.ndim != (1 if shape is None else len(shape)) or (shape and tuple(t.shape) != shape)
    if str(t.dtype) != f"torch.{kind}" or wrong_shape:
        raise ModelError(f"the model's {name} is {t.dtype} {tuple(t.shape)}, not {kind} {shape or '(bits,)'}")
    return t.numpy()
