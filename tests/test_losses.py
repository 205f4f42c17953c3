"""The losses against brute-force float64 references written here with loops over pairs (values and gradients),
plus sampling, precision, degenerate batches and configuration."""

from __future__ import annotations

import math

import pytest
import torch

import simclr
from simclr.plugins.losses.nt_logistic import sample_negatives
from simclr.plugins.losses.pairs import Pairs, diagnostics, similarity

SHAPES = [(2, 4), (3, 3), (5, 16), (8, 7)]
MINERS = ["all", "semi_hard", "violating", "hardest"]


def views(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float64 views whose positives are related (z2 is a noisy z1), so every case has some structure."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, dtype=torch.float64, generator=g)
    return z1, z1 + 0.7 * torch.randn(n, d, dtype=torch.float64, generator=g)


def ref_sims(z1: torch.Tensor, z2: torch.Tensor) -> list[list[torch.Tensor]]:
    z = torch.cat([z1, z2])
    unit = [row / torch.sqrt((row * row).sum()) for row in z]
    return [[(a * b).sum() for b in unit] for a in unit]


def pos(i: int, n: int) -> int:
    return (i + n) % (2 * n)


def negs(i: int, n: int) -> list[int]:
    return [k for k in range(2 * n) if k not in (i, pos(i, n))]


def ref_nt_xent(s, n: int, tau: float):
    total = 0
    for i in range(2 * n):
        denom = sum(torch.exp(s[i][k] / tau) for k in range(2 * n) if k != i)
        total = total - torch.log(torch.exp(s[i][pos(i, n)] / tau) / denom)
    return total / (2 * n)


def l_pos(x, tau: float):
    return -torch.log(torch.sigmoid(x / tau))


def l_neg(x, tau: float):
    return -torch.log(torch.sigmoid(-x / tau))


def ref_nt_logistic(s, n: int, tau: float, balance: str, k: int = 1):
    pos_terms = [l_pos(s[i][pos(i, n)], tau) for i in range(2 * n)]
    neg_terms = [[l_neg(s[i][j], tau) for j in negs(i, n)] for i in range(2 * n)]
    flat = [t for row in neg_terms for t in row]
    if balance == "none":
        return (sum(pos_terms) + sum(flat)) / (len(pos_terms) + len(flat))
    if balance == "weight":
        return 0.5 * sum(pos_terms) / len(pos_terms) + 0.5 * sum(flat) / len(flat)
    # sample: the expectation over draws of k negatives per row (each negative drawn with probability k / |row|)
    expected_neg = sum(k * sum(row) / len(row) for row in neg_terms)
    return (sum(pos_terms) + expected_neg) / (2 * n * (1 + k))


def ref_selected(s, n: int, m: float, miner: str) -> set[tuple[int, int]]:
    chosen = set()
    for i in range(2 * n):
        sp = float(s[i][pos(i, n)].detach())
        if miner == "hardest":
            chosen.add((i, max(negs(i, n), key=lambda k: float(s[i][k].detach()))))
            continue
        if miner == "semi_hard":  # FaceNet / TensorFlow: the hardest negative below the positive, else the easiest
            below = [k for k in negs(i, n) if float(s[i][k].detach()) < sp]
            pick = max if below else min
            chosen.add((i, pick(below or negs(i, n), key=lambda k: float(s[i][k].detach()))))
            continue
        for k in negs(i, n):
            sk = float(s[i][k].detach())
            if miner == "all" or sk > sp - m:
                chosen.add((i, k))
    return chosen


def ref_triplet(s, n: int, m: float, miner: str):
    chosen = ref_selected(s, n, m, miner)
    terms = [torch.clamp(s[i][k] - s[i][pos(i, n)] + m, min=0) for i, k in chosen]
    return sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64)


def check_against(loss, reference, z1, z2, rtol=1e-5, atol=1e-5) -> None:
    """The loss (fed float32 copies) matches the float64 reference in value and in gradient w.r.t. z1 and z2."""
    a1, a2 = (z.clone().requires_grad_() for z in (z1, z2))
    expected = reference(ref_sims(a1, a2))
    g1, g2 = torch.autograd.grad(expected, (a1, a2)) if expected.requires_grad else (0 * a1, 0 * a2)
    b1, b2 = (z.float().requires_grad_() for z in (z1, z2))
    value = loss(b1, b2)
    value.backward()
    assert value.dtype == torch.float32 and value.dim() == 0
    torch.testing.assert_close(value.double(), expected.detach(), rtol=rtol, atol=atol)
    torch.testing.assert_close(b1.grad.double(), g1, rtol=rtol * 10, atol=atol)
    torch.testing.assert_close(b2.grad.double(), g2, rtol=rtol * 10, atol=atol)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_reference(n, d, tau):
    z1, z2 = views(n, d, seed=n * d)
    loss = simclr.create("loss", "nt_xent", temperature=tau)
    check_against(loss, lambda s: ref_nt_xent(s, n, tau), z1, z2)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("tau", [0.1, 0.2, 1.0])
@pytest.mark.parametrize("balance", ["none", "weight"])
def test_nt_logistic_matches_reference(n, d, tau, balance):
    z1, z2 = views(n, d, seed=n + d)
    loss = simclr.create("loss", "nt_logistic", temperature=tau, balance=balance)
    check_against(loss, lambda s: ref_nt_logistic(s, n, tau, balance), z1, z2)


@pytest.mark.parametrize("n,d", SHAPES)
def test_nt_logistic_sample_with_every_negative_drawn_is_the_plain_mean(n, d):
    z1, z2 = views(n, d, seed=3)
    loss = simclr.create("loss", "nt_logistic", temperature=0.3, balance="sample", negatives_per_positive=2 * n - 2)
    check_against(loss, lambda s: ref_nt_logistic(s, n, 0.3, "none"), z1, z2)


@pytest.mark.parametrize("k", [1, 3])
def test_nt_logistic_sample_expectation(k):
    n, draws = 3, 3000
    z1, z2 = views(n, 5, seed=11)
    loss = simclr.create("loss", "nt_logistic", temperature=0.2, balance="sample", negatives_per_positive=k)
    torch.manual_seed(0)
    values = torch.stack([loss(z1.float(), z2.float()) for _ in range(draws)]).double()
    expected = ref_nt_logistic(ref_sims(z1, z2), n, 0.2, "sample", k)
    if k == 1:
        torch.testing.assert_close(expected, ref_nt_logistic(ref_sims(z1, z2), n, 0.2, "weight"))
    assert values.std() > 0
    assert abs(values.mean() - expected) < 5 * values.std() / math.sqrt(draws)


def test_nt_logistic_sample_uses_the_global_rng():
    z1, z2 = views(4, 6)
    loss = simclr.create("loss", "nt_logistic", balance="sample", negatives_per_positive=2)
    torch.manual_seed(7)
    first = [loss(z1.float(), z2.float()) for _ in range(5)]
    torch.manual_seed(7)
    assert torch.equal(torch.stack(first), torch.stack([loss(z1.float(), z2.float()) for _ in range(5)]))


@pytest.mark.parametrize("n,k", [(2, 1), (2, 2), (3, 1), (3, 2), (5, 3)])
def test_sample_negatives_draws_distinct_negatives_uniformly(n, k):
    pairs = Pairs.build(n, torch.device("cpu"))
    draws = 2000
    torch.manual_seed(1)
    counts = torch.zeros(2 * n, 2 * n)
    for _ in range(draws):
        drawn = sample_negatives(pairs.negative_mask, k)
        assert drawn.dtype == torch.bool
        assert (drawn.sum(dim=1) == k).all()  # k distinct columns per row: without replacement
        assert not (drawn & ~pairs.negative_mask).any()  # only negatives
        counts += drawn
    p = k / (2 * n - 2)
    sigma = math.sqrt(draws * p * (1 - p))
    frequencies = counts[pairs.negative_mask]
    assert ((frequencies - draws * p).abs() < 5 * sigma + 1e-9).all()


def test_sample_rejects_more_negatives_than_the_batch_has():
    loss = simclr.create("loss", "nt_logistic", balance="sample", negatives_per_positive=5)
    z = torch.randn(3, 4)
    with pytest.raises(simclr.UserError, match="at most 4"):
        loss(z, z)
    assert loss(torch.randn(4, 4), torch.randn(4, 4)).isfinite()


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize("m", [0.0, 0.3, 0.8])
def test_margin_triplet_matches_reference(n, d, miner, m):
    z1, z2 = views(n, d, seed=n * 7 + d)
    loss = simclr.create("loss", "margin_triplet", margin=m, miner=miner)
    check_against(loss, lambda s: ref_triplet(s, n, m, miner), z1, z2)
    s = ref_sims(z1, z2)
    selected = ref_selected(s, n, m, miner)
    active = [(i, k) for i, k in selected if float(s[i][k] - s[i][pos(i, n)]) + m > 0]
    assert loss.diagnostics["selected_frac"].item() == pytest.approx(len(selected) / (2 * n * (2 * n - 2)))
    assert loss.diagnostics["active_frac"].item() == pytest.approx(len(active) / max(len(selected), 1))


def test_margin_triplet_empty_selection_is_zero_with_a_gradient_path():
    loss = simclr.create("loss", "margin_triplet", margin=0.5, miner="all")
    loss.miner = lambda sim, positive_mask, margin: torch.zeros_like(positive_mask)  # a plugin miner may pick none
    z1, z2 = (torch.randn(4, 5, requires_grad=True) for _ in range(2))
    value = loss(z1, z2)
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.equal(z1.grad, torch.zeros_like(z1)) and torch.equal(z2.grad, torch.zeros_like(z2))
    assert loss.diagnostics["selected_frac"].item() == 0.0 and loss.diagnostics["active_frac"].item() == 0.0


def cos(degrees: float) -> float:
    return math.cos(math.radians(degrees))


def test_semi_hard_pulls_an_anchor_whose_positive_is_below_every_negative_by_hand():
    """N = 2 on the unit circle: z1 = [a, b] at 0 and 100 degrees, z2 = [a', b'] at 180 and 240 degrees. Every
    row's positive is less similar than both its negatives, so each row's semi-hard negative is its least similar
    one and every term is non-zero even at m = 0. A rule taking only negatives between s_ip - m and s_ip would
    select nothing at m = 0 and leave these pairs untrained."""
    degrees = torch.tensor([[0.0], [100.0]]), torch.tensor([[180.0], [240.0]])
    z1, z2 = (torch.cat([torch.cos(torch.deg2rad(t)), torch.sin(torch.deg2rad(t))], dim=1) for t in degrees)
    # row: s(positive); s(negatives) -> the least similar negative's term s_ik - s_ip
    # a:  s(a, a') = cos 180;   b cos 100, b' cos 240  -> b':  cos 240 - cos 180
    # b:  s(b, b') = cos 140;   a cos 100, a' cos 80   -> a:   cos 100 - cos 140
    # a': s(a', a) = cos 180;   b cos 80,  b' cos 60   -> b:   cos 80 - cos 180
    # b': s(b', b) = cos 140;   a cos 120, a' cos 60   -> a:   cos 120 - cos 140
    terms = [cos(240) - cos(180), cos(100) - cos(140), cos(80) - cos(180), cos(120) - cos(140)]
    loss = simclr.create("loss", "margin_triplet", margin=0.0, miner="semi_hard")
    a1 = z1.clone().requires_grad_()
    value = loss(a1, z2)
    assert value.item() == pytest.approx(sum(terms) / 4, abs=1e-6)
    value.backward()
    assert a1.grad.abs().sum(dim=1).min() > 0
    assert loss.diagnostics["active_frac"].item() == 1.0


def test_margin_triplet_keeps_only_negatives_a_miner_selects():
    z1, z2 = views(3, 4)
    reference = simclr.create("loss", "margin_triplet", margin=0.5, miner="all")
    sloppy = simclr.create("loss", "margin_triplet", margin=0.5, miner="all")
    sloppy.miner = lambda sim, positive_mask, margin: torch.ones_like(positive_mask)
    assert sloppy(z1.float(), z2.float()).item() == pytest.approx(reference(z1.float(), z2.float()).item())


def test_margin_triplet_rejects_a_miner_returning_the_wrong_thing():
    loss = simclr.create("loss", "margin_triplet")
    loss.miner = lambda sim, positive_mask, margin: sim
    with pytest.raises(simclr.PluginError, match="bool mask"):
        loss(torch.randn(3, 4), torch.randn(3, 4))


LOSSES = [
    ("nt_xent", {}),
    ("nt_logistic", {"balance": "none"}),
    ("nt_logistic", {"balance": "weight"}),
    ("nt_logistic", {"balance": "sample", "negatives_per_positive": 2}),
    *[("margin_triplet", {"miner": miner}) for miner in MINERS],
]


@pytest.mark.parametrize("name,params", LOSSES)
def test_diagnostics(name, params):
    loss = simclr.create("loss", name, **params)
    keys = None
    for seed in range(2):
        z1, z2 = views(5, 6, seed=seed)
        loss(z1.float().requires_grad_(), z2.float())
        diag = loss.diagnostics
        assert keys is None or set(diag) == keys
        keys = set(diag)
        assert {"pos_top1", "pos_sim", "neg_sim"} <= keys
        assert all(t.dim() == 0 and t.dtype == torch.float32 and not t.requires_grad for t in diag.values())
        s = [[float(x) for x in row] for row in ref_sims(z1, z2)]
        rows = range(10)
        top1 = sum(max((k for k in rows if k != i), key=lambda k: s[i][k]) == pos(i, 5) for i in rows) / 10
        assert diag["pos_top1"].item() == pytest.approx(top1)
        assert diag["pos_sim"].item() == pytest.approx(sum(s[i][pos(i, 5)] for i in rows) / 10, abs=1e-6)
        neg = [s[i][k] for i in rows for k in negs(i, 5)]
        assert diag["neg_sim"].item() == pytest.approx(sum(neg) / len(neg), abs=1e-6)


@pytest.mark.parametrize("name,params", LOSSES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_autocast_computes_in_float32(name, params, dtype):
    loss = simclr.create("loss", name, **params)
    z1, z2 = (torch.randn(6, 16).to(dtype).requires_grad_() for _ in range(2))
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=dtype):
        value = loss(z1, z2)
    value.backward()
    torch.manual_seed(0)
    expected = loss(z1.detach().float(), z2.detach().float())
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6)  # bf16/fp16 math would differ by ~1e-3
    assert z1.grad.isfinite().all() and z2.grad.isfinite().all()


@pytest.mark.parametrize("name,params", LOSSES)
@pytest.mark.parametrize("case", ["tiny_temperature", "identical_views", "collapsed"])
def test_finite_in_degenerate_cases(name, params, case):
    scale = {"temperature": 0.01} if name != "margin_triplet" and case == "tiny_temperature" else {}
    loss = simclr.create("loss", name, **params, **scale)
    z1 = torch.randn(4, 8) * 30
    z2 = z1.clone() if case != "tiny_temperature" else torch.randn(4, 8)
    if case == "collapsed":
        z1, z2 = torch.ones(4, 8), torch.ones(4, 8)
    z1.requires_grad_()
    z2.requires_grad_()
    value = loss(z1, z2)
    value.backward()
    assert value.isfinite() and z1.grad.isfinite().all() and z2.grad.isfinite().all()
    assert all(t.isfinite() for t in loss.diagnostics.values())


def test_nt_xent_at_tiny_temperature_matches_reference():
    z1, z2 = views(3, 5, seed=2)
    loss = simclr.create("loss", "nt_xent", temperature=0.01)
    check_against(loss, lambda s: ref_nt_xent(s, 3, 0.01), z1, z2, rtol=1e-4, atol=1e-3)


def test_collapsed_batch_by_hand():
    """Every row identical: every similarity is 1, so NT-Xent is log(2N − 1) and NT-Logistic (weight) is
    ½(softplus(−1/τ) + softplus(1/τ))."""
    z = torch.ones(4, 3)
    assert simclr.create("loss", "nt_xent")(z, z).item() == pytest.approx(math.log(7))
    tau = 0.2
    expected = 0.5 * (math.log1p(math.exp(-1 / tau)) + math.log1p(math.exp(1 / tau)))
    assert simclr.create("loss", "nt_logistic", temperature=tau)(z, z).item() == pytest.approx(expected)


@pytest.mark.parametrize("name", ["nt_xent", "nt_logistic", "margin_triplet"])
def test_batch_of_one_is_a_clear_error(name):
    loss = simclr.create("loss", name)
    with pytest.raises(simclr.UserError, match="at least 2"):
        loss(torch.randn(1, 8), torch.randn(1, 8))
    with pytest.raises(simclr.UserError, match="same shape"):
        loss(torch.randn(3, 8), torch.randn(4, 8))


@pytest.mark.parametrize("name,params", LOSSES)
def test_loss_math_has_no_data_dependent_shapes(name, params):
    """On the meta device any host read (.item(), nonzero, boolean-mask indexing) raises: the step is sync-free."""
    loss = simclr.create("loss", name, **params)
    z1 = torch.randn(5, 8, device="meta", requires_grad=True)
    sim = similarity(z1, torch.randn(5, 8, device="meta"))
    pairs = Pairs.build(5, sim.device)
    value, extra = loss.pair_loss(sim, pairs)
    value.backward()
    assert value.shape == () and all(t.shape == () for t in {**extra, **diagnostics(sim, pairs)}.values())


def test_created_from_the_registry_with_validated_params():
    assert simclr.create("loss", "nt_xent", temperature=0.1).temperature == 0.1
    logistic = simclr.create("loss", "nt_logistic")
    assert (logistic.temperature, logistic.balance, logistic.negatives_per_positive) == (0.2, "weight", 1)
    triplet = simclr.create("loss", "margin_triplet")
    assert (triplet.margin, triplet.miner_name) == (0.8, "semi_hard")
    assert isinstance(triplet, torch.nn.Module)


@pytest.mark.parametrize(
    "name,params,where",
    [
        ("nt_xent", {"temperature": -1}, "temperature"),
        ("nt_xent", {"temperature": 0}, "temperature"),
        ("nt_xent", {"tau": 0.1}, "tau"),
        ("nt_logistic", {"balance": "resample"}, "balance"),
        ("nt_logistic", {"negatives_per_positive": 0}, "negatives_per_positive"),
        ("margin_triplet", {"margin": -0.1}, "margin"),
        ("margin_triplet", {"temperature": 0.5}, "temperature"),
    ],
)
def test_invalid_params_are_config_errors(name, params, where):
    with pytest.raises(simclr.ConfigError, match=f"loss.{where}"):
        simclr.create("loss", name, **params)


def test_unknown_miner_suggests_the_closest():
    with pytest.raises(simclr.ConfigError, match="did you mean 'semi_hard'"):
        simclr.create("loss", "margin_triplet", miner="semi_hrad")
