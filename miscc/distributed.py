"""Process-group facts in one place: everything else asks ``is_main()`` instead of checking ranks."""
from __future__ import annotations

import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """Only the main process writes logs, checkpoints, samples and progress bars."""
    return rank() == 0
