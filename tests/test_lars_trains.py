"""LARS with linear warm-up and bias/norm exclusion trains as steadily as Adam (sklearn digits, CPU).

A previous implementation was reported to make the loss oscillate without going down. Each test trains the same
small MLP (with BatchNorm, so there are norm parameters to exclude) from the same initialisation on the same
batches with LARS (default lr 1.0, η 0.001, exclusion on, 30 warm-up steps) and with Adam, and compares
30-step windowed loss averages.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import simclr

STEPS = 300
WINDOW = 30
WARMUP = 30


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one thread is fastest, and far faster than two when the cores are shared (spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32) / 16.0, torch.tensor(data.target)


def mlp(out_dim: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 128),
        torch.nn.BatchNorm1d(128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 128),
        torch.nn.BatchNorm1d(128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, out_dim),
    )


def train(
    optimizer_name: str,
    out_dim: int,
    warmup: int,
    loss_of_batch: Callable[[torch.nn.Module, torch.Generator], torch.Tensor],
    **params: float,
) -> list[float]:
    """Windowed mean losses of STEPS steps; the lr warms up linearly over ``warmup`` steps, as the engine's
    schedule does (it rescales each param group's lr from the lr the optimizer was built with)."""
    model = mlp(out_dim)
    optimizer = simclr.create("optimizer", optimizer_name, model, **params)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    warmup_factor = (lambda step: min(1.0, (step + 1) / warmup)) if warmup else (lambda step: 1.0)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for step in range(STEPS):
        for group, base_lr in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base_lr * warmup_factor(step)
        loss = loss_of_batch(model, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    windows = torch.stack(losses).view(-1, WINDOW).mean(dim=1)
    assert torch.isfinite(windows).all()
    return windows.tolist()


def assert_steady_decrease(windows: list[float]) -> None:
    """Every window is below the one before (up to 5% noise): no oscillation, no plateau far from the start."""
    for before, after in itertools.pairwise(windows):
        assert after <= 1.05 * before, windows


def test_lars_classification_loss_falls_steadily_like_adam(digits):
    x, y = digits

    def cross_entropy(model: torch.nn.Module, generator: torch.Generator) -> torch.Tensor:
        batch = torch.randint(0, len(x), (128,), generator=generator)
        return F.cross_entropy(model(x[batch]), y[batch])

    lars = train("lars", 10, WARMUP, cross_entropy, lr=1.0)
    adam = train("adam", 10, 0, cross_entropy, lr=1e-3)
    assert_steady_decrease(lars)
    assert lars[-1] < 0.5 * lars[0]
    assert lars[-1] < 0.05  # digits are separable: the loss goes (nearly) to zero
    assert lars[-1] <= 2 * adam[-1] + 0.01, (lars, adam)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, positives)


def test_lars_contrastive_loss_falls_steadily_like_adam(digits):
    x, _ = digits

    def view(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        kept = torch.rand(batch.shape, generator=generator) > 0.3  # drop 30% of the pixels, add noise
        return batch * kept + 0.1 * torch.randn(batch.shape, generator=generator)

    def contrastive(model: torch.nn.Module, generator: torch.Generator) -> torch.Tensor:
        batch = x[torch.randint(0, len(x), (128,), generator=generator)]
        return nt_xent(model(view(batch, generator)), model(view(batch, generator)))

    lars = train("lars", 64, WARMUP, contrastive, lr=1.0)
    adam = train("adam", 64, 0, contrastive, lr=1e-3)
    assert_steady_decrease(lars)
    # NT-Xent cannot approach 0 (two views of a digit are never identical), so compare the drop with Adam's.
    assert lars[0] - lars[-1] >= 0.8 * (adam[0] - adam[-1]), (lars, adam)
    assert lars[-1] <= adam[-1] + 0.05, (lars, adam)
