"""Built-in losses plugin: nt_xent, nt_logistic, margin_triplet, and the negative miners."""

from __future__ import annotations

from typing import Any

import simclr
from simclr.plugins.losses.margin_triplet import MarginTripletParams, build_margin_triplet
from simclr.plugins.losses.miners import BUILTIN_MINERS, Miner
from simclr.plugins.losses.nt_logistic import NTLogisticParams, build_nt_logistic
from simclr.plugins.losses.nt_xent import NTXentParams, build_nt_xent


@simclr.hookimpl
def simclr_register_losses(registry: simclr.Registrar) -> None:
    registry.add("nt_xent", build_nt_xent, NTXentParams, "NT-Xent: normalised temperature-scaled cross entropy")
    registry.add(
        "nt_logistic", build_nt_logistic, NTLogisticParams, "NT-Logistic: sigmoid loss on positive/negative pairs"
    )
    registry.add(
        "margin_triplet", build_margin_triplet, MarginTripletParams, "margin triplet loss with a negative miner"
    )


def _miner_factory(miner: Miner) -> Any:
    return lambda params: miner


@simclr.hookimpl
def simclr_register_miners(registry: simclr.Registrar) -> None:
    for name, (miner, description) in BUILTIN_MINERS.items():
        registry.add(name, _miner_factory(miner), simclr.NoParams, description)
