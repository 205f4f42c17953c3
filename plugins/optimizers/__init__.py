"""Built-in optimizers plugin: adam, adamw, sgd (torch's, validated) and lars."""

from __future__ import annotations

import simclr
from simclr.plugins.optimizers.lars import LARSParams, build_lars
from simclr.plugins.optimizers.torch_optimizers import (
    AdamParams,
    AdamWParams,
    SGDParams,
    build_adam,
    build_adamw,
    build_sgd,
)


@simclr.hookimpl
def simclr_register_optimizers(registry: simclr.Registrar) -> None:
    registry.add("adam", build_adam, AdamParams, "Adam (torch.optim.Adam, L2 weight decay), fused where supported")
    registry.add("adamw", build_adamw, AdamWParams, "AdamW: Adam with decoupled weight decay, fused where supported")
    registry.add("sgd", build_sgd, SGDParams, "SGD with momentum / Nesterov, fused where supported")
    registry.add(
        "lars", build_lars, LARSParams, "LARS: momentum SGD with layer-wise trust-ratio scaling (SimCLR's optimizer)"
    )
