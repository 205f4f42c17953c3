"""The built-in miners against brute-force loop definitions, and the miner plugin kind."""

from __future__ import annotations

import pytest
import torch

import simclr

MINERS = ["all", "semi_hard", "violating", "hardest"]


def batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A float32 cosine-similarity matrix of 2N rows (positives correlated) and its positive mask."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, 6, generator=g)
    z = torch.nn.functional.normalize(torch.cat([z1, z1 + torch.randn(n, 6, generator=g)]), dim=1)
    positive_mask = torch.zeros(2 * n, 2 * n, dtype=torch.bool)
    for i in range(2 * n):
        positive_mask[i, (i + n) % (2 * n)] = True
    return z @ z.T, positive_mask


def brute_force(name: str, sim: torch.Tensor, n: int, m: float) -> torch.Tensor:
    rows = 2 * n
    out = torch.zeros(rows, rows, dtype=torch.bool)
    for i in range(rows):
        p = (i + n) % rows
        negatives = [k for k in range(rows) if k not in (i, p)]
        sp = sim[i, p].item()
        if name == "hardest":
            out[i, max(negatives, key=lambda k: sim[i, k].item())] = True
        if name == "semi_hard":  # the most similar negative below the positive; if none, the least similar one
            below = [k for k in negatives if sim[i, k].item() < sp]
            pick = max if below else min
            out[i, pick(below or negatives, key=lambda k: sim[i, k].item())] = True
        for k in negatives:
            sk = sim[i, k].item()
            out[i, k] |= {"all": True, "violating": sk > sp - m}.get(name, False)
    return out


@pytest.mark.parametrize("name", MINERS)
@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("m", [0.0, 0.2, 0.8, 2.0])
def test_miner_matches_brute_force(name, n, m):
    miner = simclr.create("miner", name)
    for seed in range(3):
        sim, positive_mask = batch(n, seed)
        selected = miner(sim, positive_mask, m)
        assert selected.dtype == torch.bool and selected.shape == sim.shape
        assert torch.equal(selected, brute_force(name, sim, n, m))


@pytest.mark.parametrize("name", MINERS)
@pytest.mark.parametrize("m", [0.0, 0.5])
def test_ties_follow_the_strict_inequalities(name, m):
    """Similarities on a grid of quarters (exact in float) tie often, and with the margin: s_ik = s_ip is not
    below the positive for semi_hard, s_ik = s_ip − m is not violating, and among equal candidates the first
    column is taken."""
    n = 5
    for seed in range(3):
        sim, positive_mask = batch(n, seed)
        sim = torch.round(sim * 4) / 4
        assert torch.equal(simclr.create("miner", name)(sim, positive_mask, m), brute_force(name, sim, n, m))


@pytest.mark.parametrize("name", MINERS)
def test_never_selects_the_anchor_or_its_positive(name):
    n = 4
    sim, positive_mask = batch(n, 0)
    for candidate in (sim, torch.ones_like(sim), -torch.ones_like(sim), sim + 5 * torch.eye(2 * n)):
        selected = simclr.create("miner", name)(candidate, positive_mask, 10.0)
        assert not selected.diagonal().any() and not (selected & positive_mask).any()


def test_hardest_and_semi_hard_pick_one_per_row_and_all_picks_every_negative():
    sim, positive_mask = batch(5, 1)
    for name in ("hardest", "semi_hard"):
        assert (simclr.create("miner", name)(sim, positive_mask, 0.5).sum(dim=1) == 1).all()
    assert simclr.create("miner", "all")(sim, positive_mask, 0.5).sum().item() == 10 * 8


@pytest.mark.parametrize("name", MINERS)
def test_miners_are_sync_free(name):
    """On the meta device any host read or data-dependent shape raises."""
    sim = torch.randn(8, 8, device="meta")
    selected = simclr.create("miner", name)(sim, torch.zeros(8, 8, dtype=torch.bool, device="meta"), 0.5)
    assert selected.shape == (8, 8) and selected.dtype == torch.bool


def test_miners_are_listed_as_their_own_kind():
    assert set(MINERS) <= set(simclr.names("miner"))
    listed = {entry["name"]: entry for entry in simclr.available("miner")}
    assert all(listed[name]["description"] for name in MINERS)


def test_miner_field_rejects_unknown_names():
    with pytest.raises(simclr.ConfigError, match="loss.miner: .*unknown miner 'hardst'.*did you mean 'hardest'"):
        simclr.create("loss", "margin_triplet", miner="hardst")
    with pytest.raises(simclr.ConfigError, match="unknown miner"):
        simclr.create("miner", "nearest")


def test_miner_field_takes_a_section_with_the_miners_params():
    loss = simclr.create("loss", "margin_triplet", miner={"name": "hardest"})
    assert loss.miner_name == "hardest" and type(loss.miner) is type(simclr.create("miner", "hardest"))
    with pytest.raises(simclr.ConfigError, match=r"loss.miner.fraction: unknown key"):
        simclr.create("loss", "margin_triplet", miner={"name": "hardest", "fraction": 0.5})
    with pytest.raises(simclr.ConfigError, match=r"loss.miner: .*needs a name"):
        simclr.create("loss", "margin_triplet", miner={"fraction": 0.5})
