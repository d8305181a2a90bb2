"""What the realism decoder is trained against: a patch discriminator and its losses.

The realism decoder reads the same ±1 codes as the fidelity decoder (the encoder is frozen) and
is trained with the reconstruction loss plus an adversarial term, as in VQGAN (Esser et al.
2021): a convolutional discriminator that scores overlapping patches, hinge losses, and an
adaptive weight that scales the adversarial gradient to the size of the reconstruction gradient
at the decoder's last layer. No pretrained network is involved: the FID that judges the result
never enters a loss.

The discriminator's layers are batch-normalised, as VQGAN's are, or spectral-normalised. A
spectral-norm discriminator is 1-Lipschitz: decoded images differ from the originals by small
high-frequency detail, so its logits for the two move apart slowly. In every realism run of
sessions 6-11 its loss stayed near chance (0.93-1.0), and pushing the decoder to fool it added
noise (CIFAR-10 validation FID 93.7 → 116-130). Against the shipped `cifar10`'s reconstructions,
150 discriminator-only steps bring the hinge loss to 0.33 with batch norm, 0.73 with spectral
(`python bench/realism_probe.py disc`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..architecture import DISC_AUGMENTS, DISC_NORMS
from ..errors import require

LEAK = 0.2
MAX_ADAPTIVE_WEIGHT = 1e4


class PatchDiscriminator(nn.Module):
    """Images in [0, 1] → a grid of real/fake logits, one per overlapping patch.

    ``depth`` stride-2 4×4 convolutions (doubling the channels from ``width``) then two 3×3 ones:
    with depth 2, on a 32×32 tile an 8×8 grid of logits whose receptive fields are 26 pixels wide
    (texture and edges, not global layout); depth 3 sees 54 pixels (on a 64×64 face: its parts).
    ``norm``: "batch" (batch norm after the inner convolutions, as VQGAN) or "spectral"."""

    def __init__(self, channels: int, width: int = 64, norm: str = "spectral", depth: int = 2) -> None:
        super().__init__()
        if norm not in DISC_NORMS:
            raise ValueError(f"discriminator norm {norm!r}; choose from {', '.join(DISC_NORMS)}")
        widths = [channels] + [width * 2**k for k in range(depth + 1)]
        sizes = [(widths[k], widths[k + 1], 4, 2) for k in range(depth)] + [(widths[-2], widths[-1], 3, 1)]
        layers: list[nn.Module] = []
        for k, (c_in, c_out, kernel, stride) in enumerate(sizes):
            inner = norm == "batch" and k > 0  # the first layer sees raw pixels (as VQGAN's)
            conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1, bias=not inner)
            layers += [spectral_norm(conv) if norm == "spectral" else conv]
            layers += [nn.BatchNorm2d(c_out)] * inner + [nn.LeakyReLU(LEAK)]
        last = nn.Conv2d(widths[-1], 1, 3, padding=1)
        self.layers = nn.Sequential(*layers, spectral_norm(last) if norm == "spectral" else last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[-1](self.features(x)[-1])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations after each inner layer (each LeakyReLU), coarsest last: the last one is
        what the logits are computed from."""
        found = []
        x = x * 2 - 1
        for layer in self.layers[:-1]:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                found.append(x)
        return found


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's multi-scale discriminator (Wang et al. 2018): one patch discriminator per scale,
    the k-th judging the image average-pooled k times (on a 64×64 face, depth 2: 26-pixel patches
    at full size, 52-pixel ones, the face's layout, at half size). Each coarser grid of logits is
    repeated up to the finest one's size and the grids are stacked as channels, so that every scale
    weighs the same in the losses' means (a coarse grid has 4× fewer patches)."""

    def __init__(self, channels: int, width: int, norm: str, depth: int, scales: int) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(channels, width, norm, depth) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grids = [disc(image) for disc, image in zip(self.scales, self._pyramid(x), strict=True)]
        size = grids[0].shape[-2:]
        return torch.cat([F.interpolate(grid, size=size, mode="nearest") for grid in grids], dim=1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f for disc, image in zip(self.scales, self._pyramid(x), strict=True) for f in disc.features(image)]

    def _pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        images = [x]
        for _ in self.scales[1:]:
            images.append(F.avg_pool2d(images[-1], 2))
        return images


Discriminator = PatchDiscriminator | MultiScaleDiscriminator


def augmenter(policy: tuple[str, ...]) -> nn.Module:
    """DiffAugment (Zhao et al. 2020): random, differentiable changes applied alike to what the
    discriminator sees of real and decoded images (each image its own draw), so that it cannot
    memorise a small training set. Policy parts as DiffAugment's: "color" (brightness, contrast,
    saturation), "translation" (up to 1/8 of the side, zero-filled), "cutout" (a square of half
    the side). Kornia does the work; an empty policy is the identity."""
    unknown = set(policy) - set(DISC_AUGMENTS)
    if unknown:
        raise ValueError(f"discriminator augmentation {sorted(unknown)}; choose from {', '.join(DISC_AUGMENTS)}")
    if not policy:
        return nn.Identity()
    K = require("kornia", "train", "--disc-augment").augmentation
    parts = {
        "color": lambda: K.ColorJiggle(brightness=0.5, contrast=0.5, saturation=1.0, p=1.0),
        "translation": lambda: K.RandomAffine(degrees=0, translate=(0.125, 0.125), p=1.0),
        "cutout": lambda: K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), p=1.0),
    }
    return nn.Sequential(*(parts[name]() for name in DISC_AUGMENTS if name in policy))


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def r1_penalty(disc: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the mean squared norm of the gradient of each real image's
    score (the mean of its patch logits, as the hinge loss weighs them) with respect to the image.
    Weighted by γ/2 in the discriminator's loss, it keeps a winning discriminator's surface smooth
    around the data, so that its gradients still tell the decoder where to go. Summing the patch
    logits instead would scale the penalty by the patch count squared (4,096 on a 32×32 tile):
    any γ then stalls the discriminator at chance, as a first CelebA run did."""
    real = real.detach().requires_grad_(True)
    scores = disc(real).float().flatten(1).mean(1)
    (grad,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def feature_matching_loss(disc: Discriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's feature matching (Wang et al. 2018): the mean absolute difference between the
    discriminator's inner activations on each original and on its own reconstruction, averaged over
    layers; a reconstruction loss in a space the discriminator learns, where MSE's blur costs more
    than pixel by pixel. Un-augmented pairs (DiffAugment draws each image's own change, which the
    pair would not share); the originals' activations carry no gradient."""
    with torch.no_grad():
        targets = disc.features(real)
    pairs = zip(disc.features(fake), targets, strict=True)
    return torch.stack([F.l1_loss(f.float(), t.float()) for f, t in pairs]).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """‖∇ rec‖ / ‖∇ adv‖ at ``last_layer`` (VQGAN's balance): the adversarial term then pulls
    as hard as the reconstruction term whatever their scales."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, MAX_ADAPTIVE_WEIGHT).detach()
