"""`simclr eval RUN_DIR|CHECKPOINT [--dataset NAME] [--set ...] [--device D] [--labels-per-class K ...] ...`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from simclr.cli.config_cmd import add_set_argument
from simclr.cli.output import err, out, print_json

if TYPE_CHECKING:
    from simclr.data import ImageDataset


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="linear, few-label and kNN evaluation of a trained run",
        description="Probe the frozen backbone features of a run (or checkpoint) on the dataset's labelled splits: "
        "logistic regression (linear probe), the same with K labels per class (few-label), and weighted kNN, "
        "beside a randomly initialised backbone of the same architecture. Accuracies are percentages. Writes "
        "eval.json into the run directory (eval-<checkpoint>.json for a checkpoint other than the last, "
        "...-<dataset>.json on another dataset than the run's, ...-<size>px.json on its own at another image "
        "size, ...-<representation>.json for another representation "
        "than its config's) and caches features under its features/ folder.",
    )
    parser.add_argument("target", type=Path, metavar="RUN_DIR|CHECKPOINT", help="run directory or .pt checkpoint")
    parser.add_argument("--dataset", metavar="NAME", help="evaluate on another dataset (its default params)")
    add_set_argument(parser, example="eval.knn_k=20 (data.*, eval.* and train.seed only)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--labels-per-class",
        dest="ks",
        nargs="+",
        type=_positive(int),
        metavar="K",
        help="few-label probe sizes (default: eval.labels_per_class)",
    )
    parser.add_argument("--knn-k", type=_positive(int), metavar="K", help="kNN neighbours (default: eval.knn_k)")
    parser.add_argument("--C", dest="C", type=_positive(float), help="inverse L2 strength of the linear probe")
    parser.add_argument("--max-iter", type=_positive(int), metavar="N", help="L-BFGS iterations of the probe")
    parser.add_argument(
        "--probe", dest="backend", choices=["sklearn", "torch"], help="scikit-learn lbfgs or torch L-BFGS (on --device)"
    )
    parser.add_argument(
        "--representation",
        choices=["backbone", "projection"],
        help="probe the backbone's features h (default: eval.representation) or the projection head's output g(h)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-init baseline")
    parser.add_argument("--no-cache", action="store_true", help="extract features again and do not store them")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simclr.evaluate import evaluate_run, resolve_target

    result = evaluate_run(
        args.target,
        dataset=args.dataset,
        overrides=args.overrides,
        device=args.device,
        ks=args.ks,
        knn_k=args.knn_k,
        baseline=False if args.no_baseline else None,
        C=args.C,
        max_iter=args.max_iter,
        backend=args.backend,
        representation=args.representation,
        progress=not args.no_progress,
        cache=not args.no_cache,
    )
    if args.json:
        print_json(result)
    else:
        print_report(result, resolve_target(args.target)[1] / result["file"])
    return 0


def evaluate_and_report(
    run_dir: Path, device: str | None = None, built: tuple[dict[str, Any], ImageDataset] | None = None
) -> dict[str, Any]:
    """Evaluate a run with its config's eval settings and print the table (what `simclr train` ends with);
    ``built``: the trainer's dataset and its config section (see :func:`simclr.evaluate.evaluate_run`)."""
    from simclr.evaluate import evaluate_run

    result = evaluate_run(run_dir, device=device or "auto", built=built)
    print_report(result, run_dir / result["file"])
    return result


def report_rows(result: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(metric, key path, spread key) of every accuracy in ``result``: linear, few-label per K, kNN."""
    rows = [("linear top-1", "linear.top1", None)]
    if "top5" in result["linear"]:
        rows.append(("linear top-5", "linear.top5", None))
    for k in result["few_label"]:
        label = "label" if k == "1" else "labels"
        rows.append((f"{k} {label}/class top-1", f"few_label.{k}.top1", f"few_label.{k}.std"))
    rows.append((f"kNN top-1 (k={result['knn']['k']})", "knn.top1", None))
    return rows


def _get(data: dict[str, Any], path: str) -> float:
    for part in path.split("."):
        data = data[part]
    return data  # type: ignore[return-value]


def _cell(data: dict[str, Any], path: str, spread: str | None) -> str:
    text = f"{_get(data, path):.2f}"
    return f"{text} ± {_get(data, spread):.2f}" if spread else text


def print_report(result: dict[str, Any], written: Path) -> None:
    baseline = result.get("baseline")
    of = {"backbone": "features", "projection": "projection-head outputs"}
    table = Table(
        title=f"{result['dataset']} at {result['image_size']} px: accuracy (%) of frozen "
        f"{of[result['representation']]}, epoch {result['epoch']}, {result['feature_dim']}-d",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column("pre-trained", justify="right")
    if baseline:
        table.add_column("random init", justify="right")
        table.add_column("gain", justify="right")
    for label, path, spread in report_rows(result):
        cells = [label, _cell(result, path, spread)]
        if baseline:
            gain = _get(result, path) - _get(baseline, path)
            cells += [_cell(baseline, path, spread), f"{gain:+.2f}"]
        table.add_row(*cells)
    out.print(table)
    err.print(
        f"checkpoint {result['checkpoint']} · {result['num_train']} train / {result['num_test']} test images · "
        f"{result['seconds']:.1f} s · wrote {written}",
        highlight=False,
    )
