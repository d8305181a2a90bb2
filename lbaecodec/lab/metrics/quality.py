"""Per-image PSNR and SSIM on uint8 images, averaged over a set."""

from __future__ import annotations

import numpy as np
import torch

from ...errors import require


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of 10·log10(255² / MSE), MSE floored at 1e-10."""
    mse = (_float(a) - _float(b)).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(255.0**2 / mse)).mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Gaussian window 11, σ 1.5; window 3 for tiles smaller than 11 px)."""
    win = 11 if min(a.shape[1:3]) >= 11 else 3
    msssim = require("pytorch_msssim", "bench", "SSIM")
    return float(msssim.ssim(_float(a), _float(b), data_range=255, size_average=True, win_size=win))
