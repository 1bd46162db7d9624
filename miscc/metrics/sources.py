"""Where evaluated images come from: files read by a DataLoader, or a generator run in memory.

Every network of the metrics reads its images through ``ImageSource.batches``: uint8 [B, 3, H, W],
in a fixed order, in consecutive chunks of ``batch_size`` (the last one smaller). Because both kinds
of source cut the same chunks, a network sees the same batches whether the images come from the
sampler's PNG files (lossless) or straight from the generator (through the sampler's own
``images_to_uint8``), so both give the same numbers.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator, Protocol

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from miscc.errors import SSAGANError
from miscc.sample.protocol import images_to_uint8


class ImageSource(Protocol):
    """Images in a fixed order, read in uint8 batches; may be read several times (once per network)."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, device: torch.device, workers: int = 0) -> Iterable[torch.Tensor]: ...


def batch_loader(dataset: Dataset, batch_size: int, device: torch.device, workers: int) -> DataLoader:
    """The in-order DataLoader every file-based pass uses."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=device.type == "cuda")


def progress(images: ImageSource, batch_size: int, device: torch.device, workers: int,
             desc: str) -> Iterable[torch.Tensor]:
    """``images.batches(...)`` with a progress bar (shown on terminals only)."""
    return tqdm(images.batches(batch_size, device, workers), desc=desc, unit="batch", disable=None,
                total=math.ceil(len(images) / batch_size))


class GeneratedImages:
    """Images made in memory, e.g. by the generator inside a training loop.

    ``make_batches()`` yields float tensors [B, 3, H, W] in [-1, 1] (any B, any device) in image
    order. It is called once per network that reads the images, so it must yield the same images
    on every call (fixed noise and captions); nothing but the current chunk is kept.
    """

    def __init__(self, make_batches: Callable[[], Iterable[torch.Tensor]], count: int,
                 size: tuple[int, int], description: str = "images generated in memory") -> None:
        self.make_batches = make_batches
        self.count = count
        self.size = size  # (H, W)
        self.description = description

    def __len__(self) -> int:
        return self.count

    def batches(self, batch_size: int, device: torch.device, workers: int = 0) -> Iterator[torch.Tensor]:
        pending: list[torch.Tensor] = []
        held = seen = 0
        for images in self.make_batches():
            if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != self.size:
                raise SSAGANError(f"GeneratedImages expects batches [B, 3, {self.size[0]}, {self.size[1]}] "
                                  f"in [-1, 1], got {tuple(images.shape)}.")
            pending.append(images_to_uint8(images))
            held += len(images)
            seen += len(images)
            while held >= batch_size:
                merged = torch.cat(pending)
                # Contiguous like a DataLoader batch: the memory layout can select another conv kernel.
                yield merged[:batch_size].contiguous()
                pending, held = [merged[batch_size:]], held - batch_size
        if held:
            yield torch.cat(pending).contiguous()
        if seen != self.count:
            raise SSAGANError(f"GeneratedImages was told {self.count} images but make_batches() yielded "
                              f"{seen}; give the count it really yields.")
