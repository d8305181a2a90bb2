"""Training throughput (images/s) of the LBAE network at several widths on this CPU.

Usage: python bench/train_throughput.py [--widths 16,24,32,64] [--batch 128] [--steps 5]
One warm-up step, then the mean over --steps Adam steps of MSE training on random images.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from lbaecodec.architecture import PRESETS
from lbaecodec.lab.steps import loss_fn
from lbaecodec.network import LBAE


def throughput(width: int, batch: int, steps: int, channels_last: bool, preset: str) -> float:
    arch = replace(PRESETS[preset], width=width)
    net = LBAE(arch)
    x = torch.rand(batch, arch.channels, arch.size, arch.size)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        logits, _ = net(x)
        loss = loss_fn(arch, logits, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="16,24,32,64")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--preset", default="cifar10")
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, preset {a.preset}, batch {a.batch}")
    print("| width | params | img/s (channels_last) | img/s (contiguous) |\n|---|---|---|---|")
    for w in (int(v) for v in a.widths.split(",")):
        params = sum(p.numel() for p in LBAE(replace(PRESETS[a.preset], width=w)).parameters())
        cl = throughput(w, a.batch, a.steps, True, a.preset)
        plain = throughput(w, a.batch, a.steps, False, a.preset)
        print(f"| {w} | {params / 1e6:.1f} M | {cl:.0f} | {plain:.0f} |", flush=True)


if __name__ == "__main__":
    main()
