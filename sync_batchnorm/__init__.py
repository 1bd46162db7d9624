"""Synchronized BatchNorm: the released compatibility name, and a SyncBatchNorm that also works on CPU.

The original shipped a vendored multi-GPU BatchNorm for ``DataParallel``. Its state dict is exactly
that of ``nn.BatchNorm2d``, and on one device (or in eval mode) it computes plain batch norm, so
``SynchronizedBatchNorm2d`` is a plain ``nn.BatchNorm2d`` subclass: released checkpoints load unchanged.

For multi-process training (DDP, one process per device) ``convert_sync_batchnorm`` swaps every
BatchNorm for ``SyncBatchNorm`` below, so batch statistics are taken over the global batch as the
original's were under ``DataParallel``. ``SyncBatchNorm`` is ``torch.nn.SyncBatchNorm`` (PyTorch's
kernels on GPUs) plus a CPU path: PyTorch refuses CPU inputs once a process group exists, and the
gloo/CPU runs (tests, debugging without GPUs) need the same global statistics. The CPU path sums
per-channel ``sum(x)``, ``sum(x^2)`` (in float64) and the element count over all ranks with one
differentiable all-reduce, so its output, running statistics and gradient are those of BatchNorm over
the concatenated batch.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["SynchronizedBatchNorm2d", "SyncBatchNorm", "convert_sync_batchnorm"]


class SynchronizedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` under the name the released checkpoints were trained with."""


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward is again a sum over ranks (d(sum_r L_r)/dx needs every rank's L)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _AllReduceSum.apply(grad, ctx.group), None


class SyncBatchNorm(nn.SyncBatchNorm):
    """``torch.nn.SyncBatchNorm`` that also synchronizes CPU inputs (gloo); same state dict as BatchNorm."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        group = self.process_group or (dist.group.WORLD if dist.is_available() and dist.is_initialized()
                                       else None)
        if (input.device.type != "cpu" or not self.training or group is None
                or dist.get_world_size(group) == 1):
            return super().forward(input)
        return self._cpu_sync_forward(input, group)

    def _cpu_sync_forward(self, x: torch.Tensor, group) -> torch.Tensor:
        self._check_input_dim(x)
        self._check_non_zero_input_channels(x)
        c = x.size(1)
        dims = [0] + list(range(2, x.dim()))
        # float64 sums: the variance E[x^2] - E[x]^2 cancels badly in float32 when |mean| >> std.
        xd = x.double()
        count = torch.full((1,), x.numel() // c, dtype=torch.float64, device=x.device)
        total = _AllReduceSum.apply(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]), group)
        n = total[-1]
        mean64 = total[:c] / n
        var64 = (total[c:2 * c] / n - mean64 * mean64).clamp_min(0)  # biased: what BN normalises with
        work = torch.promote_types(x.dtype, torch.float32)  # float32 for half inputs, float64 kept
        mean, var = mean64.to(work), var64.to(work)

        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            with torch.no_grad():
                unbiased = (var64 * (n / (n - 1).clamp_min(1))).to(work)
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)

        shape = [1, c] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        return (x.to(work) * scale.view(shape) + shift.view(shape)).to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, process_group: Optional[object] = None) -> nn.Module:
    """Replace every BatchNorm in ``module`` (any ``_BatchNorm``, affine or not) by ``SyncBatchNorm``.

    Parameters and buffers are moved over as they are (same tensors), so the state dict, its keys and
    the device are unchanged. Modules are replaced in place; the return value is ``module`` itself
    unless ``module`` is a BatchNorm (then the new one).
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, process_group))
    return module
