"""LARS: layer-wise adaptive rate scaling (You et al., 2017), as used by SimCLR and BYOL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field

from simclr.plugins.optimizers.groups import parameter_groups


class LARSParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1.0, gt=0, description="base learning rate (before batch-size scaling and schedule)")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum factor")
    weight_decay: float = Field(1e-6, ge=0, description="L2 penalty added to the gradient before adaptation")
    trust_coefficient: float = Field(0.001, gt=0, description="η: the trust ratio is η·‖w‖/(‖g‖ + eps)")
    eps: float = Field(1e-8, ge=0, description="added to ‖g‖ in the trust ratio's denominator")
    exclude_bias_and_norm: bool = Field(
        True,
        description="biases and normalisation parameters (ndim <= 1) get neither weight decay nor "
        "trust-ratio adaptation (plain momentum SGD)",
    )
    clip: bool = Field(False, description="clip the trust ratio at 1, so no layer's lr exceeds the global lr")


#: marks a state dict whose momentum buffers hold lr·trust·g (older ones held trust·g)
LR_IN_MOMENTUM = "lr_in_momentum"


class LARS(torch.optim.Optimizer):
    """Momentum SGD whose step for each adapted tensor w is scaled by its trust ratio.

    For every tensor w with gradient g, in a group with learning rate lr::

        g     ← g + weight_decay·w
        trust ← η·‖w‖ / (‖g‖ + eps)     if the group adapts, ‖w‖ > 0 and ‖g‖ > 0;   1 otherwise
        trust ← min(trust, 1)            with clip
        v     ← momentum·v + lr·trust·g  (v starts at 0)
        w     ← w − v

    The rule of the SimCLR and BYOL reference implementations (their "classic momentum"): lr enters the buffer,
    so a step already taken keeps the lr it was taken with. torch.optim.SGD multiplies the buffer by lr instead;
    the two agree while lr is constant, but under a warm-up, or when a resumed run's schedule raises lr, SGD's
    form rescales the whole accumulated velocity at once. The clip keeps the layer's lr, lr·trust, at or below the
    global lr; apex's LARC clip instead caps η·‖w‖/‖g‖ itself at the global lr. A group with ``trust_adaptation``
    false and weight_decay 0 is momentum SGD in the same form.

    The step uses tensor ops only (the zero-norm guard is a ``torch.where``), so it never waits for the device.
    """

    def __init__(
        self,
        params: list[dict] | list[torch.Tensor],
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
        clip: bool = False,
        trust_adaptation: bool = True,
    ):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "clip": clip,
            "trust_adaptation": trust_adaptation,
            LR_IN_MOMENTUM: True,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError("LARS does not support sparse gradients")
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            if group["trust_adaptation"]:
                grads = torch._foreach_mul(grads, self._trust_ratios(params, grads, group))
            buffers = [self._momentum_buffer(p) for p in params]
            torch._foreach_mul_(buffers, group["momentum"])
            torch._foreach_add_(buffers, grads, alpha=group["lr"])
            torch._foreach_add_(params, buffers, alpha=-1.0)
        return loss

    @staticmethod
    def upgrade_state_dict(state_dict: dict) -> dict:
        """``state_dict`` in this LARS's format. One saved before lr entered the buffer (its groups lack
        ``lr_in_momentum``) held v = trust·g, used as w ← w − lr·v, so its buffers become lr·v with the lr they
        were last used with (the saved group's). The engine calls this before it puts the config's group options
        over the saved ones on resume; ``load_state_dict`` calls it too."""
        if all(LR_IN_MOMENTUM in group for group in state_dict["param_groups"]):
            return state_dict
        state = dict(state_dict["state"])
        groups = []
        for group in state_dict["param_groups"]:
            if LR_IN_MOMENTUM not in group:
                for index in group["params"]:
                    saved = state.get(index, {})
                    if "momentum_buffer" in saved:
                        state[index] = {**saved, "momentum_buffer": saved["momentum_buffer"] * group["lr"]}
                group = {**group, LR_IN_MOMENTUM: True}
            groups.append(group)
        return {**state_dict, "state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(self.upgrade_state_dict(state_dict))

    @staticmethod
    def _trust_ratios(params: list[torch.Tensor], grads: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
        """One 0-d tensor per parameter: η·‖w‖/(‖g‖ + eps), or 1 where either norm is 0 (clipped at 1 with clip).

        Computed on stacked norms, one batch per device, so a step costs a handful of kernels, not several per
        tensor.
        """
        by_device: dict[torch.device, list[int]] = defaultdict(list)
        for i, p in enumerate(params):
            by_device[p.device].append(i)
        ratios: dict[int, torch.Tensor] = {}
        for indices in by_device.values():
            w_norm = torch.stack(torch._foreach_norm([params[i] for i in indices])).float()
            g_norm = torch.stack(torch._foreach_norm([grads[i] for i in indices])).float()
            trust = group["trust_coefficient"] * w_norm / (g_norm + group["eps"])
            trust = torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
            if group["clip"]:
                trust = trust.clamp(max=1.0)
            ratios.update(zip(indices, trust.unbind(), strict=True))
        return [ratios[i] for i in range(len(params))]

    def _momentum_buffer(self, param: torch.Tensor) -> torch.Tensor:
        state = self.state[param]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state["momentum_buffer"]


def build_lars(params: LARSParams, model: torch.nn.Module) -> LARS:
    groups = parameter_groups(
        model, params.weight_decay, params.exclude_bias_and_norm, excluded_options={"trust_adaptation": False}
    )
    return LARS(
        groups,
        lr=params.lr,
        momentum=params.momentum,
        trust_coefficient=params.trust_coefficient,
        eps=params.eps,
        clip=params.clip,
    )
