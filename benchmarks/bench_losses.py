"""Microbenchmark: forward + backward time of each loss at N in {128, 512, 1024}, D = 128.

    python benchmarks/bench_losses.py [--repeats 7] [--threads T] [--clock wall|cpu] [--devices cpu cuda]

Prints the median over repeats (after one warm-up call) in milliseconds. CUDA is included when available.
``--clock cpu`` measures the process's CPU time instead of wall time: with ``--threads 1`` it is the compute
time of a step, unaffected by other processes competing for the cores (CPU devices only).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import simclr

LOSSES = [
    ("nt_xent", {}),
    ("nt_logistic", {"balance": "weight"}),
    ("nt_logistic", {"balance": "sample"}),
    ("margin_triplet", {"miner": "semi_hard"}),
    ("margin_triplet", {"miner": "hardest"}),
]
SIZES = [128, 512, 1024]


def time_step(
    loss: torch.nn.Module, n: int, dim: int, device: torch.device, repeats: int, clock: Callable[[], float]
) -> float:
    """Median milliseconds of one forward + backward on fresh [n, dim] projections."""
    z1 = torch.randn(n, dim, device=device, requires_grad=True)
    z2 = torch.randn(n, dim, device=device, requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = clock()
        loss(z1, z2).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(clock() - start)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dim", type=int, default=128)
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", default=default_devices)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, D={args.dim}, median {args.clock} ms")
    for device in map(torch.device, args.devices):
        print(f"\n{device}:")
        print(f"{'loss':40s}" + "".join(f"{f'N={n}':>10s}" for n in SIZES))
        for name, params in LOSSES:
            loss = simclr.create("loss", name, **params)
            label = name + "".join(f" {k}={v}" for k, v in params.items())
            cells = [time_step(loss, n, args.dim, device, args.repeats, clock) for n in SIZES]
            print(f"{label:40s}" + "".join(f"{ms:10.2f}" for ms in cells))


if __name__ == "__main__":
    main()
