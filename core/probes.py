"""Probes on frozen features: linear (logistic regression), few-label, and weighted kNN.

Every probe takes feature tensors ``[N, F]`` and integer label tensors ``[N]`` and returns accuracies as
percentages (0-100).

Linear probe objective. scikit-learn's ``LogisticRegression(C, solver="lbfgs")`` minimises, for K > 2 classes,

    (1/n) sum_i CE(W x_i + b, y_i) + 1/(2 C n) ||W||_F^2          (W: [K, F], b unpenalised)

which is its documented ``C sum_i CE_i + 1/2 ||W||^2`` divided by ``C n``. The torch backend minimises exactly
this function with full-batch L-BFGS (strong-Wolfe line search, stopping when the largest gradient entry is below
``tol`` as scipy's L-BFGS-B does), so both reach the same optimum up to the solvers' tolerances. For K = 2
scikit-learn fits one weight vector w with penalty 1/(2 C n) ||w||^2; the softmax over two rows [w/2, -w/2]
gives the same probabilities and ||W||_F^2 = ||w||^2 / 2, so the torch backend doubles the strength to match.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger("simclr")

BACKENDS = ("sklearn", "torch")


def _percent(correct: torch.Tensor) -> float:
    return 100.0 * correct.double().mean().item()


def topk_accuracy(scores: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percentage of rows whose true label is among the ``k`` highest-scoring ``classes``."""
    top = classes[scores.topk(min(k, scores.shape[1]), dim=1).indices]
    return _percent((top == labels[:, None]).any(dim=1))


def probe_scores(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    C: float = 1.0,
    max_iter: int = 1000,
    backend: str = "sklearn",
    tol: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the logistic-regression probe on standardised features; return the test logits [M, K] (CPU) and the
    K classes they score (sorted). ``tol``: stop when the largest gradient entry is below it (both backends)."""
    if backend == "sklearn":
        return _sklearn_scores(train_x, train_y, test_x, C, max_iter, tol)
    if backend == "torch":
        return _torch_scores(train_x, train_y, test_x, C, max_iter, tol)
    raise ValueError(f"unknown probe backend '{backend}'; choose one of {', '.join(BACKENDS)}")


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    C: float = 1.0,
    max_iter: int = 1000,
    backend: str = "sklearn",
) -> dict[str, float]:
    """Multinomial logistic regression on standardised features: ``{"top1"}``, plus ``"top5"`` with >= 5
    classes (in the training labels)."""
    scores, classes = probe_scores(train_x, train_y, test_x, C, max_iter, backend)
    test_y = test_y.cpu()
    result = {"top1": topk_accuracy(scores, classes, test_y, 1)}
    if len(classes) >= 5:
        result["top5"] = topk_accuracy(scores, classes, test_y, 5)
    return result


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """As scikit-learn's StandardScaler: train mean and population std, a zero std left as 1."""
    mean = train.mean(dim=0)
    std = train.std(dim=0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def _sklearn_scores(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, C: float, max_iter: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    x = train_x.detach().cpu().double().numpy()
    scaler = StandardScaler().fit(x)
    # lbfgs is scikit-learn's default solver; with it and more than two classes the loss is multinomial.
    classifier = LogisticRegression(C=C, max_iter=max_iter, tol=tol, solver="lbfgs")
    # One BLAS thread: L-BFGS-B's many small BLAS calls ran 5-10x slower with two threads on a busy 2-core
    # machine (50,000 x 512 features: 6 s with one thread, 13-42 s with two).
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(scaler.transform(x), train_y.detach().cpu().numpy())
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning("the logistic-regression probe stopped at max_iter=%d before converging", max_iter)
    scores = classifier.decision_function(scaler.transform(test_x.detach().cpu().double().numpy()))
    if scores.ndim == 1:  # binary: the logit of classes_[1]; as softmax logits that is [-s/2, s/2]
        scores = np.stack([-scores / 2, scores / 2], axis=1)
    return torch.from_numpy(scores), torch.from_numpy(classifier.classes_).long()


def _torch_scores(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, C: float, max_iter: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    device = train_x.device
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    classes, targets = torch.unique(train_y.to(device), return_inverse=True)
    x, test = _standardise(train_x.to(dtype), test_x.to(device, dtype))
    n, num_classes = len(x), len(classes)
    strength = (2.0 if num_classes == 2 else 1.0) / (C * n)
    weight = torch.zeros(num_classes, x.shape[1], dtype=dtype, device=device, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=dtype, device=device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=64 * torch.finfo(dtype).eps,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, targets) + 0.5 * strength * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        scores = test @ weight.T + bias
    return scores.cpu(), classes.cpu()


def few_label_indices(labels: torch.Tensor, k: int, draw: int, seed: int) -> torch.Tensor:
    """Indices of ``k`` images of every class, drawn without replacement from a generator seeded by
    ``(seed, draw)``. Draws are nested: the first ``k`` of a draw's per-class order, so K=5 extends K=1."""
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed * 1_000_003 + draw)
    chosen = []
    for cls in torch.unique(labels).tolist():
        members = (labels == cls).nonzero().flatten()
        if len(members) < k:
            raise ValueError(f"class {cls} has only {len(members)} labelled training images, fewer than K={k}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(chosen)


def few_label_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    ks: Iterable[int],
    draws: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
    backend: str = "sklearn",
) -> dict[str, dict[str, float]]:
    """The linear probe trained on K labelled images per class, averaged over ``draws`` seeded draws:
    ``{"K": {"top1": mean, "std": standard deviation over the draws (0 for one draw)}}``."""
    result = {}
    test_y = test_y.cpu()
    for k in ks:
        accuracies = []
        for draw in range(draws):
            index = few_label_indices(train_y, k, draw, seed).to(train_x.device)
            scores, classes = probe_scores(train_x[index], train_y[index], test_x, C, max_iter, backend)
            accuracies.append(topk_accuracy(scores, classes, test_y, 1))
        spread = float(np.std(accuracies, ddof=1)) if draws > 1 else 0.0
        result[str(k)] = {"top1": float(np.mean(accuracies)), "std": spread}
    return result


def knn_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Cosine-similarity weighted kNN (InstDisc / DINO protocol): each of a test image's ``k`` nearest training
    images votes for its class with weight exp(similarity / temperature). Runs on ``train_x``'s device, over
    ``batch_size`` test rows at a time; ``"k"`` is the number of neighbours used (at most the training set)."""
    device = train_x.device
    bank = F.normalize(train_x.float(), dim=1)
    classes, targets = torch.unique(train_y.to(device), return_inverse=True)
    k = min(k, len(bank))
    correct = 0
    for start in range(0, len(test_x), batch_size):
        query = F.normalize(test_x[start : start + batch_size].to(device).float(), dim=1)
        similarity, neighbours = (query @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(query), len(classes), device=device)
        votes.scatter_add_(1, targets[neighbours], (similarity / temperature).exp())
        predicted = classes[votes.argmax(dim=1)]
        correct += (predicted == test_y[start : start + batch_size].to(device)).sum().item()
    return {"k": k, "top1": 100.0 * correct / max(len(test_x), 1)}
