"""Process-group facts in one place: everything else asks ``is_main()`` instead of checking ranks.

Multi-process training is launched by ``torchrun`` (one process per GPU, or several CPU processes
with gloo); ``init_distributed`` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT) and returns the device of this process. Without torchrun every helper here is a
no-op and the code runs exactly as a single process. docs/SCALING.md explains the set-up.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_dist() else 0


def is_main() -> bool:
    """Only the main process writes logs, checkpoints, samples and progress bars."""
    return rank() == 0


def bar_disabled() -> Optional[bool]:
    """tqdm's ``disable`` for this process: bars on the main process only (None lets tqdm hide them
    when the output is not a terminal)."""
    return None if is_main() else True


def launched_world_size() -> int:
    """Processes torchrun started for this job (1 without torchrun), known before any group exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def pick_device(cuda: bool, gpu_id: int = 0) -> torch.device:
    """cuda:LOCAL_RANK under torchrun, cuda:gpu_id in one process, the CPU without (usable) CUDA."""
    if cuda and torch.cuda.is_available():
        return torch.device("cuda", local_rank() if is_dist() else gpu_id)
    return torch.device("cpu")


def init_distributed(cuda: bool = True, gpu_id: int = 0) -> torch.device:
    """Join torchrun's process group (nccl on GPUs, gloo on CPUs) if it started several processes.

    Returns this process's device. A single process (plain ``python main.py``) joins nothing.
    """
    use_cuda = cuda and torch.cuda.is_available()
    if launched_world_size() > 1 and not is_dist():
        if use_cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = pick_device(cuda, gpu_id)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


class DistributedDataParallel(torch.nn.parallel.DistributedDataParallel):
    """DDP that also accepts CPU modules holding our ``sync_batchnorm.SyncBatchNorm``.

    PyTorch's DDP refuses any SyncBatchNorm in a CPU module because PyTorch's own has no CPU kernel;
    ours has a CPU path (gloo), so the refusal is kept for GPU modules only.
    """

    def _passing_sync_batchnorm_handle(self, module: nn.Module) -> None:
        if self.device_type != "cpu":
            super()._passing_sync_batchnorm_handle(module)


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has prepared a folder the others write into)."""
    if is_dist():
        dist.barrier()


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (modules that DDP does not wrap)."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor, src=0)


def all_reduce_grads(params: Iterable[nn.Parameter]) -> None:
    """Average ``.grad`` over ranks with one flattened all-reduce (StyleGAN2-ADA's approach).

    Used instead of DDP for the discriminator and the fine-tuned encoders: D's MA-GP step needs a
    double backward (``autograd.grad(create_graph=True)``) and D runs several forwards per backward,
    and the image encoder runs twice per iteration; DDP's gradient hooks assume one forward and one
    plain backward. Parameters without a gradient (unused in this backward, the same on every rank
    because every rank runs the same graph) are left without one, so Adam skips them as it would in
    one process.
    """
    if world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest ``value`` any rank holds (e.g. a padded length every rank must agree on)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_gather_batch(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order (the global batch).

    Only this rank's own part keeps its autograd history. A loss computed on the result is the same
    on every rank; backward then gives each rank the gradient through its own samples, and the sum
    of those over ranks is the whole-batch gradient: back-propagate ``loss * world_size()`` and
    average with ``all_reduce_grads``. The shape must be the same on every rank.
    """
    if world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[rank()] = tensor
    return torch.cat(parts)


def all_gather_captions(words_emb: torch.Tensor, sent_emb: torch.Tensor, cap_lens: torch.Tensor,
                        class_ids) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """The global batch's text side for the DAMSM losses: word features (B x D x T, padded to the
    longest caption of any rank; the losses mask by ``cap_lens``), sentence features, lengths and
    class ids (numpy), each in rank order as ``all_gather_batch`` concatenates the image side."""
    if world_size() == 1:
        return words_emb, sent_emb, cap_lens, class_ids
    longest = max_over_ranks(words_emb.size(2), words_emb.device)
    words_emb = torch.nn.functional.pad(words_emb, (0, longest - words_emb.size(2)))
    ids = torch.as_tensor(np.asarray(class_ids), device=words_emb.device)
    return (all_gather_batch(words_emb), all_gather_batch(sent_emb), all_gather_batch(cap_lens),
            all_gather_batch(ids).cpu().numpy())


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average a dict of scalar tensors over ranks (one all-reduce), e.g. epoch loss sums for logging."""
    if world_size() == 1 or not values:
        return values
    keys = list(values)  # same insertion order on every rank: the same code built the dict
    tensors = [torch.as_tensor(values[k]) for k in keys]
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    stacked = torch.stack([t.to(dtype) for t in tensors])
    dist.all_reduce(stacked)
    return dict(zip(keys, stacked / world_size()))
