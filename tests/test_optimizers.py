"""Optimizer plugins: LARS against a hand computation, the torch wrappers against torch built by hand."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

import simclr
from simclr.plugins.optimizers.groups import parameter_groups
from simclr.plugins.optimizers.torch_optimizers import kernel_options
from simclr.trainer import load_optimizer_state


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with torch.no_grad():  # non-trivial norm parameters, so they are not all ones and zeros
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    return model


def random_grads(model: torch.nn.Module, seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(p.shape, generator=generator) for p in model.parameters()]


def set_grads(model: torch.nn.Module, grads: list[torch.Tensor]) -> None:
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g.clone()


def lars_reference(w, g, v, *, lr, momentum, weight_decay, eta, eps, adapt, clip):
    """One LARS step on flat lists of Python floats (float64), written from the update rule."""
    g = [gi + weight_decay * wi for gi, wi in zip(g, w, strict=True)]
    trust = 1.0
    if adapt:
        w_norm = math.sqrt(sum(x * x for x in w))
        g_norm = math.sqrt(sum(x * x for x in g))
        if w_norm > 0 and g_norm > 0:
            trust = eta * w_norm / (g_norm + eps)
        if clip:
            trust = min(trust, 1.0)
    v = [momentum * vi + lr * trust * gi for vi, gi in zip(v, g, strict=True)]
    w = [wi - vi for wi, vi in zip(w, v, strict=True)]
    return w, v, trust


def flat(t: torch.Tensor) -> list[float]:
    return t.detach().double().flatten().tolist()


def run_reference(model, grads_per_step, *, lr, momentum, weight_decay, eta, eps, exclude, clip):
    """Parameters and momentum buffers (flat float lists) after each step, and the trust ratios used; ``lr`` is
    one rate, or one per step."""
    weights = [flat(p) for p in model.parameters()]
    buffers = [[0.0] * len(w) for w in weights]
    ndims = [p.ndim for p in model.parameters()]
    rates = lr if isinstance(lr, list) else [lr] * len(grads_per_step)
    history = []
    for grads, lr in zip(grads_per_step, rates, strict=True):
        trusts = []
        for i, (g, ndim) in enumerate(zip(grads, ndims, strict=True)):
            excluded = exclude and ndim <= 1
            weights[i], buffers[i], trust = lars_reference(
                weights[i],
                flat(g),
                buffers[i],
                lr=lr,
                momentum=momentum,
                weight_decay=0.0 if excluded else weight_decay,
                eta=eta,
                eps=eps,
                adapt=not excluded,
                clip=clip,
            )
            trusts.append(trust)
        history.append(([list(w) for w in weights], [list(b) for b in buffers], trusts))
    return history


def assert_matches(optimizer, model, weights, buffers):
    for p, w, b in zip(model.parameters(), weights, buffers, strict=True):
        assert flat(p) == pytest.approx(w, rel=1e-5, abs=1e-6)
        assert flat(optimizer.state[p]["momentum_buffer"]) == pytest.approx(b, rel=1e-5, abs=1e-6)


LARS_SETTINGS = dict(lr=0.7, momentum=0.9, weight_decay=0.05, eta=0.02, eps=0.25)  # eps large enough to matter


@pytest.mark.parametrize("exclude", [True, False])
def test_lars_two_steps_match_hand_computation(exclude):
    model = tiny_model()
    steps = [random_grads(model, seed=1), random_grads(model, seed=2)]
    expected = run_reference(model, steps, exclude=exclude, clip=False, **LARS_SETTINGS)
    s = LARS_SETTINGS
    optimizer = simclr.create(
        "optimizer",
        "lars",
        model,
        lr=s["lr"],
        momentum=s["momentum"],
        weight_decay=s["weight_decay"],
        trust_coefficient=s["eta"],
        eps=s["eps"],
        exclude_bias_and_norm=exclude,
    )
    for grads, (weights, buffers, _) in zip(steps, expected, strict=True):
        set_grads(model, grads)
        optimizer.step()
        assert_matches(optimizer, model, weights, buffers)
    # The adaptation really acts: every adapted tensor's trust ratio is far from 1.
    adapted = [t for t, p in zip(expected[0][2], model.parameters(), strict=True) if not (exclude and p.ndim <= 1)]
    assert len(adapted) == (2 if exclude else 6)
    assert all(t < 0.5 for t in adapted)


def test_lars_clip_caps_the_trust_ratio_at_one():
    model = tiny_model()
    with torch.no_grad():
        model[0].weight.mul_(100.0)  # a large ‖w‖: the unclipped trust ratio of this layer exceeds 1
    settings = {**LARS_SETTINGS, "eta": 0.5}
    steps = [random_grads(model, seed=3), random_grads(model, seed=4)]
    expected = run_reference(model, steps, exclude=True, clip=True, **settings)
    unclipped = run_reference(model, steps[:1], exclude=True, clip=False, **settings)
    assert unclipped[0][2][0] > 1.0 and expected[0][2][0] == 1.0  # layer 0 is clipped
    assert unclipped[0][2][4] < 1.0  # the last layer's is not
    optimizer = simclr.create(
        "optimizer",
        "lars",
        model,
        lr=settings["lr"],
        weight_decay=settings["weight_decay"],
        trust_coefficient=settings["eta"],
        eps=settings["eps"],
        clip=True,
    )
    for grads, (weights, buffers, _) in zip(steps, expected, strict=True):
        set_grads(model, grads)
        optimizer.step()
        assert_matches(optimizer, model, weights, buffers)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def test_lars_takes_the_lr_into_the_momentum_buffer_as_the_reference_implementations_do():
    """With lr changing every step (as under the engine's schedule), the hand computation puts lr·trust·g into
    the buffer; a last step at lr 0 still moves every weight by momentum·v (torch.optim.SGD's form would not)."""
    model = tiny_model()
    rates = [0.3, 0.1, 0.5, 0.0]
    steps = [random_grads(model, seed=10 + i) for i in range(len(rates))]
    settings = {**LARS_SETTINGS, "lr": rates}
    expected = run_reference(model, steps, exclude=True, clip=False, **settings)
    optimizer = simclr.create(
        "optimizer",
        "lars",
        model,
        momentum=settings["momentum"],
        weight_decay=settings["weight_decay"],
        trust_coefficient=settings["eta"],
        eps=settings["eps"],
    )
    for lr, grads, (weights, buffers, _) in zip(rates, steps, expected, strict=True):
        before = [p.detach().clone() for p in model.parameters()]
        set_lr(optimizer, lr)
        set_grads(model, grads)
        optimizer.step()
        assert_matches(optimizer, model, weights, buffers)
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_lars_excluded_parameters_get_plain_momentum_sgd():
    """At a constant lr the excluded (1-D) parameters take exactly torch.optim.SGD's steps; the others do not."""
    model = tiny_model()
    reference_model = copy.deepcopy(model)
    lars = simclr.create("optimizer", "lars", model, lr=0.3, weight_decay=0.1)
    one_d = [p for p in reference_model.parameters() if p.ndim <= 1]
    sgd = torch.optim.SGD(one_d, lr=0.3, momentum=0.9, weight_decay=0.0)
    for step in range(3):
        grads = random_grads(model, seed=10 + step)
        set_grads(model, grads)
        set_grads(reference_model, grads)
        lars.step()
        sgd.step()
    for p, q in zip(model.parameters(), reference_model.parameters(), strict=True):
        if p.ndim <= 1:
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
        else:
            assert not torch.allclose(p, q)  # adapted and decayed: not what plain SGD would do


def test_lars_zero_norm_guard_gives_a_plain_step():
    model = tiny_model()
    with torch.no_grad():
        model[0].weight.zero_()  # ‖w‖ = 0: trust ratio 1
        model[2].weight.fill_(0.3)
    grads = random_grads(model, seed=5)
    grads[4] = torch.zeros_like(grads[4])  # ‖g‖ = 0 with weight_decay 0: trust ratio 1, a zero step
    set_grads(model, grads)
    optimizer = simclr.create("optimizer", "lars", model, lr=0.5, weight_decay=0.0)
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    torch.testing.assert_close(model[0].weight, -0.5 * grads[0])
    torch.testing.assert_close(model[2].weight, torch.full_like(model[2].weight, 0.3))


def test_lars_step_never_reads_a_tensor_value_on_the_host(monkeypatch):
    model = tiny_model()
    optimizer = simclr.create("optimizer", "lars", model, weight_decay=0.01, clip=True)
    set_grads(model, random_grads(model, seed=6))
    before = [p.detach().clone() for p in model.parameters()]

    def forbidden(*args, **kwargs):
        raise AssertionError("LARS.step read a tensor value on the host")

    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    optimizer.step()
    optimizer.step()
    monkeypatch.undo()
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_lars_resumes_from_a_weights_only_state_dict():
    grads = [random_grads(tiny_model(), seed=20 + i) for i in range(4)]
    model = tiny_model()
    optimizer = simclr.create("optimizer", "lars", model, lr=0.2)
    for g in grads:
        set_grads(model, g)
        optimizer.step()

    resumed_model = tiny_model()
    first = simclr.create("optimizer", "lars", resumed_model, lr=0.2)
    for g in grads[:2]:
        set_grads(resumed_model, g)
        first.step()
    buffer = io.BytesIO()
    torch.save({"model": resumed_model.state_dict(), "optimizer": first.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed_model = tiny_model(seed=99)
    resumed_model.load_state_dict(state["model"])
    second = simclr.create("optimizer", "lars", resumed_model, lr=0.2)
    second.load_state_dict(state["optimizer"])
    for g in grads[2:]:
        set_grads(resumed_model, g)
        second.step()
    for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_lars_resumes_a_state_saved_before_lr_entered_the_momentum_buffer():
    """A state dict of the earlier form (buffers of trust·g, no lr_in_momentum in its groups) continues as the
    uninterrupted run does: its buffers are scaled by the lr they were last used with."""
    rates = [0.2, 0.4, 0.4, 0.1]
    grads = [random_grads(tiny_model(), seed=30 + i) for i in range(len(rates))]
    model = tiny_model()
    optimizer = simclr.create("optimizer", "lars", model)
    for lr, g in zip(rates, grads, strict=True):
        set_lr(optimizer, lr)
        set_grads(model, g)
        optimizer.step()

    resumed_model = tiny_model()
    first = simclr.create("optimizer", "lars", resumed_model)
    for lr, g in zip(rates[:2], grads[:2], strict=True):
        set_lr(first, lr)
        set_grads(resumed_model, g)
        first.step()
    earlier = copy.deepcopy(first.state_dict())
    for group in earlier["param_groups"]:
        del group["lr_in_momentum"]
        for index in group["params"]:
            earlier["state"][index]["momentum_buffer"] /= group["lr"]
    after_two = copy.deepcopy(resumed_model)
    # loaded directly, and as a resumed run loads it: the config's group options (its base lr, the format
    # marker) put over the saved ones, which must not hide that the saved state is of the earlier form
    for load in (lambda optimizer: optimizer.load_state_dict(earlier), lambda o: load_optimizer_state(o, earlier)):
        resumed_model = copy.deepcopy(after_two)
        second = simclr.create("optimizer", "lars", resumed_model, lr=3.0)
        load(second)
        assert all(group["lr_in_momentum"] for group in second.param_groups)
        for lr, g in zip(rates[2:], grads[2:], strict=True):
            set_lr(second, lr)
            set_grads(resumed_model, g)
            second.step()
        for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


TORCH_CASES = [
    ("adam", torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6), False),
    ("adam", torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, exclude_bias_and_norm=True), True),
    ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.2), True),
    ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.2, exclude_bias_and_norm=False), False),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.1), True),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1), True),
]


@pytest.mark.parametrize(("name", "torch_cls", "params", "excluded"), TORCH_CASES)
def test_torch_optimizers_match_torch_built_by_hand(name, torch_cls, params, excluded):
    model = tiny_model()
    reference_model = copy.deepcopy(model)
    optimizer = simclr.create("optimizer", name, model, **params)
    options = {k: v for k, v in params.items() if k not in ("weight_decay", "exclude_bias_and_norm")}
    weight_decay = params["weight_decay"]
    ps = list(reference_model.parameters())
    if excluded:
        groups = [
            {"params": [p for p in ps if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in ps if p.ndim <= 1], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": ps, "weight_decay": weight_decay}]
    reference = torch_cls(groups, **options)  # torch's default kernel (not fused on CPU)
    for step in range(3):
        grads = random_grads(model, seed=30 + step)
        set_grads(model, grads)
        set_grads(reference_model, grads)
        optimizer.step()
        reference.step()
    for p, q in zip(model.parameters(), reference_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert [len(g["params"]) for g in optimizer.param_groups] == [len(g["params"]) for g in groups]


@pytest.mark.skipif(
    tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 5), reason="fused CPU kernels need torch 2.5"
)
@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_torch_optimizers_use_fused_kernels_on_cpu(name):
    optimizer = simclr.create("optimizer", name, tiny_model())
    assert all(group["fused"] for group in optimizer.param_groups)


def test_kernel_options_fall_back_when_torch_has_no_fused_kernel():
    class NoFusedSGD(torch.optim.SGD):
        def __init__(self, params, lr):  # an optimizer without a `fused` argument
            super().__init__(params, lr)

    groups = parameter_groups(tiny_model(), 0.1, True)
    assert kernel_options(NoFusedSGD, groups) == {}
    assert kernel_options(torch.optim.SGD, groups) in ({"fused": True}, {})


@pytest.mark.parametrize(("name", "expected_decay"), [("adam", None), ("adamw", 0.05), ("sgd", 5e-4), ("lars", 1e-6)])
def test_default_groups_exclude_one_dimensional_parameters_from_weight_decay(name, expected_decay):
    model = tiny_model()
    optimizer = simclr.create("optimizer", name, model)
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert sorted(decay_of) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    for p in model.parameters():
        if expected_decay is None:  # adam: no exclusion by default
            assert decay_of[id(p)] == 1e-6
        else:
            assert decay_of[id(p)] == (0.0 if p.ndim <= 1 else expected_decay)
    assert {g["lr"] for g in optimizer.param_groups} == {optimizer.defaults["lr"]}  # the engine reads it here


def test_excluded_parameters_do_not_decay_under_sgd():
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = simclr.create("optimizer", "sgd", model, lr=0.5, momentum=0.0, weight_decay=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p, b in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p, b if p.ndim <= 1 else b * (1 - 0.5 * 0.1))


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lars"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lr": -1}, "optimizer.lr"),
        ({"lr": 0}, "optimizer.lr"),
        ({"weight_decay": -0.1}, "optimizer.weight_decay"),
        ({"learning_rate": 0.1}, "optimizer.learning_rate"),
    ],
)
def test_invalid_params_raise_config_error(name, params, field):
    with pytest.raises(simclr.ConfigError) as info:
        simclr.create("optimizer", name, tiny_model(), **params)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sgd", {"nesterov": True, "momentum": 0.0}),
        ("sgd", {"momentum": 1.0}),
        ("lars", {"trust_coefficient": 0.0}),
        ("lars", {"momentum": -0.1}),
        ("adam", {"betas": (0.9, 1.0)}),
    ],
)
def test_inconsistent_params_raise_config_error(name, params):
    with pytest.raises(simclr.ConfigError):
        simclr.create("optimizer", name, tiny_model(), **params)


def test_a_model_without_trainable_parameters_is_a_user_error():
    model = tiny_model().requires_grad_(False)
    with pytest.raises(simclr.UserError, match="no trainable parameters"):
        simclr.create("optimizer", "lars", model)
