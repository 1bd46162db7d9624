"""Compatibility name for the synchronized BatchNorm used by the released SSA-GAN generator.

The original shipped a vendored multi-GPU BatchNorm for ``DataParallel``. Its state dict is exactly
that of ``nn.BatchNorm2d``, and on one device (or in eval mode) it computes plain batch norm, so here
the class is a plain ``nn.BatchNorm2d`` subclass: released checkpoints load unchanged, and for
multi-GPU training ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` turns every instance into
PyTorch's own ``SyncBatchNorm`` (global batch statistics under DDP, as the original had under DP).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SynchronizedBatchNorm2d", "convert_sync_batchnorm"]


class SynchronizedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` under the name the released checkpoints were trained with."""


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Replace every BatchNorm of ``module`` with ``torch.nn.SyncBatchNorm`` (state dict unchanged)."""
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
