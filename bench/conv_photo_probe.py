"""Probe for issue 17: a fully convolutional LBAE for photos, with no tiles at all.

    python bench/conv_photo_probe.py --minutes 45 --out bench/results/conv-photo-probe

Today's photo models code 32×32 tiles with a fixed 600 bits each (BD-rate ~+250 % against
WebP). This probe asks whether dropping the tiles pays, before any codec work is built on it:
LBAE's own down/up paths (``network.down_path`` / ``up_path``) without the linear bottleneck,
so an image of any size maps to a ±1 bit map of ``--latent`` channels at 1/16 of its sides, and
a checkerboard context model of those bits (He et al. 2021: "anchor" positions under a learned
per-channel probability, the others under a convolution over the anchors around them; two
passes to decode, not one per position). Training minimises MSE + ``--lam`` × bits per pixel
under that model, so the encoder learns to spend bits where the photo needs them.

Trained on random crops of the training photos (``lbaecodec.lab.photos``, the same split as the
photo models), for a wall-clock budget; the curve comes from coding each held-out photo on
canvases of several scales (the quality knob's scales) and is compared with Pillow's WebP on
the same photos (BD-rate, as bench/rd_photos.py). Bits are the context model's ideal code
length, not a range-coded file (which adds well under 1 % plus a header): a probe, not a codec.
Writes results.json / results.md under --out, and the weights (safetensors) to --save if given.
On a GPU (``--device cuda --bf16``), train in chunks: ``--save`` after each, ``--init`` the next
from it (the cosine schedule restarts per chunk; the budget is wall clock).
"""

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rd_photos import QUALITIES, held_out_photos, mean_point, pillow_point
from safetensors.torch import load_file, save_file
from torch import nn

import lbaecodec
from lbaecodec import quality as knob
from lbaecodec.images import to_float, to_uint8
from lbaecodec.lab import photos
from lbaecodec.lab.metrics import quality
from lbaecodec.lab.report import save_results
from lbaecodec.lab.schedule import cosine, set_lr
from lbaecodec.network import LEAK, SignSTE, down_path, level_width, up_path

LEVELS = 4  # 1/16 of each side
STRIDE = 2**LEVELS


def checkerboard(h: int, w: int) -> torch.Tensor:
    """(1, 1, h, w) bool: True on the anchor positions, coded first."""
    return ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == 0)[None, None]


class CheckerboardPrior(nn.Module):
    """Logits of each bit of a (N, C, h, w) ±1 map: anchors from a per-channel bias, the other
    positions from a 5×5 convolution over the anchor bits around them (all channels)."""

    def __init__(self, channels: int, hidden: int = 96) -> None:
        super().__init__()
        self.anchor_logits = nn.Parameter(torch.zeros(channels))
        self.context = nn.Sequential(
            nn.Conv2d(channels, hidden, 5, padding=2),
            nn.LeakyReLU(LEAK),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(LEAK),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        anchor = checkerboard(*bits.shape[2:]).to(bits.device)
        from_context = self.context(bits * anchor)
        return torch.where(anchor, self.anchor_logits.view(1, -1, 1, 1), from_context)

    def code_length(self, bits: torch.Tensor) -> torch.Tensor:
        """Ideal code length of each map in bits, (N,)."""
        ones = (bits > 0).float()
        nats = F.binary_cross_entropy_with_logits(self(bits).float(), ones, reduction="none")
        return nats.flatten(1).sum(1) / np.log(2)


class ConvLBAE(nn.Module):
    def __init__(self, width: int, latent: int) -> None:
        super().__init__()
        arch = SimpleNamespace(channels=3, width=width)
        inner = level_width(width, LEVELS)
        self.encoder = nn.Sequential(*down_path(arch, LEVELS), nn.Conv2d(inner, latent, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, inner, 1, bias=False),
            nn.BatchNorm2d(inner),
            nn.LeakyReLU(LEAK),
            *up_path(arch, LEVELS),
        )
        self.prior = CheckerboardPrior(latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (decoded pixels in [0, 1], ideal bits per image)."""
        bits = SignSTE.apply(torch.tanh(self.encoder(x)))
        return torch.sigmoid(self.decoder(bits)), self.prior.code_length(bits)


@torch.inference_mode()
def code_photo(model: ConvLBAE, image: np.ndarray, scale: float) -> dict:
    """One photo coded on a canvas ``scale`` times its size: bits per pixel of the photo, PSNR, MS-SSIM."""
    h, w = image.shape[:2]
    canvas = np.array(knob.resample(Image.fromarray(image), (round(w * scale), round(h * scale))))
    ch, cw = canvas.shape[:2]
    x = to_float(canvas[None]).to(next(model.parameters()).device)
    x = F.pad(x, (0, -cw % STRIDE, 0, -ch % STRIDE), mode="replicate")
    bits = torch.where(model.encoder(x) >= 0, 1.0, -1.0)
    length = float(model.prior.code_length(bits)[0])
    decoded = to_uint8(torch.sigmoid(model.decoder(bits))[:, :, :ch, :cw])[0]
    back = np.asarray(knob.resample(Image.fromarray(decoded), (w, h)))
    return {
        "bpp": length / (w * h),
        "psnr": quality.psnr(image[None], back[None]),
        "ms_ssim": quality.ms_ssim(image[None], back[None]),
        "raw_bpp": bits.numel() / (w * h),
    }


def curve(model: ConvLBAE, images: list[tuple[str, np.ndarray]], scales: list[float]) -> list[dict]:
    model.eval()
    points = [{"scale": s, **mean_point([code_photo(model, img, s) for _, img in images])} for s in scales]
    model.train()
    return points


def train(model: ConvLBAE, tiles: np.ndarray, a: argparse.Namespace, val, log) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    rng = np.random.default_rng(0)
    budget, start, step = a.minutes * 60, time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < budget:
        set_lr(opt, cosine(a.lr, elapsed / budget))  # over the wall-clock budget
        batch = tiles[rng.integers(len(tiles), size=a.batch)]
        if rng.random() < 0.5:
            batch = batch[:, :, ::-1]
        x = to_float(batch).to(a.device, non_blocking=True)
        with torch.autocast(a.device.type, dtype=torch.bfloat16, enabled=a.bf16):
            decoded, bits = model(x)
        mse = F.mse_loss(decoded.float(), x)
        bpp = bits.mean() / (x.shape[2] * x.shape[3])
        loss = mse + a.lam * bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % a.eval_every == 0:
            psnr = 10 * np.log10(1 / max(float(mse.detach()), 1e-10))
            log(
                {
                    "step": step,
                    "minutes": round(elapsed / 60, 2),
                    "train_psnr": round(psnr, 2),
                    "train_bpp": round(float(bpp), 4),
                    "val": curve(model, val, [1.0])[0],
                }
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=45, help="training budget, wall clock")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--latent", type=int, default=64, help="bit channels at 1/16 resolution")
    p.add_argument("--lam", type=float, default=0.002, help="weight of bits per pixel against MSE in [0, 1]")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--crops", type=int, default=40_000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--long-side", type=int, default=512)
    p.add_argument("--out", default="bench/results/conv-photo-probe")
    p.add_argument("--save", default=None, help="write the trained weights here (safetensors)")
    p.add_argument("--init", default=None, help="continue from weights --save wrote (a chunk on a GPU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a = p.parse_args()
    a.device = torch.device(a.device)
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train_photos = photos.split_photos(photos.default_photos(), "train")
    tiles = photos.random_tiles(train_photos, a.crops, a.crop, seed=0)
    val, test = held_out_photos(None, a.long_side, "val"), held_out_photos(None, a.long_side, "test")
    model = ConvLBAE(a.width, a.latent)
    if a.init:
        model.load_state_dict(load_file(a.init))
    model = model.to(a.device)
    history = []

    def log(entry: dict) -> None:
        history.append(entry)
        print(json.dumps(entry), flush=True)

    train(model, tiles, a, val, log)
    if a.save:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.save)
    scales = sorted(knob.SCALES.values())
    webp = [
        {"quality": q, **mean_point([pillow_point(img, "WEBP", q, STRIDE) for _, img in test])}
        for q in QUALITIES["WEBP"]
    ]
    ours = curve(model, test, scales)
    bd = quality.bd_rate([(w["bpp"], w["psnr"]) for w in webp], [(o["bpp"], o["psnr"]) for o in ours])
    bd = None if bd is None or np.isnan(bd) else round(bd, 1)  # nan: the curves do not overlap
    meta = {
        "command": "python " + " ".join(sys.argv),
        "args": {**vars(a), "device": str(a.device)},
        "lbaecodec": lbaecodec.__version__,
        "train_photos": [photos.describe(p) for p in train_photos],
        "test_photos": [n for n, _ in test],
        "val_photos": [n for n, _ in val],
        "parameters": sum(t.numel() for t in model.parameters()),
    }
    lines = [
        f"Fully convolutional LBAE probe, {len(test)} test photos at {a.long_side} px"
        f" (`{meta['command']}`); ideal bits.",
        "",
        "| codec | point | bpp | PSNR | MS-SSIM |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| conv LBAE probe | scale {o['scale']} | {o['bpp']} | {o['psnr']} | {o['ms_ssim']} |" for o in ours]
    lines += [f"| WebP (Pillow) | q {w['quality']} | {w['bpp']} | {w['psnr']} | {w['ms_ssim']} |" for w in webp]
    lines.append(f"\nBD-rate of the probe against WebP on the test photos: {bd} %")
    record = {"meta": meta, "history": history, "conv": ours, "webp": webp, "bd_rate_vs_webp_pct": bd}
    save_results(out, record, "\n".join(lines) + "\n")
    print(*lines, sep="\n")


if __name__ == "__main__":
    main()
