"""Mixed precision of the GAN step (TRAIN.AMP): autocast for the forwards, and the discriminator
passes of one iteration at the configured precision (the MA-GP pass in fp32 under fp16)."""
from __future__ import annotations

from typing import Optional

import torch


def autocast(device_type: str, amp_dtype: Optional[torch.dtype]) -> torch.autocast:
    """Forwards run under autocast when TRAIN.AMP is set and hand back fp32 tensors, so that every loss
    is computed in fp32; with AMP off ``.float()`` returns the tensor itself (bit-identical path)."""
    return torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None)


class DiscriminatorPasses:
    """The discriminator forwards of one iteration at the configured precision.

    ``trunk`` is ``netD`` itself or its compiled version (used by the hinge passes only).
    """

    def __init__(self, netD: torch.nn.Module, trunk: torch.nn.Module, device_type: str,
                 amp_dtype: Optional[torch.dtype]):
        self.netD, self.trunk, self.device_type, self.amp_dtype = netD, trunk, device_type, amp_dtype

    def features(self, imgs: torch.Tensor) -> torch.Tensor:
        with autocast(self.device_type, self.amp_dtype):
            return self.trunk(imgs)

    def cond(self, features: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        with autocast(self.device_type, self.amp_dtype):
            return self.netD.COND_DNET(features, sent).float()

    def logits(self, imgs: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        return self.cond(self.features(imgs), sent)

    def gp_logits(self, imgs: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        """D logits of the MA-GP pass: eager trunk (compiled graphs have no double backward), in fp32
        under fp16 AMP and in bf16 under bf16 AMP.

        fp16 input gradients underflow unless the logits are loss-scaled, and a scaled penalty turns
        inf on every step where the scale overflows (skipped step, inf in the logs); bf16 has fp32's
        range and needs no scale.
        """
        bf16 = self.amp_dtype == torch.bfloat16
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=bf16):
            return self.netD.COND_DNET(self.netD(imgs), sent).float()
