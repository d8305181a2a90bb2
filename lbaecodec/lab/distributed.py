"""Training on several processes: torch.distributed, started by torchrun (no launcher of ours).

    torchrun --standalone --nproc_per_node 2 -m lbaecodec train ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process as
before. Gloo on CPU, NCCL on CUDA (one GPU per process). ``--batch`` stays the global batch: each
rank takes every WORLD_SIZE-th image of each global batch of the shared shuffle, so the ranks
together see exactly the batches one process would, and a run resumes with any number of ranks.
BatchNorm statistics are synchronised across ranks (torch's SyncBatchNorm on CUDA; on CPU, where
it does not run, :class:`CpuSyncBatchNorm`). Rank 0 alone evaluates, logs, checkpoints and exports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def join(device: torch.device) -> World:
    """This process's place among torchrun's processes (joining their group), or a world of one."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def leave(world: World) -> None:
    """Leave the group once every rank is done with it. A rank that exits with the group still
    up can abort (SIGABRT) while Python shuts down: gloo's threads still hold tensors then."""
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun each process drives the GPU of its local rank."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, summed over the ranks
    with a differentiable all-reduce (torch's SyncBatchNorm runs on GPUs only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        count = x.new_tensor([x.numel() / x.size(1)])
        totals = dist_nn.all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        channels, n = x.size(1), totals[-1]
        mean = totals[:channels] / n
        var = totals[channels : 2 * channels] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm synchronised across ranks; the parameters and buffers are
    the same objects, so optimisers and checkpoints see no difference."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            synced = CpuSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine)
            synced.weight, synced.bias = child.weight, child.bias
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
            synced.train(child.training)
            setattr(model, name, synced)
        else:
            sync_batchnorm(child, device)
    return model


def average_gradients(parameters, world: World) -> None:
    """Mean of each gradient over the ranks (what DDP does, for steps that do not fit its
    one-forward-one-backward hooks: the realism stage's discriminator and adaptive weight)."""
    if world.size == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world.size)


def from_main(value, world: World):
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def total(value: float, world: World) -> float:
    """The sum of ``value`` over the ranks (CPU seconds of an epoch)."""
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())
