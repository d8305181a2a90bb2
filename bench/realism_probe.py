"""Diagnostics behind bench/TRAINING.md's session-11 realism section (none of them chooses anything).

python bench/realism_probe.py disc
    150 discriminator-only steps (batch 64, Adam 2e-4) on `cifar10`'s reconstructions of
    CIFAR-10 training images against the originals, batch norm and spectral norm: the mean
    hinge loss of every 50 steps.
python bench/realism_probe.py fid --split val|test [RUN/last.safetensors ...]
    FID and PSNR of `cifar10`'s fidelity decoder, and of each realism checkpoint given, on
    1,000 images: the 1,000 validation images the realism runs score (seed 0; spread through
    them since 0.11.1, the first 1,000 before), or 1,000
    evenly spaced test images (the JPEG copy is sorted by class).
python bench/realism_probe.py samples --model cifar10-w64-r
    Where a `train --sample-adv` run starts: a model's realism decoder scored as that run's log
    scores each epoch, val_fid (its reconstructions of 1,000 validation images) and
    val_sample_fid (1,000 "cov" samples, seed 0, from the copula of the other training images'
    codes, against the same 1,000 images) (session 35).
python bench/realism_probe.py sharpen --model celeba-r3 --dataset celeba --data-dir ../shared/datasets
    Does an unsharp mask (Pillow's, radius R, strength P %) lower a realism decoder's FID? FID
    and PSNR of its reconstructions of 1,000 validation images (the split its card
    names: --val-size), plain and sharpened at a few settings (session 31).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from lbaecodec import zoo
from lbaecodec.architecture import DISC_NORMS
from lbaecodec.images import to_float
from lbaecodec.lab import adversarial
from lbaecodec.lab.checkpoint import load_checkpoint
from lbaecodec.lab.metrics import quality
from lbaecodec.lab.train import copula_of, decode_samples, reconstruct, validation_fid_probe
from lbaecodec.lab.trainset import load_training_data, split_validation

DATA = "../shared/datasets/cifar10-jpeg75.npz"


def disc_probe(model: zoo.Model, images: np.ndarray, steps: int = 150) -> None:
    rng = np.random.default_rng(0)
    for norm in DISC_NORMS:
        torch.manual_seed(0)
        disc = adversarial.PatchDiscriminator(3, 32, norm)
        opt = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.9))
        losses = []
        for step in range(steps):
            x = to_float(images[rng.integers(0, len(images), 64)])
            with torch.no_grad():
                fake = torch.sigmoid(model.net.reconstruct(x))
            loss = adversarial.hinge_d_loss(disc(x), disc(fake))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if (step + 1) % 50 == 0:
                print(f"{norm}: steps {step - 48}-{step + 1}, mean hinge loss {np.mean(losses[-50:]):.3f}", flush=True)


def fid_probe(model: zoo.Model, split: str, checkpoints: list[str]) -> None:
    data = load_training_data("cifar10", DATA, model.arch)
    if split == "val":
        images = split_validation(data.train, data.labels, 5000)[2][:1000]
    else:
        images = data.test[np.linspace(0, len(data.test) - 1, 1000).astype(int)]
    probe = validation_fid_probe(images, 1000)
    nets = [("fidelity (cifar10)", model.net)] + [(c, _checkpoint_net(c)) for c in checkpoints]
    for label, net in nets:
        recs = reconstruct(net, probe.images)
        print(f"{label}: {split} FID {probe.score(recs)}, PSNR {quality.psnr(probe.images, recs):.2f} dB", flush=True)


def sharpen_probe(model: zoo.Model, dataset: str, data_dir: str, val_size: int) -> None:
    data = load_training_data(dataset, data_dir, model.arch)
    probe = validation_fid_probe(split_validation(data.train, data.labels, val_size)[2], 1000)
    recs = reconstruct(model.with_decoder("realism"), probe.images)
    for radius, percent in [(0, 0), (1, 50), (1, 100), (1, 150), (2, 50)]:
        mask = ImageFilter.UnsharpMask(radius, percent, threshold=0)
        sharp = np.stack([np.asarray(Image.fromarray(r).filter(mask)) for r in recs]) if percent else recs
        psnr = quality.psnr(probe.images, sharp)
        print(f"unsharp radius {radius}, {percent} %: FID {probe.score(sharp)}, PSNR {psnr:.2f} dB", flush=True)


def samples_probe(model: zoo.Model) -> None:
    data = load_training_data("cifar10", DATA, model.arch)
    fit_images, _, val_images = split_validation(data.train, data.labels, 5000)
    probe = validation_fid_probe(val_images, 1000)
    net = model.net.with_decoder(model.realism)
    sampler = copula_of(net, fit_images, seed=0)
    val_fid, sample_fid = probe.score(reconstruct(net, probe.images)), probe.score(decode_samples(net, sampler, 1000))
    print(f"{model.id} realism decoder: val_fid {val_fid}, val_sample_fid {sample_fid}", flush=True)


def _checkpoint_net(path: str) -> torch.nn.Module:
    """The network of a run's checkpoint file (best.safetensors, last.safetensors, …)."""
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".safetensors", ".json"):
            shutil.copy(Path(path).with_suffix(suffix), Path(folder) / f"last{suffix}")
        return load_checkpoint(Path(folder)).model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="probe", required=True)
    sub.add_parser("disc")
    fid = sub.add_parser("fid")
    fid.add_argument("--split", choices=["val", "test"], required=True)
    fid.add_argument("checkpoints", nargs="*")
    sharpen = sub.add_parser("sharpen")
    sharpen.add_argument("--model", required=True)
    sharpen.add_argument("--dataset", required=True)
    sharpen.add_argument("--data-dir", required=True)
    sharpen.add_argument("--val-size", type=int, default=1800)
    samples = sub.add_parser("samples")
    samples.add_argument("--model", default="cifar10-w64-r")
    a = p.parse_args()
    if a.probe == "samples":
        return samples_probe(zoo.load_model(a.model, "cpu"))
    if a.probe == "sharpen":
        return sharpen_probe(zoo.load_named(a.model, "cpu"), a.dataset, a.data_dir, a.val_size)
    model = zoo.load_model("cifar10", "cpu")
    if a.probe == "disc":
        disc_probe(model, np.load(DATA)["x_train"])
    else:
        fid_probe(model, a.split, a.checkpoints)


if __name__ == "__main__":
    main()
