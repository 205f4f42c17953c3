"""The results table of a folder of runs: one row per run directory holding an eval.json (or a failed sweep run, or
a trained run not evaluated yet).

Each row joins the run's eval.json (accuracies in percent), its config.yaml (backbone, loss, optimizer, batch,
epochs), its training.json (epochs trained, train time, images trained on) and, for sweep runs, its sweep.json
(name, order, reported number, status).
:func:`write_report` writes ``report.md``, ``report.csv`` and ``report.png`` (bar chart of linear top-1).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simclr.errors import UserError
from simclr.rundir import CONFIG_FILE, EVAL_FILE, TRAINING_FILE
from simclr.sweep import SWEEP_RECORD, read_record

log = logging.getLogger("simclr")

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
REPORT_PNG = "report.png"
#: the loss parameter shown in the t/m column: the first of these the loss has
TM_PARAMS = ("temperature", "margin")


@dataclass
class ReportFiles:
    markdown: Path
    csv: Path
    png: Path


def _run_dirs(root: Path) -> list[Path]:
    found = {p.parent for p in root.rglob(EVAL_FILE)} | {p.parent for p in root.rglob(TRAINING_FILE)}
    found |= {p.parent for p in root.rglob(SWEEP_RECORD) if read_record(p.parent).get("status") == "failed"}
    return list(found)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing (a run that never checkpointed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise TypeError(f"{path.name} holds a JSON {type(data).__name__}, not an object")
    return data


def _lookup(data: Any, path: str, default: Any = None) -> Any:
    """The value at the dotted ``path`` in ``data``, or ``default`` where a level is missing or is not a mapping
    (a hand-edited or foreign config.yaml); a value that should be a mapping is returned only as one."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data if isinstance(data, dict) or not isinstance(default, dict) else default


def _loss_label(loss: dict[str, Any]) -> tuple[str, Any]:
    """(name with its word-valued params, e.g. ``nt_logistic (sample)``, the temperature or margin)."""
    words = [str(v) for k, v in loss.items() if k != "name" and isinstance(v, str)]
    label = str(loss.get("name", "")) + (f" ({', '.join(words)})" if words else "")
    return label, next((loss[p] for p in TM_PARAMS if p in loss), None)


def _row(run_dir: Path, root: Path) -> dict[str, Any]:
    record = read_record(run_dir)
    config = _read_yaml(run_dir / CONFIG_FILE)
    result = _read_json(run_dir / EVAL_FILE)
    try:  # the row without train time rather than no row: the results are in eval.json
        trained = _read_json(run_dir / TRAINING_FILE)
    except (TypeError, ValueError) as exc:
        log.warning("report: %s: %s is not what simclr writes (%s); no train time shown", run_dir, TRAINING_FILE, exc)
        trained = {}
    relative = run_dir.relative_to(root).as_posix()
    loss_config = _lookup(config, "loss", {})
    loss, tm = _loss_label(loss_config)
    optimizer = _lookup(config, "optimizer", {})
    order = record.get("index")
    seconds, images = trained.get("train_seconds"), trained.get("images")
    row: dict[str, Any] = {
        "run": record.get("name") or (relative if relative != "." else run_dir.resolve().name),
        "dir": relative,
        "path": str(run_dir),  # as reached from the current folder
        "status": "finished" if result else "failed" if record.get("status") == "failed" else "not evaluated",
        "error": "" if result else record.get("error", ""),
        "dataset": result.get("dataset") or _lookup(config, "data.dataset.name", ""),
        "backbone": _lookup(config, "model.backbone.name", ""),
        "loss": loss,
        "loss_params": {k: v for k, v in loss_config.items() if k != "name"},
        "t_m": tm,
        "optimizer": optimizer.get("name", ""),
        "lr": optimizer.get("lr"),
        "batch": _lookup(config, "data.batch_size"),
        "epochs": result.get("epoch", trained.get("epochs", _lookup(config, "train.epochs"))),
        "trained_epochs": trained.get("epochs"),
        "planned_epochs": _lookup(config, "train.epochs"),
        "linear_top1": result.get("linear", {}).get("top1"),
        "linear_top5": result.get("linear", {}).get("top5"),
        "few_label": {k: v.get("top1") for k, v in result.get("few_label", {}).items()},
        "knn_top1": result.get("knn", {}).get("top1"),
        "knn_k": result.get("knn", {}).get("k"),
        "representation": result.get("representation", "backbone") if result else None,
        "baseline_top1": result.get("baseline", {}).get("linear", {}).get("top1"),
        "train_seconds": seconds,
        "images_per_sec": images / seconds if seconds and images is not None else None,
        "order": order if isinstance(order, int | float) and not isinstance(order, bool) else float("inf"),
    }
    if "reported" in record:
        row["reported"] = record["reported"]
    return row


def collect(root: str | Path) -> list[dict[str, Any]]:
    """Every run under ``root`` (recursively; ``root`` itself may be a run), in sweep order then by path."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    rows, skipped = [], 0
    for run_dir in _run_dirs(root):
        try:
            rows.append(_row(run_dir, root))
        except (AttributeError, TypeError, ValueError, KeyError) as exc:  # a damaged or foreign file's shape
            log.warning("report: skipped %s: its %s is not what simclr writes (%s)", run_dir, EVAL_FILE, exc)
            skipped += 1
    if skipped and not rows:
        raise UserError(f"{root}: no {EVAL_FILE} under it that simclr can read ({skipped} skipped, see above)")
    if not rows:
        raise UserError(f"{root}: no {EVAL_FILE} under it; evaluate runs with `simclr eval RUN_DIR` first")
    names = [row["run"] for row in rows]
    for row in rows:  # runs of several sweeps, say: each is told apart by its folder
        if names.count(row["run"]) > 1:
            row["run"] = row["dir"]
    return sorted(rows, key=lambda r: (str(Path(r["dir"]).parent), r["order"], r["dir"]))


def few_label_ks(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({k for row in rows for k in row["few_label"]}, key=int)


# ---- presentation ----------------------------------------------------------------------------------------
def _number(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _distinguishing_params(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per loss label, the params (other than the t/m column's and those named in the label) whose values differ
    between its runs, e.g. a plugin loss's ``tau_plus`` swept over several runs: the table shows them."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_label.setdefault(row["loss"], []).append(row["loss_params"])
    shown: dict[str, list[str]] = {}
    for label, params in by_label.items():
        in_tm_column = {next((key for key in TM_PARAMS if key in p), None) for p in params}
        shown[label] = sorted(
            key
            for key in set().union(*params)
            if key not in in_tm_column and len({json.dumps(p.get(key), sort_keys=True) for p in params}) > 1
        )
    return shown


def _loss_cell(row: dict[str, Any], shown: list[str]) -> str:
    if not shown:
        return row["loss"]
    values = ", ".join(f"{key}={row['loss_params'].get(key)}" for key in shown)
    label = row["loss"]
    return f"{label[:-1]}, {values})" if label.endswith(")") else f"{label} ({values})"


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Column headers and text cells of the results table (what report.md and the terminal show)."""
    ks = few_label_ks(rows)
    distinguishing = _distinguishing_params(rows)
    reported = any(row.get("reported") is not None for row in rows)
    knn_ks = {row["knn_k"] for row in rows if row["knn_k"] is not None}
    knn_header = f"kNN top-1 (k={next(iter(knn_ks))})" if len(knn_ks) == 1 else "kNN top-1"
    probed = any(row["representation"] not in (None, "backbone") for row in rows)
    datasets = len({row["dataset"] for row in rows}) > 1  # runs on different data: say which
    headers = ["run", *(["dataset"] if datasets else []), "backbone", "loss", "t/m", "optimizer", "batch", "epochs"]
    headers += ["probed"] if probed else []  # some runs probe the projection head's output g(h), not h
    headers += ["linear top-1"]
    headers += ["reported top-1"] if reported else []
    headers += ["top-5", *[f"{k}-label top-1" for k in ks], knn_header, "random-init top-1"]
    headers += ["train time", "images/s"]
    cells = []
    for row in rows:
        optimizer = row["optimizer"] + (f" {row['lr']:g}" if isinstance(row["lr"], int | float) else "")
        loss = _loss_cell(row, distinguishing[row["loss"]])
        line = [row["run"], *([row["dataset"]] if datasets else []), row["backbone"], loss]
        line += ["" if row["t_m"] is None else str(row["t_m"])]
        epochs = str(row["epochs"] or "")
        if _unfinished(row):
            epochs += f" of {row['planned_epochs']}"
        if _stale(row):
            epochs += f" (trained {row['trained_epochs']})"
        line += [optimizer, str(row["batch"] or ""), epochs]
        if probed:
            line += [{"backbone": "h", "projection": "g(h)"}.get(row["representation"], row["representation"] or "")]
        line += [row["status"] if row["status"] != "finished" else _number(row["linear_top1"])]
        if reported:
            line += [_number(row.get("reported")) or "–"]
        line += [_number(row["linear_top5"]), *[_number(row["few_label"].get(k)) for k in ks]]
        knn = _number(row["knn_top1"])
        if knn and len(knn_ks) > 1:  # runs evaluated with different k: each cell says its own
            knn += f" (k={row['knn_k']})"
        line += [knn, _number(row["baseline_top1"])]
        line += [_duration(row["train_seconds"]), _number(row["images_per_sec"], 0)]
        cells.append(line)
    return headers, cells


def markdown(rows: list[dict[str, Any]]) -> str:
    headers, cells = table(rows)
    right = {"t/m", "batch", "epochs", "train time", "images/s"} | {h for h in headers if "top-" in h}
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if h in right else "---" for h in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in cells]
    notes = [f"- {note}" for note in report_notes(rows)]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def report_notes(rows: list[dict[str, Any]]) -> list[str]:
    """What the table leaves out, run by run, with the command that deals with it: failures, runs that stopped
    short of their epochs, runs not evaluated (or evaluated before they trained on)."""
    notes = []
    for row in rows:
        run, path, epochs, planned = row["run"], row["path"], row["epochs"], row["planned_epochs"]
        if row["error"]:
            notes.append(f"{run} failed: {row['error']}")
        elif _unfinished(row):
            evaluated = f"was evaluated at epoch {epochs}" if row["status"] == "finished" else f"stopped after {epochs}"
            notes.append(
                f"{run} {evaluated} of the {planned} epochs it is configured for: `simclr train --resume {path}` "
                "trains it on (a sweep's run: run the sweep again)"
            )
        elif row["status"] == "not evaluated":
            notes.append(f"{run} has no evaluation yet{_trained(row['trained_epochs'])}: `simclr eval {path}`")
        elif _stale(row):
            notes.append(
                f"{run} was evaluated at epoch {epochs} and has since trained to epoch {row['trained_epochs']}: "
                f"`simclr eval {path}` updates it"
            )
        elif row["status"] == "failed":
            notes.append(f"{run} failed: see its run directory")
    return notes


def _trained(epochs: Any) -> str:
    if not isinstance(epochs, int):
        return ""
    return f" (trained {epochs} epoch{'' if epochs == 1 else 's'})"


def _unfinished(row: dict[str, Any]) -> bool:
    """Whether the run trained (and was evaluated at) fewer epochs than its config asks for: it stopped short."""
    trained = max((e for e in (row["epochs"], row["trained_epochs"]) if isinstance(e, int)), default=None)
    planned = row["planned_epochs"]
    return row["status"] != "failed" and trained is not None and isinstance(planned, int) and trained < planned


def _stale(row: dict[str, Any]) -> bool:
    """Whether the run trained on after its eval.json was written (a resume with more epochs)."""
    evaluated, trained = row["epochs"], row["trained_epochs"]
    return row["status"] == "finished" and isinstance(evaluated, int) and trained is not None and trained > evaluated


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    ks = few_label_ks(rows)
    reported = ["reported"] if any(row.get("reported") is not None for row in rows) else []
    fields = ["run", "dir", "status", "dataset", "backbone", "loss", "loss_params", "t_m", "optimizer", "lr"]
    fields += ["batch", "epochs", "trained_epochs", "planned_epochs"]
    fields += ["representation", "linear_top1", *reported, "linear_top5", *[f"few_label_{k}_top1" for k in ks]]
    fields += ["knn_top1", "knn_k", "baseline_top1", "train_seconds", "images_per_sec", "error"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            flat = {**row, **{f"few_label_{k}_top1": row["few_label"].get(k) for k in ks}}
            flat["loss_params"] = json.dumps(row["loss_params"], sort_keys=True)
            writer.writerow({key: "" if flat.get(key) is None else flat[key] for key in fields})


def chart_axis_start(rows: list[dict[str, Any]]) -> int:
    """The decade at least 5 points below every number the chart shows (0 at the lowest)."""
    keys = ("linear_top1", "baseline_top1", "reported")
    shown = [row[key] for row in rows for key in keys if row.get(key) is not None]
    return max(0, 10 * int((min(shown) - 5) // 10)) if shown else 0


def write_chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars of linear top-1 per run, the random-init baseline and the reported number as markers; the
    axis starts at :func:`chart_axis_start`, so that close results can be told apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["run"] for row in rows]
    ys = list(range(len(rows)))[::-1]
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.35 * len(rows)))
    low = chart_axis_start(rows)
    ax.barh(ys, [row["linear_top1"] or 0.0 for row in rows], color="tab:blue", label="linear top-1")
    for row, y in zip(rows, ys, strict=True):
        if row["status"] != "finished":
            ax.text(low + 1, y, row["status"], va="center", color="tab:red" if row["status"] == "failed" else "gray")
        elif row["linear_top1"] is not None:
            ax.text(low + 1, y, f"{row['linear_top1']:.1f}", va="center", color="white", fontsize="small")
    markers = (("baseline_top1", "|", "tab:orange", "random init"), ("reported", "D", "tab:red", "reported"))
    for key, marker, color, label in markers:
        points = [(row[key], y) for row, y in zip(rows, ys, strict=True) if row.get(key) is not None]
        if points:
            xs, marked = zip(*points, strict=True)
            ax.scatter(xs, marked, marker=marker, color=color, s=120, linewidths=3, zorder=3, label=label)
    ax.set_yticks(ys, names)
    ax.set_xlim(low, 100)
    ax.set_xlabel("linear top-1 (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(root: str | Path, rows: list[dict[str, Any]] | None = None) -> ReportFiles:
    """Write report.md, report.csv and report.png into ``root`` (from :func:`collect` unless ``rows`` given)."""
    root = Path(root)
    rows = collect(root) if rows is None else rows
    files = ReportFiles(root / REPORT_MD, root / REPORT_CSV, root / REPORT_PNG)
    files.markdown.write_text(markdown(rows))
    write_csv(rows, files.csv)
    write_chart(rows, files.png)
    return files
