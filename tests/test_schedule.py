"""The learning-rate schedule against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from simclr.schedule import LRSchedule, batch_scale, lr_factor


def test_warmup_is_linear_and_never_zero():
    assert [lr_factor(s, 100, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_decays_to_zero():
    total, warmup = 110, 10
    assert lr_factor(10, total, warmup) == pytest.approx(1.0)
    assert lr_factor(60, total, warmup) == pytest.approx(0.5)
    assert lr_factor(35, total, warmup) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_factor(110, total, warmup) == pytest.approx(0.0, abs=1e-12)
    factors = [lr_factor(s, total, warmup) for s in range(warmup, total)]
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))


def test_constant_after_warmup():
    assert lr_factor(50, 100, 10, "constant") == 1.0


def test_batch_scaling():
    assert batch_scale("none", 512) == 1.0
    assert batch_scale("linear", 512) == 2.0
    assert batch_scale("sqrt", 1024) == 32.0


def test_schedule_sets_every_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.2}])
    schedule = LRSchedule(optimizer, total_steps=10, warmup_steps=2, decay="cosine", scale=2.0)
    assert schedule.set_step(0) == pytest.approx(0.1)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 0.2])
    schedule.set_step(1)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.2, 0.4])


def test_warmup_longer_than_training_is_clamped():
    p = torch.nn.Parameter(torch.zeros(1))
    schedule = LRSchedule(torch.optim.SGD([p], lr=1.0), total_steps=4, warmup_steps=100, decay="cosine", scale=1.0)
    assert schedule.set_step(3) == pytest.approx(1.0)
