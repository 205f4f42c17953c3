"""adam, adamw and sgd: validated wrappers of torch's optimizers, fused where torch supports it."""

from __future__ import annotations

import functools
from typing import Annotated, Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simclr.plugins.optimizers.groups import parameter_groups

Beta = Annotated[float, Field(ge=0, lt=1)]
AdamT = TypeVar("AdamT", torch.optim.Adam, torch.optim.AdamW)


class AdamParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-3, gt=0, description="base learning rate (before batch-size scaling and schedule)")
    weight_decay: float = Field(1e-6, ge=0, description="L2 penalty added to the gradient")
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="decay rates of the moment estimates")
    eps: float = Field(1e-8, gt=0, description="added to the denominator for numerical stability")
    exclude_bias_and_norm: bool = Field(
        False, description="no weight decay for biases and normalisation parameters (ndim <= 1)"
    )


class AdamWParams(AdamParams):
    weight_decay: float = Field(0.05, ge=0, description="decoupled weight decay")
    exclude_bias_and_norm: bool = Field(
        True, description="no weight decay for biases and normalisation parameters (ndim <= 1)"
    )


class SGDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(0.1, gt=0, description="base learning rate (before batch-size scaling and schedule)")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum factor")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0)")
    weight_decay: float = Field(5e-4, ge=0, description="L2 penalty added to the gradient")
    exclude_bias_and_norm: bool = Field(
        True, description="no weight decay for biases and normalisation parameters (ndim <= 1)"
    )

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDParams:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: true needs momentum > 0; set a momentum (e.g. 0.9) or nesterov: false")
        return self


@functools.cache
def _fused_supported(optimizer_cls: type[torch.optim.Optimizer], device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this torch has a fused ``optimizer_cls`` kernel for ``device``/``dtype``, found by stepping a
    one-element probe: which devices and dtypes are fused changes between torch releases (CPU since 2.4/2.5)."""
    probe = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        optimizer_cls([probe], lr=0.1, fused=True).step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def kernel_options(optimizer_cls: type[torch.optim.Optimizer], groups: list[dict[str, Any]]) -> dict[str, bool]:
    """``fused=True`` when every parameter's device and dtype has a fused kernel; otherwise nothing, so torch
    picks foreach (or the per-tensor loop where foreach is unavailable)."""
    kinds = {(p.device, p.dtype) for group in groups for p in group["params"]}
    if all(_fused_supported(optimizer_cls, device, dtype) for device, dtype in kinds):
        return {"fused": True}
    return {}


def build_adam(params: AdamParams, model: torch.nn.Module) -> torch.optim.Adam:
    return _adam_kind(torch.optim.Adam, params, model)


def build_adamw(params: AdamWParams, model: torch.nn.Module) -> torch.optim.AdamW:
    return _adam_kind(torch.optim.AdamW, params, model)


def _adam_kind(optimizer_cls: type[AdamT], params: AdamParams, model: torch.nn.Module) -> AdamT:
    groups = parameter_groups(model, params.weight_decay, params.exclude_bias_and_norm)
    return optimizer_cls(
        groups, lr=params.lr, betas=params.betas, eps=params.eps, **kernel_options(optimizer_cls, groups)
    )


def build_sgd(params: SGDParams, model: torch.nn.Module) -> torch.optim.SGD:
    groups = parameter_groups(model, params.weight_decay, params.exclude_bias_and_norm)
    return torch.optim.SGD(
        groups,
        lr=params.lr,
        momentum=params.momentum,
        nesterov=params.nesterov,
        **kernel_options(torch.optim.SGD, groups),
    )
