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

With ``--groups G`` (session 33) the bit channels form G groups coded one after another, each
group's context seeing only the groups before it (``GroupedCheckerboardPrior``), and training
keeps a random number of leading groups per image (the rest reach the decoder as zeros, as in
nested dropout): one model, G rates, and a map cut after k groups decodes — the quality knob as
progressive stages, with no tiles. ``--levels 3`` puts the bits at 1/8 of each side, so that G
groups of C/G channels reach past the 0.25 raw bits per pixel that 64 channels at 1/16 allow.

Trained on random crops of the training photos (``lbaecodec.lab.photos``, the same split as the
photo models), for a wall-clock budget; the curve comes from coding each held-out photo on
canvases of several scales (the quality knob's scales) and is compared with Pillow's WebP on
the same photos (BD-rate, as bench/rd_photos.py). Bits are the context model's ideal code
length; with ``--groups`` each group is also range-coded, decoded back and checked, and its size
reported as ``coded_bpp`` (0.1–0.3 % more in session 33). Float context networks: a probe, not a
codec. ``--minutes 0 --init W`` only evaluates the saved weights W.
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

import constriction
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rd_photos import QUALITIES, held_out_photos, mean_point, pillow_point
from safetensors.torch import load_file, save_file
from torch import nn

import lbaecodec
from lbaecodec import quality as knob
from lbaecodec.architecture import TRANSPOSE
from lbaecodec.images import to_float, to_uint8
from lbaecodec.lab import photos
from lbaecodec.lab.metrics import quality
from lbaecodec.lab.report import save_results
from lbaecodec.lab.schedule import cosine, set_lr
from lbaecodec.network import LEAK, SignSTE, down_path, level_width, up_path

LEVELS = 4  # 1/16 of each side, unless --levels says otherwise


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


def context_net(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, hidden, 5, padding=2),
        nn.LeakyReLU(LEAK),
        nn.Conv2d(hidden, hidden, 1),
        nn.LeakyReLU(LEAK),
        nn.Conv2d(hidden, cout, 1),
    )


class GroupedCheckerboardPrior(nn.Module):
    """Bits in channel groups coded one group after another, each in two checkerboard passes
    (He et al. 2021, with Minnen & Singh 2020's channel groups): a group's anchors from a
    network over the groups before it, its other positions from one over those groups and its
    own anchors. No group sees a later one, so a map cut after k groups is coded (and decoded)
    exactly as the first k groups of the whole: the groups are the quality knob's stages."""

    def __init__(self, channels: int, groups: int, hidden: int = 64) -> None:
        super().__init__()
        self.size = channels // groups
        self.first_anchor_logits = nn.Parameter(torch.zeros(self.size))
        self.anchor_nets = nn.ModuleList(context_net(g * self.size, hidden, self.size) for g in range(1, groups))
        self.other_nets = nn.ModuleList(context_net((g + 1) * self.size, hidden, self.size) for g in range(groups))

    def group_logits(self, bits: torch.Tensor, g: int, anchors: bool) -> torch.Tensor:
        """Group g's logits, (N, size, h, w): the anchor pass reads only the groups before g, the
        other pass those and g's anchors; a decoder calls it with the bits known so far."""
        before, own = bits[:, : g * self.size], bits[:, g * self.size : (g + 1) * self.size]
        if anchors and g == 0:
            return self.first_anchor_logits.view(1, -1, 1, 1).expand_as(own)
        if anchors:
            return self.anchor_nets[g - 1](before)
        anchor = checkerboard(*bits.shape[2:]).to(bits.device)
        return self.other_nets[g](torch.cat([before, own * anchor], 1))

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        anchor = checkerboard(*bits.shape[2:]).to(bits.device)
        groups = range(len(self.other_nets))
        return torch.cat(
            [torch.where(anchor, self.group_logits(bits, g, True), self.group_logits(bits, g, False)) for g in groups],
            1,
        )

    def code_length(self, bits: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
        """Ideal code length of each map in bits, (N,), counting only its first ``kept`` groups."""
        ones = (bits > 0).float()
        nats = F.binary_cross_entropy_with_logits(self(bits).float(), ones, reduction="none")
        if kept is not None:
            nats = nats * group_mask(kept, self.size, bits.shape[1])
        return nats.flatten(1).sum(1) / np.log(2)


def group_mask(kept: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """(N, C, 1, 1): 1 on the channels of each map's first ``kept`` groups."""
    group = torch.arange(channels, device=kept.device) // size
    return (group[None] < kept[:, None]).float()[:, :, None, None]


CODER_FAMILY = constriction.stream.model.Bernoulli(perfect=False)
LENGTH_BYTES = 2  # a group's stream length, in front of it in a file


def coder_probabilities(logits: torch.Tensor) -> np.ndarray:
    """P(bit = +1) for the range coder, kept 2^-16 away from 0 and 1, flattened."""
    return torch.sigmoid(logits.double()).clamp(2**-16, 1 - 2**-16).reshape(-1).cpu().numpy()


def range_code(prior: GroupedCheckerboardPrior, bits: torch.Tensor, kept: int) -> list[bytes]:
    """One map's first ``kept`` groups, (1, C, h, w) ±1, as one range-coded stream per group
    (anchors, then the other positions): a file holding streams 1..k decodes k groups."""
    anchor = checkerboard(*bits.shape[2:])[0, 0].to(bits.device)
    streams = []
    for g in range(kept):
        coder = constriction.stream.queue.RangeEncoder()
        own = bits[0, g * prior.size : (g + 1) * prior.size]
        for mask, anchors in ((anchor, True), (~anchor, False)):
            probs = coder_probabilities(prior.group_logits(bits, g, anchors)[0][:, mask])
            coder.encode((own[:, mask] > 0).reshape(-1).cpu().numpy().astype(np.int32), CODER_FAMILY, probs)
        streams.append(coder.get_compressed().astype("<u4").tobytes())
    return streams


def range_decode(prior: GroupedCheckerboardPrior, streams: list[bytes], shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of range_code: (1, C, h, w), zeros in the groups the streams do not hold."""
    device = prior.first_anchor_logits.device
    bits = torch.zeros(shape, device=device)
    anchor = checkerboard(*shape[2:])[0, 0].to(device)
    for g, data in enumerate(streams):
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, "<u4").astype(np.uint32))
        own = bits[0, g * prior.size : (g + 1) * prior.size]  # a view: decoded bits land in ``bits``
        for mask, anchors in ((anchor, True), (~anchor, False)):
            probs = coder_probabilities(prior.group_logits(bits, g, anchors)[0][:, mask])
            ones = torch.from_numpy(decoder.decode(CODER_FAMILY, probs).astype(np.float32)).to(device)
            own[:, mask] = (2 * ones - 1).view(prior.size, -1)
    return bits


class ConvLBAE(nn.Module):
    def __init__(self, width: int, latent: int, levels: int = LEVELS, groups: int = 1) -> None:
        super().__init__()
        arch = SimpleNamespace(channels=3, width=width, upsample=TRANSPOSE)
        inner = level_width(width, levels)
        self.stride, self.groups = 2**levels, groups
        self.encoder = nn.Sequential(*down_path(arch, levels), nn.Conv2d(inner, latent, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, inner, 1, bias=False),
            nn.BatchNorm2d(inner),
            nn.LeakyReLU(LEAK),
            *up_path(arch, levels),
        )
        self.prior = CheckerboardPrior(latent) if groups == 1 else GroupedCheckerboardPrior(latent, groups)

    def forward(self, x: torch.Tensor, kept: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (decoded pixels in [0, 1], ideal bits per image); with ``kept``, each
        image keeps only its first kept[i] channel groups (the rest reach the decoder as zeros)."""
        bits = SignSTE.apply(torch.tanh(self.encoder(x)))
        if kept is None:
            return torch.sigmoid(self.decoder(bits)), self.prior.code_length(bits)
        length = self.prior.code_length(bits, kept)
        return torch.sigmoid(self.decoder(bits * group_mask(kept, self.prior.size, bits.shape[1]))), length


@torch.inference_mode()
def code_photo(model: ConvLBAE, image: np.ndarray, scale: float, kept: int | None = None) -> dict:
    """One photo coded on a canvas ``scale`` times its size, keeping the first ``kept`` channel
    groups (all if None): bits per pixel of the photo, PSNR, MS-SSIM."""
    h, w = image.shape[:2]
    canvas = np.array(knob.resample(Image.fromarray(image), (round(w * scale), round(h * scale))))
    ch, cw = canvas.shape[:2]
    x = to_float(canvas[None]).to(next(model.parameters()).device)
    x = F.pad(x, (0, -cw % model.stride, 0, -ch % model.stride), mode="replicate")
    bits = torch.where(model.encoder(x) >= 0, 1.0, -1.0)
    if kept is None:
        length = float(model.prior.code_length(bits)[0])
    else:
        kept_t = torch.tensor([kept], device=x.device)
        length = float(model.prior.code_length(bits, kept_t)[0])
        bits = bits * group_mask(kept_t, model.prior.size, bits.shape[1])
        streams = range_code(model.prior, bits, kept)
        if not torch.equal(range_decode(model.prior, streams, tuple(bits.shape)), bits):
            raise RuntimeError("the range-coded groups did not decode to the encoder's bits")
        coded_bytes = sum(len(st) + LENGTH_BYTES for st in streams)
    decoded = to_uint8(torch.sigmoid(model.decoder(bits))[:, :, :ch, :cw])[0]
    back = np.asarray(knob.resample(Image.fromarray(decoded), (w, h)))
    return {
        "bpp": length / (w * h),
        "psnr": quality.psnr(image[None], back[None]),
        "ms_ssim": quality.ms_ssim(image[None], back[None]),
        "raw_bpp": bits.numel() / (w * h) if kept is None else kept * model.prior.size * bits[0, 0].numel() / (w * h),
        **({} if kept is None else {"coded_bpp": 8 * coded_bytes / (w * h)}),
    }


def curve(model: ConvLBAE, images: list[tuple[str, np.ndarray]], scales: list[float]) -> list[dict]:
    """The RD curve over canvas scales (one channel group) or over groups kept (at scale 1)."""
    model.eval()
    if model.groups == 1:
        points = [{"scale": s, **mean_point([code_photo(model, img, s) for _, img in images])} for s in scales]
    else:
        points = [
            {"scale": 1.0, "groups": k, **mean_point([code_photo(model, img, 1.0, k) for _, img in images])}
            for k in range(1, model.groups + 1)
        ]
    model.train()
    return points


def train(model: ConvLBAE, tiles: np.ndarray | None, a: argparse.Namespace, val, log) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    rng = np.random.default_rng(0)
    budget, start, step = a.minutes * 60, time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < budget:
        set_lr(opt, cosine(a.lr, elapsed / budget))  # over the wall-clock budget
        batch = tiles[rng.integers(len(tiles), size=a.batch)]
        if rng.random() < 0.5:
            batch = batch[:, :, ::-1]
        x = to_float(batch).to(a.device, non_blocking=True)
        kept = None if a.groups == 1 else torch.from_numpy(rng.integers(1, a.groups + 1, size=a.batch)).to(a.device)
        with torch.autocast(a.device.type, dtype=torch.bfloat16, enabled=a.bf16):
            decoded, bits = model(x, kept)
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
                    "val": curve(model, val, [1.0])[-1],
                }
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=45, help="training budget, wall clock")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--latent", type=int, default=64, help="bit channels at 1/2^levels of each side")
    p.add_argument("--levels", type=int, default=LEVELS, help="stride-2 levels down to the bits (4: 1/16)")
    p.add_argument(
        "--groups",
        type=int,
        default=1,
        help="channel groups, each a quality step (trained with random truncation; 1: one rate, canvas scales)",
    )
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
    # --minutes 0 only evaluates (--init): no crops to cut
    tiles = photos.random_tiles(train_photos, a.crops, a.crop, seed=0) if a.minutes > 0 else None
    val, test = held_out_photos(None, a.long_side, "val"), held_out_photos(None, a.long_side, "test")
    model = ConvLBAE(a.width, a.latent, a.levels, a.groups)
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
        {"quality": q, **mean_point([pillow_point(img, "WEBP", q, model.stride) for _, img in test])}
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
        f" (`{meta['command']}`). bpp: the context model's ideal bits (WebP: file bytes); coded bpp:"
        " the range-coded groups with their length bytes, where measured.",
        "",
        "| codec | point | bpp | coded bpp | PSNR | MS-SSIM |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| conv LBAE probe | scale {o['scale']}{f', groups {k}' if (k := o.get('groups')) else ''} | {o['bpp']}"
        f" | {o.get('coded_bpp', '')} | {o['psnr']} | {o['ms_ssim']} |"
        for o in ours
    ]
    lines += [f"| WebP (Pillow) | q {w['quality']} | {w['bpp']} | | {w['psnr']} | {w['ms_ssim']} |" for w in webp]
    verdict = f"{bd} %" if bd is not None else "none (fewer than 4 points, or the PSNR ranges do not overlap)"
    lines.append(f"\nBD-rate of the probe (ideal bits) against WebP on the test photos: {verdict}")
    record = {"meta": meta, "history": history, "conv": ours, "webp": webp, "bd_rate_vs_webp_pct": bd}
    save_results(out, record, "\n".join(lines) + "\n")
    print(*lines, sep="\n")


if __name__ == "__main__":
    main()
