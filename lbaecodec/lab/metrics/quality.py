"""Per-image PSNR and SSIM on uint8 images, averaged over a set."""

from __future__ import annotations

import numpy as np
import torch

from ...errors import require


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images, copy=True)).permute(0, 3, 1, 2).double()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of 10·log10(255² / MSE), MSE floored at 1e-10."""
    mse = (_float(a) - _float(b)).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(255.0**2 / mse)).mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Gaussian window 11, σ 1.5; window 3 for tiles smaller than 11 px)."""
    win = 11 if min(a.shape[1:3]) >= 11 else 3
    msssim = require("pytorch_msssim", "bench", "SSIM")
    return float(msssim.ssim(_float(a), _float(b), data_range=255, size_average=True, win_size=win))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean MS-SSIM (5 scales; images need at least 161 pixels on their short side)."""
    msssim = require("pytorch_msssim", "bench", "MS-SSIM")
    return float(msssim.ms_ssim(_float(a), _float(b), data_range=255, size_average=True))


def blockiness(image: np.ndarray, tile: int) -> float:
    """Mean absolute step between neighbouring pixels across tile borders over that inside tiles,
    both directions, on one (H, W, C) image: ~1.0 means no visible tile grid."""
    x = image.astype(np.float64)
    steps = [np.abs(np.diff(x, axis=0)), np.abs(np.diff(x, axis=1))]
    across, inside = [], []
    for axis, step in enumerate(steps):
        border = (np.arange(step.shape[axis]) + 1) % tile == 0  # between pixel k·tile−1 and k·tile
        across.append(np.compress(border, step, axis=axis).ravel())
        inside.append(np.compress(~border, step, axis=axis).ravel())
    across_mean, inside_mean = np.concatenate(across).mean(), np.concatenate(inside).mean()
    return float(across_mean / max(inside_mean, 1e-12))


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]]) -> float | None:
    """Bjøntegaard delta rate (%) of ``test`` against ``anchor``, each a list of (bits per
    pixel, PSNR): negative means fewer bits at equal quality. None with fewer than 4 test points
    or too little overlap in quality."""
    if len(test) < 4 or len(anchor) < 4:
        return None
    bd = require("bjontegaard", "bench", "BD-rate")
    (ra, da), (rt, dt) = zip(*sorted(anchor), strict=True), zip(*sorted(test), strict=True)
    try:
        return float(bd.bd_rate(ra, da, rt, dt, method="akima", require_matching_points=False))
    except (ValueError, AssertionError):
        return None
