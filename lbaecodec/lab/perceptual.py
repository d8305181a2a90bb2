"""A perceptual distance for training losses: shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022)
on its AlexNet or VGG-16 trunk, with the weights that the ``stlpips-pytorch`` wheel ships.

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

from ..architecture import PERCEPTUAL_NETS
from ..errors import require


def _convs(*indices: int) -> tuple:
    """3×3 convolutions at these module indices, each followed by its ReLU."""
    return tuple(layer for i in indices for layer in ((i, "conv"), (i + 1, "relu")))


# each trunk's five slices, each ending in a feature map that is compared: (module index, kind) in order;
# "pool" is a stride-1 max pool, "blur" an anti-aliased stride 2 (a binomial blur after reflect padding)
TRUNKS = {
    "alex": (
        ((0, "conv"), (1, "blur"), (2, "relu")),
        ((3, "pool"), (4, "blur"), *_convs(5)),
        ((7, "pool"), (8, "blur"), *_convs(9)),
        _convs(11),
        _convs(13),
    ),
    "vgg": (
        _convs(0, 2),
        ((4, "pool"), (5, "blur"), *_convs(6, 8)),
        ((10, "pool"), (11, "blur"), *_convs(12, 14, 16)),
        ((18, "pool"), (19, "blur"), *_convs(20, 22, 24)),
        ((26, "pool"), (27, "blur"), *_convs(28, 30, 32)),
    ),
}
POOL = {"alex": 3, "vgg": 2}  # the max pools' kernel


class PerceptualDistance(nn.Module):
    """Shift-tolerant LPIPS between two batches of images in [0, 1]: one distance per image, 0 for
    identical images. Frozen (its tensors are buffers): gradients reach the images only."""

    def __init__(self, state: dict[str, torch.Tensor], net: str = "alex") -> None:
        super().__init__()
        self.net = net
        for name, tensor in state.items():
            self.register_buffer(name.replace(".", "_"), tensor, persistent=False)

    def _tensor(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "_"))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (2 * x - 1 - self._tensor("scaling_layer.shift")) / self._tensor("scaling_layer.scale")
        features = []
        for number, layers in enumerate(TRUNKS[self.net], 1):
            for index, kind in layers:
                x = self._layer(x, f"net.slice{number}.{index}", kind)
            features.append(x)
        return features

    def _layer(self, x: torch.Tensor, name: str, kind: str) -> torch.Tensor:
        if kind == "relu":
            return F.relu(x)
        if kind == "pool":
            return F.max_pool2d(x, POOL[self.net], stride=1)
        if kind == "blur":
            padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
            return F.conv2d(padded, self._tensor(f"{name}.filt"), stride=2, groups=x.shape[1])
        weight = self._tensor(f"{name}.weight")
        padding = weight.shape[-1] // 2 if weight.shape[-1] < 11 else 2  # as trained: AlexNet's 11×11 layer pads 2
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


def weights_file(net: str) -> Path:
    """The installed wheel's weights of this trunk; MissingExtra names the extra if the wheel is absent."""
    if net not in PERCEPTUAL_NETS:
        raise ValueError(f"perceptual net {net!r}: choose from {', '.join(PERCEPTUAL_NETS)}")
    package = require("stlpips_pytorch", "train", "--perceptual")
    return Path(package.__file__).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"


def perceptual_distance(net: str = "alex") -> PerceptualDistance:
    """The distance on this trunk with the installed wheel's weights."""
    return PerceptualDistance(torch.load(weights_file(net), map_location="cpu", weights_only=True), net)
