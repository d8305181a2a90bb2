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
from .registry import META_ARCH, META_BASE, META_KIND, SHA256_HEX, find_base, parse_header


def layers(path: Path, raw: bytes, meta: dict[str, str]) -> list[tuple[Path, bytes]]:
    """The files whose tensors make up the model in ``path`` (bytes ``raw``, metadata ``meta``),
    each with its bytes, read once: the file it extends (if any), then itself, whose tensors win."""
    base_sha = meta.get(META_BASE)
    if base_sha is None:
        return [(path, raw)]
    if not SHA256_HEX.fullmatch(base_sha):
        raise ModelError(f"{path}: not a valid lbaecodec model (it extends {printable(base_sha)!r}, not a SHA-256)")
    found = find_base(base_sha, path.parent)
    if found is None:
        raise ModelError(
            f"{path}: extends the model file of SHA-256 {base_sha[:16]}…, which is not installed "
            f"(`lbaecodec models` lists the installed ones; or put that file beside this one)"
        )
    base, base_raw = found
    base_meta = parse_header(base_raw, base)[0]
    if META_BASE in base_meta:
        raise ModelError(f"{path}: extends {base.name}, which extends another file in turn (one level at most)")
    if any(base_meta.get(k) != meta.get(k) for k in (META_ARCH, META_KIND)):
        raise ModelError(f"{path}: not a valid lbaecodec model (it extends {base.name}, of another architecture)")
    return [found, (path, raw)]


def read_layers(path: Path) -> list[tuple[Path, bytes]]:
    """``layers`` of the model file at ``path``, read from disk (each file once)."""
    raw = path.read_bytes()
    return layers(path, raw, parse_header(raw, path)[0])


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model file as stored, those of the file it extends included."""
    return merged(read_layers(path))


def merged(files: list[tuple[Path, bytes]]) -> dict[str, torch.Tensor]:
    """The tensors of ``layers``' files, later files' winning."""
    return {name: t for _, raw in files for name, t in load(raw).items()}


def added_to(base: Path, base_raw: bytes, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors that are new or changed against the model file ``base`` (bytes ``base_raw``);
    ValueError if any of base's is missing (a file that extends another can add and replace, not remove)."""
    stored = load(base_raw)
    dropped = sorted(set(stored) - set(tensors))
    if dropped:
        raise ValueError(f"the new model has no {dropped[0]} of {base.name}: it cannot extend that file")
    return {k: v for k, v in tensors.items() if k not in stored or not identical(stored[k], v)}


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
