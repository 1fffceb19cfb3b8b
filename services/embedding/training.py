"""What the trainers of xmodal's own models share: reproducible runs, one learning-rate schedule, one loop.

Used by shapes/train.py and sounds/train.py; nothing here runs when the services embed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


def train_steps(model: torch.nn.Module, loss_of_next_batch: Callable[[], torch.Tensor], *, lr: float,
                weight_decay: float, warmup_steps: int, steps: int, log_every: int = 100) -> None:
    """AdamW with :func:`lr_factor`'s schedule for ``steps`` steps, printing the loss every ``log_every``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, warmup_steps=warmup_steps, steps=steps)
    )
    model.train()
    started = time.monotonic()
    for step in range(steps):
        loss = loss_of_next_batch()
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.monotonic() - started:6.1f} s", flush=True)
    model.train(False)
