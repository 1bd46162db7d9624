"""The Inception-v3 of IS and FID: weight resolution, the network, and feature extraction.

The network is torch-fidelity's TF-ported Inception-v3 (not re-implemented here), the network of
the original IS.py and of TTUR's FID; weights are never downloaded, and a wrong file is refused.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from miscc.errors import SSAGANError
from miscc.metrics.sources import ImageSource, progress
from miscc.metrics.stats import RunningMoments

# torch-fidelity's conversion of TF's inception-2015-12-05 graph (the network of the original
# IS.py and of TTUR's FID). The hash fragment in the name is the start of the file's sha256.
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         + INCEPTION_WEIGHTS_FILE)
INCEPTION_SHA256_PREFIX = "6726825d"
RANDOM_WEIGHTS = "random"
FEATURE_DIM = 2048
LOGITS_DIM = 1008


def default_weights_location() -> Path:
    """Where torch-fidelity itself would download the weights (the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def resolve_inception_weights(weights: Optional[str]) -> str:
    """``weights`` if given (a path, or ``random`` for tests), else the hub-cache file, else an error."""
    if weights == RANDOM_WEIGHTS:
        return weights
    howto = (f"IS and FID need torch-fidelity's TF-ported Inception weights {INCEPTION_WEIGHTS_FILE} "
             f"(about 96 MB). Download {INCEPTION_WEIGHTS_URL} on a machine with internet, then either "
             f"put it at {default_weights_location()} or pass --weights PATH (config key "
             "EVAL.INCEPTION_WEIGHTS). '--weights random' exists for tests only; its numbers mean nothing.")
    if weights:
        if not Path(weights).is_file():
            raise SSAGANError(f"Inception weights file {weights} does not exist. {howto}")
        return str(weights)
    if default_weights_location().is_file():
        return str(default_weights_location())
    raise SSAGANError(f"no Inception weights found. {howto}")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fidelity_inception() -> nn.Module:
    """torch-fidelity's Inception-v3 with its own weight loading skipped.

    Its constructor insists on loading weights (downloading when given no path, and unpickling with
    weights_only=False); here weights are loaded afterwards with weights_only=True and a strict key
    check, or replaced by a seeded random init for tests.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return _Unloaded("inception-v3-compat", ["2048", "logits_unbiased"],
                     feature_extractor_weights_path=empty)


def _random_init(net: nn.Module, seed: int = 0) -> None:
    # PyTorch's default init makes the 2048-d pool features of this deep network ~1e-8 (every layer
    # shrinks the signal); He init keeps them O(1) so that tests see non-degenerate numbers.
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def library_version() -> str:
    import torch_fidelity
    return f"torch-fidelity {torch_fidelity.__version__}"


class InceptionExtractor(nn.Module):
    """The TF-compatible Inception-v3: uint8 images [B,3,H,W] -> (pool3 [B,2048], logits [B,1008]).

    The library resizes to 299x299 with TF1-exact bilinear interpolation and scales by (x-128)/128;
    the logits are the 1008-way logits without the fc bias ("logits_unbiased"), as TF's IS used them.
    """

    def __init__(self, weights: Optional[str] = None) -> None:
        super().__init__()
        self.weights = resolve_inception_weights(weights)
        self.net = _fidelity_inception()
        if self.weights == RANDOM_WEIGHTS:
            _random_init(self.net)
            self.sha256 = RANDOM_WEIGHTS
        else:
            try:
                state = torch.load(self.weights, map_location="cpu", weights_only=True)
            except Exception as e:
                raise SSAGANError(f"Inception weights {self.weights} could not be read "
                                  f"({type(e).__name__}: {e}).") from e
            expected = set(self.net.state_dict())
            got = set(state) if isinstance(state, dict) else set()
            if got != expected:
                raise SSAGANError(
                    f"{self.weights} is not torch-fidelity's {INCEPTION_WEIGHTS_FILE}: "
                    f"{len(expected - got)} keys missing (e.g. {sorted(expected - got)[:2]}), "
                    f"{len(got - expected)} unexpected (e.g. {sorted(got - expected)[:2]}).")
            nn.Module.load_state_dict(self.net, state, strict=True)
            self.sha256 = sha256_file(self.weights)
            if not self.sha256.startswith(INCEPTION_SHA256_PREFIX):
                warnings.warn(f"{self.weights} has sha256 {self.sha256[:16]}..., not the "
                              f"{INCEPTION_SHA256_PREFIX}... of {INCEPTION_WEIGHTS_FILE}: its numbers are "
                              "not comparable with published ones.", stacklevel=2)
        self.net.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(images)

    def train(self, mode: bool = True) -> "InceptionExtractor":
        # Always eval: a training loop calling .train() on its modules must not switch BN to batch stats.
        return super().train(False)

    def protocol(self) -> dict:
        return {"weights": os.path.basename(self.weights), "weights_path": self.weights,
                "weights_sha256": self.sha256, "library": library_version(),
                "resize": "TF1-compatible bilinear to 299x299 inside torch-fidelity, then (x-128)/128",
                "fid_features": "pool3, 2048-d", "is_logits": "logits_unbiased, 1008-way"}



@dataclass
class Features:
    """What IS and FID need of a set of images: running pool3 moments and (for IS) the logits."""
    moments: RunningMoments
    logits: Optional[np.ndarray]

    @property
    def count(self) -> int:
        return self.moments.count



@torch.no_grad()
def extract_features(images: ImageSource, model: InceptionExtractor, *, batch_size: int = 50,
                     device: str | torch.device = "cpu", workers: int = 0, keep_logits: bool = True,
                     desc: str = "Inception") -> Features:
    """Pool3 moments (and the logits if asked) of every image, batch by batch."""
    device = torch.device(device)
    model = model.to(device)
    moments, logits = RunningMoments(), []
    for batch in progress(images, batch_size, device, workers, desc):
        pool, logit = model(batch.to(device, non_blocking=True))
        moments.update(pool.double().cpu())
        if keep_logits:
            logits.append(logit.cpu().numpy())
    return Features(moments, np.concatenate(logits) if keep_logits else None)
