"""What the trainers of xmodal's own models share: reproducible runs and one learning-rate schedule.

Used by shapes/train.py and sounds/train.py; nothing here runs when the services embed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seeded RNGs, a fixed thread count and deterministic kernels, restored afterwards."""
    was_deterministic, was_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(was_threads)


def lr_factor(step: int, *, warmup_steps: int, steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine decay to 0 at ``steps``.

    >>> [round(lr_factor(s, warmup_steps=2, steps=6), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    # torch's float32 cosine, not math.cos: the shipped shapes model was trained with it, and its weights are
    # reproducible only with the very same factors.
    return 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())
