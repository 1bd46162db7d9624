"""Inception Score with a classifier of the user's choice (e.g. an Inception-v3 fine-tuned on CUB).

The score itself is ``stats.inception_score`` on this classifier's logits instead of the
ImageNet Inception's.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from miscc.errors import SSAGANError
from miscc.metrics.sources import ImageSource, progress

CLASSIFIER_INPUT = "bilinear 299x299, [-1, 1]"


class ClassifierIS(nn.Module):
    """An Inception-v3 classifier given as a torchvision-layout state dict (e.g. fine-tuned on CUB).

    uint8 images -> bilinear 299x299 -> [-1, 1] (the TF-slim input convention of StackGAN's CUB
    model) -> class logits. The number of classes is read from ``fc.weight``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        from torchvision.models import Inception3

        from miscc.run.checkpoint import load_file, load_into

        state = load_file(path, what="IS classifier")
        if not isinstance(state, dict) or "fc.weight" not in state:
            raise SSAGANError(f"{path} is not an Inception-v3 state dict (torchvision layout, with fc.weight).")
        self.path, self.classes = str(path), int(state["fc.weight"].shape[0])
        self.net = Inception3(num_classes=self.classes, init_weights=False,
                              aux_logits=any(k.startswith("AuxLogits.") for k in state))
        load_into(self.net, state, source=str(path))
        self.net.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        return self.net(x / 127.5 - 1.0)


@torch.no_grad()
def classifier_logits(images: ImageSource, model: ClassifierIS, *, batch_size: int = 50,
                      device: str | torch.device = "cpu", workers: int = 0) -> np.ndarray:
    device = torch.device(device)
    model = model.to(device)
    return np.concatenate([model(batch.to(device)).double().cpu().numpy()
                           for batch in progress(images, batch_size, device, workers, "classifier")])
