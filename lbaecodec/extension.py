"""Model files that extend another: which files make up a model, and what an extending file stores.

A file that extends another holds only the tensors it adds or replaces (e.g. a realism decoder)
and names the whole file it extends by its SHA-256 under ``lbaecodec.base`` in its metadata
(docs/ARCHITECTURE.md, "Model file"). One level at most: extending an extension extends its base.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load

from .errors import ModelError, printable
from .registry import META_ARCH, META_BASE, META_KIND, SHA256_HEX, find_base, read_metadata


def layers(path: Path, meta: dict[str, str]) -> list[Path]:
    """The files whose tensors make up the model in ``path``: the file it extends (if any), then
    itself, whose tensors win."""
    base_sha = meta.get(META_BASE)
    if base_sha is None:
        return [path]
    if not SHA256_HEX.fullmatch(base_sha):
        raise ModelError(f"{path}: not a valid lbaecodec model (it extends {printable(base_sha)!r}, not a SHA-256)")
    base = find_base(base_sha, path.parent)
    if base is None:
        raise ModelError(
            f"{path}: extends the model file of SHA-256 {base_sha[:16]}…, which is not installed "
            f"(`lbaecodec models` lists the installed ones; or put that file beside this one)"
        )
    base_meta = read_metadata(base)
    if META_BASE in base_meta:
        raise ModelError(f"{path}: extends {base.name}, which extends another file in turn (one level at most)")
    if any(base_meta.get(k) != meta.get(k) for k in (META_ARCH, META_KIND)):
        raise ModelError(f"{path}: not a valid lbaecodec model (it extends {base.name}, of another architecture)")
    return [base, path]


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model file as stored, those of the file it extends included."""
    return {name: t for layer in layers(path, read_metadata(path)) for name, t in load(layer.read_bytes()).items()}


def added_to(base: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors that are new or changed against the model file ``base``; ValueError if any
    of base's is missing (a file that extends another can add and replace, not remove)."""
    stored = load(base.read_bytes())
    dropped = sorted(set(stored) - set(tensors))
    if dropped:
        raise ValueError(f"the new model has no {dropped[0]} of {base.name}: it cannot extend that file")
    return {k: v for k, v in tensors.items() if k not in stored or not identical(stored[k], v)}


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
