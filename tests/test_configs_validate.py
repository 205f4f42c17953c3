"""Every file under configs/ validates: experiments fully (each component's params), sweep files with every
combination; and the loss-study seed files say what the results table says."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFIGS

from simclr.config import load_experiment, load_yaml
from simclr.sweep import load_sweep

FILES = sorted(CONFIGS.rglob("*.yaml"))
SEED = CONFIGS / "seed"

# The table of issue 9 (CIFAR-10 linear top-1, %): row file stem -> (backbone, loss params, optimizer, reported).
TABLE = {
    "resnet50_ntxent_t0.1": ("resnet50", {"name": "nt_xent", "temperature": 0.1}, "adam", 78.1),
    "resnet50_ntxent_t0.5": ("resnet50", {"name": "nt_xent", "temperature": 0.5}, "adam", 79.3),
    "resnet50_ntxent_t1.0": ("resnet50", {"name": "nt_xent", "temperature": 1.0}, "adam", 77.2),
    "resnet50_triplet_m0.4": ("resnet50", {"name": "margin_triplet", "margin": 0.4, "miner": "all"}, "adam", 65.1),
    "resnet50_triplet_m0.8": ("resnet50", {"name": "margin_triplet", "margin": 0.8, "miner": "all"}, "adam", 70.7),
    "resnet50_triplet_semihard_m0.8": (
        "resnet50",
        {"name": "margin_triplet", "margin": 0.8, "miner": "semi_hard"},
        "adam",
        73.5,
    ),
    "resnet50_ntlogistic_none_t0.2": (
        "resnet50",
        {"name": "nt_logistic", "temperature": 0.2, "balance": "none"},
        "adam",
        37.5,
    ),
    "resnet50_ntlogistic_sample_t0.2": (
        "resnet50",
        {"name": "nt_logistic", "temperature": 0.2, "balance": "sample"},
        "adam",
        62.4,
    ),
    "resnet50_ntlogistic_sample_t0.5": (
        "resnet50",
        {"name": "nt_logistic", "temperature": 0.5, "balance": "sample"},
        "adam",
        69.9,
    ),
    "resnet50_ntlogistic_sample_t1.0": (
        "resnet50",
        {"name": "nt_logistic", "temperature": 1.0, "balance": "sample"},
        "adam",
        65.2,
    ),
    "resnet50_ntxent_lars_t0.5": ("resnet50", {"name": "nt_xent", "temperature": 0.5}, "lars", None),
    "resnet18_ntxent_t0.5": ("resnet18", {"name": "nt_xent", "temperature": 0.5}, "adam", 71.4),
    "resnet18_ntlogistic_weight_t0.2": (
        "resnet18",
        {"name": "nt_logistic", "temperature": 0.2, "balance": "weight"},
        "adam",
        66.5,
    ),
}


def is_sweep(path: Path) -> bool:
    data, _ = load_yaml(path)
    return "runs" in data or "grid" in data


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFIGS)) for p in FILES])
def test_config_file_validates(path, tmp_path):
    if is_sweep(path):
        sweep = load_sweep(path, out=tmp_path / "sweep")
        assert sweep.combinations
    else:
        load_experiment(path)


def test_the_walk_finds_experiments_and_sweeps():
    assert CONFIGS / "quickstart.yaml" in FILES
    assert {SEED / "sweep.yaml", SEED / "digits_sweep.yaml"} <= {p for p in FILES if is_sweep(p)}


@pytest.mark.parametrize("stem", sorted(TABLE))
def test_seed_row_is_the_table_row(stem):
    backbone, loss, optimizer, _ = TABLE[stem]
    experiment = load_experiment(SEED / f"{stem}.yaml")
    assert experiment.name == stem
    assert experiment.data.dataset.name == "cifar10" and experiment.data.batch_size == 128
    assert experiment.train.epochs == 80 and experiment.model.projection.out_dim == 128
    assert experiment.model.backbone.name == backbone and experiment.optimizer.name == optimizer
    assert experiment.eval.after_train
    dumped = experiment.loss.model_dump()
    assert {key: dumped[key] for key in loss} == loss


@pytest.mark.parametrize("name", ["sweep.yaml", "digits_sweep.yaml"])
def test_seed_sweeps_run_every_row_with_its_reported_number(name, tmp_path):
    sweep = load_sweep(SEED / name, out=tmp_path)
    assert {c.name: c.reported for c in sweep.combinations} == {stem: row[3] for stem, row in TABLE.items()}
    for combo in sweep.combinations:
        assert combo.experiment_file == SEED / f"{combo.name}.yaml"
        backbone, loss, optimizer, _ = TABLE[combo.name]
        assert combo.experiment.optimizer.name == optimizer
        dumped = combo.experiment.loss.model_dump()
        assert {key: dumped[key] for key in loss} == loss
    if name == "digits_sweep.yaml":
        assert {c.experiment.data.dataset.name for c in sweep.combinations} == {"digits"}
        assert {c.experiment.model.backbone.name for c in sweep.combinations} == {"small_resnet"}
