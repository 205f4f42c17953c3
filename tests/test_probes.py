"""The probes against independent expectations: separable data, brute-force kNN, sklearn's own objective."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from simclr.probes import few_label_indices, few_label_probe, knn_probe, linear_probe, probe_scores


def _clusters(n_per_class: int, num_classes: int, dim: int, spread: float, seed: int):
    """Gaussian clusters around well-separated centres (one-hot * 10 in the first dims)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    centres = torch.zeros(num_classes, dim)
    centres[torch.arange(num_classes), torch.arange(num_classes)] = 10.0
    features = centres[labels] + spread * torch.randn(len(labels), dim, generator=generator)
    return features, labels


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = torch.tensor(x, dtype=torch.float32)[order], torch.tensor(y)[order]
    return x[:1000], y[:1000], x[1000:], y[1000:]


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_linear_probe_separates_separable_clusters(backend):
    train_x, train_y = _clusters(20, 6, 16, 0.5, seed=1)
    test_x, test_y = _clusters(10, 6, 16, 0.5, seed=2)
    result = linear_probe(train_x, train_y, test_x, test_y, C=1.0, max_iter=200, backend=backend)
    assert result == {"top1": 100.0, "top5": 100.0}


def test_linear_probe_top5_only_with_five_classes_and_counts_the_true_label():
    train_x, train_y = _clusters(20, 4, 8, 0.5, seed=1)
    assert set(linear_probe(train_x, train_y, train_x, train_y)) == {"top1"}
    # labels shuffled at test time: top-1 is near chance, top-5 of 5 classes is always right
    train_x, train_y = _clusters(20, 5, 8, 0.5, seed=1)
    wrong = (train_y + 1) % 5
    result = linear_probe(train_x, train_y, train_x, wrong)
    assert result["top1"] == 0.0 and result["top5"] == 100.0


def test_linear_probe_uses_original_label_values():
    train_x, train_y = _clusters(20, 3, 8, 0.5, seed=1)
    result = linear_probe(train_x, train_y * 7 + 3, train_x, train_y * 7 + 3)
    assert result["top1"] == 100.0


@pytest.mark.parametrize("num_classes", [2, 10])
def test_torch_backend_minimises_sklearns_objective(digits, num_classes):
    """At tight tolerance both backends reach the same optimum: the same probabilities on held-out rows."""
    train_x, train_y, test_x, _ = digits
    keep = train_y < num_classes
    x, y = train_x[keep][:300], train_y[keep][:300]
    s_scores, s_classes = probe_scores(x, y, test_x, C=0.05, max_iter=5000, backend="sklearn", tol=1e-9)
    t_scores, t_classes = probe_scores(x, y, test_x, C=0.05, max_iter=5000, backend="torch", tol=1e-9)
    assert torch.equal(s_classes, t_classes)
    assert torch.allclose(s_scores.softmax(1), t_scores.softmax(1).double(), atol=1e-4)


def test_torch_probe_agrees_with_sklearn_on_digits_within_one_point(digits):
    sklearn = linear_probe(*digits, backend="sklearn")
    torch_ = linear_probe(*digits, backend="torch")
    assert sklearn["top1"] > 90
    assert abs(sklearn["top1"] - torch_["top1"]) <= 1.0


def test_unknown_backend_is_refused(digits):
    with pytest.raises(ValueError, match="unknown probe backend"):
        linear_probe(*digits, backend="svm")


def test_few_label_indices_pick_exactly_k_distinct_per_class_reproducibly():
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 9)[torch.randperm(21, generator=torch.Generator().manual_seed(3))]
    index = few_label_indices(labels, 3, draw=0, seed=4)
    assert len(set(index.tolist())) == 9
    assert torch.bincount(labels[index]).tolist() == [3, 3, 3]
    assert torch.equal(index, few_label_indices(labels, 3, draw=0, seed=4))
    draws = {tuple(few_label_indices(labels, 3, draw=d, seed=4).tolist()) for d in range(5)}
    assert len(draws) > 1
    assert set(index.tolist()) <= set(few_label_indices(labels, 5, draw=0, seed=4).tolist())
    with pytest.raises(ValueError, match="fewer than K=6"):
        few_label_indices(labels, 6, draw=0, seed=4)


def test_few_label_probe_averages_the_draws(digits):
    train_x, train_y, test_x, test_y = digits
    result = few_label_probe(train_x, train_y, test_x, test_y, ks=[1, 3], draws=3, seed=5, max_iter=200)
    assert set(result) == {"1", "3"}
    for k in (1, 3):
        draws = []
        for d in range(3):
            index = few_label_indices(train_y, k, d, 5)
            draws.append(linear_probe(train_x[index], train_y[index], test_x, test_y, max_iter=200)["top1"])
        assert result[str(k)]["top1"] == pytest.approx(np.mean(draws))
        assert result[str(k)]["std"] == pytest.approx(np.std(draws, ddof=1))
    single = few_label_probe(train_x, train_y, test_x, test_y, ks=[1], draws=1, seed=5, max_iter=200)
    assert single["1"]["std"] == 0.0


def _brute_force_knn(train_x, train_y, test_x, k, temperature):
    predictions = []
    for query in test_x.tolist():
        sims = []
        for row, label in zip(train_x.tolist(), train_y.tolist(), strict=True):
            dot = sum(a * b for a, b in zip(query, row, strict=True))
            norm = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in row))
            sims.append((dot / norm, label))
        sims.sort(reverse=True)
        votes: dict[int, float] = {}
        for sim, label in sims[:k]:
            votes[label] = votes.get(label, 0.0) + math.exp(sim / temperature)
        predictions.append(max(votes, key=votes.get))
    return predictions


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (5, 0.07), (12, 1.0), (500, 0.5)])
def test_knn_matches_a_brute_force_loop(k, temperature):
    generator = torch.Generator().manual_seed(k)
    train_x, train_y = torch.randn(40, 6, generator=generator), torch.randint(0, 4, (40,), generator=generator)
    test_x, test_y = torch.randn(23, 6, generator=generator), torch.randint(0, 4, (23,), generator=generator)
    expected = _brute_force_knn(train_x, train_y, test_x, min(k, 40), temperature)
    accuracy = 100 * np.mean(np.array(expected) == test_y.numpy())
    result = knn_probe(train_x, train_y, test_x, test_y, k=k, temperature=temperature, batch_size=7)
    assert result == {"k": min(k, 40), "top1": pytest.approx(accuracy)}


def test_knn_is_scale_invariant_and_perfect_on_clusters():
    train_x, train_y = _clusters(10, 3, 8, 0.3, seed=1)
    test_x, test_y = _clusters(5, 3, 8, 0.3, seed=2)
    assert knn_probe(train_x, train_y, test_x * 50, test_y, k=5)["top1"] == 100.0
