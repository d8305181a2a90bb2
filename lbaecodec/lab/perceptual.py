"""A perceptual distance for training losses: shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022)
on its AlexNet trunk, with the weights that the ``stlpips-pytorch`` wheel ships.

The wheel's own modules import torchvision and IPython at load time, which a CPU build of torch
may not pair with; this module rebuilds the trunk's few layers instead and reads only the wheel's
weights file, as tensors (``weights_only``: no code runs). It is not an Inception network, so FID
stays an outside judge of anything trained with it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import require

WEIGHTS = Path("weights") / "vST0.0" / "alex_shift_tolerant.pth"
# the trunk's five slices, each ending in a feature map that is compared: (module index, kind) in order
TRUNK = (
    ((0, "conv"), (1, "blur"), (2, "relu")),
    ((3, "pool"), (4, "blur"), (5, "conv"), (6, "relu")),
    ((7, "pool"), (8, "blur"), (9, "conv"), (10, "relu")),
    ((11, "conv"), (12, "relu")),
    ((13, "conv"), (14, "relu")),
)


class PerceptualDistance(nn.Module):
    """Shift-tolerant LPIPS between two batches of images in [0, 1]: one distance per image, 0 for
    identical images. Frozen (its tensors are buffers): gradients reach the images only."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for name, tensor in state.items():
            self.register_buffer(name.replace(".", "_"), tensor, persistent=False)

    def _tensor(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "_"))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (2 * x - 1 - self._tensor("scaling_layer.shift")) / self._tensor("scaling_layer.scale")
        features = []
        for number, layers in enumerate(TRUNK, 1):
            for index, kind in layers:
                x = self._layer(x, f"net.slice{number}.{index}", kind)
            features.append(x)
        return features

    def _layer(self, x: torch.Tensor, name: str, kind: str) -> torch.Tensor:
        if kind == "relu":
            return F.relu(x)
        if kind == "pool":
            return F.max_pool2d(x, 3, stride=1)
        if kind == "blur":  # anti-aliased stride 2: a binomial blur after reflect padding
            padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
            return F.conv2d(padded, self._tensor(f"{name}.filt"), stride=2, groups=x.shape[1])
        weight = self._tensor(f"{name}.weight")
        padding = 2 if name.endswith(".0") else weight.shape[-1] // 2  # as trained: the 11×11 first layer pads 2
        return F.conv2d(x, weight, self._tensor(f"{name}.bias"), padding=padding)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        distance = torch.zeros(len(a), device=a.device)
        with torch.autocast(a.device.type, enabled=False):  # bf16 convolutions: ~15× slower on CPUs without native bf16
            pairs = zip(self._features(a.float()), self._features(b.float()), strict=True)
            for k, (fa, fb) in enumerate(pairs):
                diff = (_unit(fa) - _unit(fb)) ** 2
                distance = distance + F.conv2d(diff, self._tensor(f"lin{k}.model.1.weight")).mean((1, 2, 3))
        return distance


def _unit(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return features / (features.pow(2).sum(1, keepdim=True).sqrt() + eps)


def perceptual_distance(purpose: str = "--perceptual") -> PerceptualDistance:
    """The distance with the installed wheel's weights; MissingExtra names the extra if absent."""
    package = require("stlpips_pytorch", "train", purpose)
    path = Path(package.__file__).parent / WEIGHTS
    return PerceptualDistance(torch.load(path, map_location="cpu", weights_only=True))
