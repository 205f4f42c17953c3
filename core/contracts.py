"""Checks that a plugin's component keeps its contract, made before a run writes anything (and by the bench): a
plugin's mistake gets a message naming the component and its plugin, not a traceback from deep in the loop, and a
silent mistake (parameters nothing trains) a warning."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from simclr import component_label
from simclr.errors import PluginError
from simclr.runtime import Runtime

log = logging.getLogger("simclr")


def loss_output_problem(loss: Any, diagnostics: Any) -> str | None:
    """What breaks the loss contract in one call's outputs, from their types and shapes alone (no device sync):
    a scalar float tensor with a gradient path, and a dict of single-value tensors as ``diagnostics``."""

    def described(value: Any) -> str:
        return f"a tensor of shape {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__

    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        return f"returned {described(loss)}; a loss returns a scalar (0-dim) torch.Tensor, e.g. the batch mean"
    if not loss.is_floating_point() or not loss.requires_grad:
        problem = f"a {loss.dtype} tensor" if not loss.is_floating_point() else "a tensor without a gradient"
        return f"returned {problem}; the loss must be a float tensor computed from z1 and z2 (not detached)"
    if not isinstance(diagnostics, dict):
        return f"has diagnostics of type {type(diagnostics).__name__}; they must be a dict of single-value tensors"
    for key, value in diagnostics.items():
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            return (
                f"has diagnostics['{key}'] = {described(value)}; each diagnostic is a single-value tensor (such as a "
                "0-dim mean) left on the device (no .item(): the trainer reads them every train.log_every steps)"
            )
    return None


def check_loss_output(loss: Any, loss_fn: Any, name: str) -> None:
    """Raise :class:`PluginError` naming loss ``name`` and its plugin when one call's outputs break the contract:
    a plugin's mistake gets a message, not a traceback from ``backward()`` or the metric tracker."""
    problem = loss_output_problem(loss, getattr(loss_fn, "diagnostics", {}))
    if problem:
        raise PluginError(f"{component_label('loss', name)} {problem}")


def check_backbone_output(backbone: nn.Module, name: str, image_size: int, runtime: Runtime) -> None:
    """Raise :class:`PluginError` naming backbone ``name`` and its plugin unless it turns two blank images of
    ``image_size`` into float features [2, feature_dim] on the run's device, in its precision and memory layout,
    in eval mode (evaluation) and in training mode (pre-training; some networks, such as torchvision's Inception,
    return other things while training). A wrong ``feature_dim`` or dtype would otherwise fail in the projection
    head, and an image size the backbone cannot take in its first step, both after the run directory is written.
    Runs without gradients; the buffers a training-mode step changes (BatchNorm statistics, persistent or not),
    the RNG state and the modules' modes are restored. Eval mode runs first: it changes no buffer, and it gives a
    lazy module its parameters and buffers before they are copied."""
    modes = {module: module.training for module in backbone.modules()}
    images = runtime.place(torch.zeros(2, 3, image_size, image_size))
    try:
        backbone.eval()
        problem = _backbone_output_problem(backbone, images, runtime, "eval")
        if not problem:
            buffers = {
                (module, key): buffer.clone()
                for module in backbone.modules()
                for key, buffer in module.named_buffers(recurse=False)
            }
            backbone.train()
            try:
                problem = _backbone_output_problem(backbone, images, runtime, "training")
            finally:
                for (module, key), buffer in buffers.items():
                    setattr(module, key, buffer)
    finally:
        for module, training in modes.items():
            module.training = training
    if problem:
        raise PluginError(f"{component_label('backbone', name)} {problem}")


def _backbone_output_problem(backbone: nn.Module, images: torch.Tensor, runtime: Runtime, mode: str) -> str | None:
    shape = f"2 images of {list(images.shape[1:])} in {mode} mode"
    try:
        with runtime.rng_kept(), torch.no_grad(), runtime.autocast():
            features = backbone(images)
    except Exception as exc:
        return f"failed on {shape}: {type(exc).__name__}: {exc}"
    expected = [2, backbone.feature_dim]
    if not (isinstance(features, torch.Tensor) and list(features.shape) == expected):
        found = f"shape {list(features.shape)}" if isinstance(features, torch.Tensor) else type(features).__name__
        return (
            f"declares feature_dim {backbone.feature_dim}, but on {shape} returns {found}; a backbone returns "
            f"features [B, feature_dim], here {expected}"
        )
    allowed = sorted({str(torch.float32), str(runtime.compute_dtype)})
    if str(features.dtype) not in allowed:
        return (
            f"returns {features.dtype} features on {shape}; the projection head takes {' or '.join(allowed)} "
            "(float32 parameters, and the run's precision)"
        )
    return None


def warn_of_untrained_parameters(model: nn.Module, optimizer: torch.optim.Optimizer, name: str) -> None:
    """An optimizer plugin that leaves out some of the model's trainable parameters (the projection head, say)
    would silently train only part of it."""
    given = {id(param) for group in optimizer.param_groups for param in group["params"]}
    trainable = [(key, param) for key, param in model.named_parameters() if param.requires_grad]
    left_out = [key for key, param in trainable if id(param) not in given]
    if left_out:
        log.warning(
            "optimizer '%s' was given %d of the model's %d trainable parameters and leaves out %d (e.g. %s): those "
            "are never trained",
            name,
            len(trainable) - len(left_out),
            len(trainable),
            len(left_out),
            ", ".join(left_out[:3]),
        )


def warn_of_loss_parameters(loss_fn: nn.Module, name: str) -> None:
    """A loss's own trainable parameters (a learnable temperature, say) would silently stay as initialised."""
    untrained = [key for key, param in loss_fn.named_parameters() if param.requires_grad]
    if untrained:
        log.warning(
            "loss '%s' has trainable parameters (%s), which nothing trains: the optimizer is given the model's "
            "parameters only; make them buffers, or set requires_grad=False where they are constants",
            name,
            ", ".join(untrained),
        )
