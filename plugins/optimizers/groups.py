"""Parameter groups shared by every built-in optimizer: biases and normalisation-layer parameters apart."""

from __future__ import annotations

from typing import Any

import torch

import simclr


def is_bias_or_norm(param: torch.nn.Parameter) -> bool:
    """Biases and the affine parameters of normalisation layers are the model's 0-/1-D parameters."""
    return param.ndim <= 1


def parameter_groups(
    model: torch.nn.Module,
    weight_decay: float,
    exclude_bias_and_norm: bool,
    excluded_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The model's trainable parameters as optimizer param groups.

    With ``exclude_bias_and_norm`` the biases and normalisation parameters (ndim <= 1) form a second group with
    ``weight_decay`` 0 and ``excluded_options`` (e.g. no LARS adaptation); otherwise every parameter is in one group
    with ``weight_decay``. Groups that would be empty are left out; the order follows ``model.parameters()``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise simclr.UserError(
            f"the model ({type(model).__name__}) has no trainable parameters, so there is nothing to optimize; "
            "check that the backbone is not frozen."
        )
    regular = [p for p in params if not (exclude_bias_and_norm and is_bias_or_norm(p))]
    excluded = [p for p in params if exclude_bias_and_norm and is_bias_or_norm(p)]
    groups = [
        {"params": regular, "weight_decay": weight_decay},
        {"params": excluded, "weight_decay": 0.0, **(excluded_options or {})},
    ]
    return [group for group in groups if group["params"]]
