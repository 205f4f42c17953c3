"""`simclr sweep` and `simclr report` end to end at tiny size: interruption and re-run, validation before any run,
parallel subprocesses, and the report of fabricated runs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

import simclr
from simclr.cli.main import main
from simclr.config import resolved_dict
from simclr.plugin_manager import plugin_system
from simclr.sweep import (
    SweepInterrupted,
    check_run_dirs,
    child_command,
    load_sweep,
    run_combination,
    run_parallel,
    run_state,
)

pytestmark = pytest.mark.slow

BASE = {
    "name": "base",
    "data": {"dataset": {"name": "synthetic", "image_size": 16, "count": 64, "num_classes": 4}, "batch_size": 32},
    "model": {"backbone": {"name": "small_resnet", "width": 4}, "projection": {"out_dim": 8}},
    "loss": {"name": "nt_xent", "temperature": 0.5},
    "optimizer": {"name": "adam", "lr": 0.001},
    "schedule": {"warmup_epochs": 0},
    "train": {
        "epochs": 1,
        "device": "cpu",
        "log_every": 1,
        "max_steps_per_epoch": 2,
        "callbacks": [{"name": "metrics_jsonl"}],
    },
    "eval": {"labels_per_class": [1], "few_label_draws": 1, "knn_k": 3, "baseline": False, "linear": {"max_iter": 50}},
}


def write_sweep(folder: Path, body: str, base: dict | None = None) -> Path:
    (folder / "base.yaml").write_text(yaml.safe_dump(base or BASE))
    path = folder / "sweep.yaml"
    path.write_text(body)
    return path


GRID = """base: base.yaml
grid:
  loss.temperature: [0.2, 0.5]
  optimizer.lr: [0.001, 0.01]
"""
GRID_NAMES = [
    "temperature=0.2,lr=0.001",
    "temperature=0.2,lr=0.01",
    "temperature=0.5,lr=0.001",
    "temperature=0.5,lr=0.01",
]


class SigintInRun:
    """Sends this process SIGINT when run ``name`` logs step 1 (as Ctrl-C would)."""

    def __init__(self, name: str):
        self.name = name

    @simclr.hookimpl
    def simclr_on_log(self, run, record):
        if run.dir.name == self.name and record["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupted_sweep_resumes_and_skips_what_finished(tmp_path, capsys):
    sweep = write_sweep(tmp_path, GRID)
    out = tmp_path / "out"
    plugin_system().register_object(SigintInRun(GRID_NAMES[1]), "sigint-in-run-2")
    try:
        assert main(["sweep", str(sweep), "--out", str(out), "--no-progress"]) == 130
    finally:
        plugin_system().manager.unregister(name="sigint-in-run-2")
    # the command to run again is the one given, with the options that say what and where
    assert f"run `simclr sweep {sweep} --out {out}` again to continue" in " ".join(capsys.readouterr().err.split())
    first, second = out / GRID_NAMES[0], out / GRID_NAMES[1]
    assert (first / "eval.json").is_file() and json.loads((first / "sweep.json").read_text())["status"] == "trained"
    assert (second / "checkpoints" / "last.pt").is_file() and not (second / "eval.json").exists()
    assert not (out / GRID_NAMES[2]).exists() and not (out / GRID_NAMES[3]).exists()
    untouched = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (first / "eval.json", first / "metrics.jsonl")}
    second_before = (second / "metrics.jsonl").read_text()

    # again, asking for parallel GPUs on this CPU-only machine: it says so and runs one after another
    assert main(["sweep", str(sweep), "--out", str(out), "--no-progress", "--parallel-gpus", "2"]) == 0
    assert "no GPU is visible" in capsys.readouterr().err
    for path, (mtime, content) in untouched.items():
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == content, f"{path} was redone"
    assert (second / "metrics.jsonl").read_text().startswith(second_before)  # resumed in place, not restarted
    records = [json.loads(line) for line in (second / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "step"] == [1, 2]  # step 1 was not trained twice
    report = (out / "report.md").read_text().splitlines()
    assert len(report) == 2 + 4
    assert [line.split(" | ")[0].lstrip("| ") for line in report[2:]] == GRID_NAMES
    assert ["temperature=0.5,lr=0.01", "small_resnet", "nt_xent", "0.5", "adam 0.01"] == report[5].strip("| ").split(
        " | "
    )[:5]
    with open(out / "report.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4

    # more epochs for every run: each resumes where it ended, trains on and is evaluated again
    eval_before = (first / "eval.json").read_text()
    assert main(["sweep", str(sweep), "--out", str(out), "--no-progress", "--set", "train.epochs=2"]) == 0
    for name in GRID_NAMES:
        records = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records if r["type"] == "epoch"] == [0, 1], name  # epoch 0 not trained again
        assert json.loads((out / name / "eval.json").read_text())["epoch"] == 2
    assert (first / "eval.json").read_text() != eval_before
    # an eval.json of an earlier checkpoint (the evaluation was interrupted after training on) is not current
    stale = {**json.loads(eval_before), "epoch": 1}
    (first / "eval.json").write_text(json.dumps(stale))
    assert main(["sweep", str(sweep), "--out", str(out), "--no-progress", "--set", "train.epochs=2"]) == 0
    assert json.loads((first / "eval.json").read_text())["epoch"] == 2
    assert main(["sweep", str(sweep), "--out", str(out), "--set", "train.epochs=1"]) == 2  # fewer: refused
    message = " ".join(capsys.readouterr().err.split())
    assert "is configured for train.epochs=2, more than the 1 asked now, and a run cannot train fewer" in message
    assert "ask for train.epochs=2 (or more) with --set or in the sweep file's set: list" in message
    written = yaml.safe_load(sweep.read_text())  # done as the message says, the sweep is complete
    sweep.write_text(yaml.safe_dump({**written, "set": [*written.get("set", []), "train.epochs=2"]}))
    assert main(["sweep", str(sweep), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((first / "eval.json").read_text())["epoch"] == 2

    # a changed setting under an existing run directory is refused before anything runs
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "data": {**BASE["data"], "batch_size": 16}}))
    assert main(["sweep", str(sweep), "--out", str(out), "--set", "train.epochs=2"]) == 2
    message = capsys.readouterr().err
    assert "started with another configuration" in message and "data.batch_size" in message

    # a run whose checkpoints were removed after training cannot train on: refused before anything runs
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    shutil.rmtree(first / "checkpoints")
    assert main(["sweep", str(sweep), "--out", str(out), "--set", "train.epochs=3"]) == 2
    message = capsys.readouterr().err
    assert f"{first} trained 2 epochs but its checkpoints were removed, so it cannot train on to 3" in message

    # a damaged checkpoint stops the sweep with a message naming it, not a traceback
    checkpoint = second / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    assert main(["sweep", str(sweep), "--out", str(out), "--set", "train.epochs=2"]) == 2
    message = capsys.readouterr().err
    assert f"{checkpoint}: not a readable checkpoint" in message and "Traceback" not in message


def test_a_sweep_evaluates_on_the_device_it_was_asked_for_not_the_one_training_used(tmp_path, monkeypatch):
    """No --device: each run trains on its train.device (cpu here) and is evaluated on `auto`, as `simclr eval`
    would be (on a GPU machine, a run trained with train.device: cpu is still probed on the GPU)."""
    import simclr.evaluate

    asked = []
    monkeypatch.setattr(simclr.evaluate, "evaluate_run", lambda run_dir, device, progress: asked.append(device))
    sweep = load_sweep(write_sweep(tmp_path, "base: base.yaml\ngrid:\n  loss.temperature: [0.2]\n"), out=tmp_path)
    combo = sweep.combinations[0]
    assert run_combination(sweep, combo, show_progress=False) == "finished"
    assert asked == ["auto"]
    # the stand-in wrote no eval.json, so a re-run evaluates; so does one whose eval.json is damaged
    assert run_state(combo, evaluate=True) == "evaluate"
    (combo.run_dir / "eval.json").write_bytes(b"\xff\xfe{")
    assert run_state(combo, evaluate=True) == "evaluate"
    (combo.run_dir / "eval.json").unlink()
    (combo.run_dir / "eval.json").mkdir()
    assert run_state(combo, evaluate=True) == "evaluate"
    (combo.run_dir / "eval.json").rmdir()
    (combo.run_dir / "eval.json").write_text(json.dumps({"epoch": 1}))
    assert run_state(combo, evaluate=True) == "finished"


def test_a_rerun_brings_finished_runs_records_up_to_date_with_the_sweep_file(tmp_path):
    """`reported:` numbers added, and runs reordered, after the runs trained: the report follows the file, also for
    the runs --only leaves out (both runs failed before, so the re-run skips them and exits 1)."""
    runs = "  - {name: a, set: [loss.temperature=0.2]}\n  - {name: b, set: [loss.temperature=0.3]}\n"
    body = "base: base.yaml\nruns:\n" + runs
    sweep = load_sweep(write_sweep(tmp_path, body), out=tmp_path / "out")
    for combo in sweep.combinations:
        combo.run_dir.mkdir(parents=True)
        (combo.run_dir / ".simclr-run").touch()
        (combo.run_dir / "config.yaml").write_text(yaml.safe_dump(resolved_dict(combo.experiment)))
        record = {"name": combo.name, "index": combo.index, "reported": None, "status": "failed", "error": "nan"}
        (combo.run_dir / "sweep.json").write_text(json.dumps(record))
    edited = body.replace("{name: a,", "{name: a, reported: 91.5,").split("\n")
    edited[2], edited[3] = edited[3], edited[2]  # b first now
    sweep = load_sweep(write_sweep(tmp_path, "\n".join(edited)), out=tmp_path / "out")
    assert main(["sweep", str(sweep.path), "--out", str(tmp_path / "out"), "--only", "b", "--no-report"]) == 1
    a, b = (json.loads((tmp_path / "out" / name / "sweep.json").read_text()) for name in "ab")
    assert (a["index"], a["reported"], b["index"], b["reported"]) == (1, 91.5, 0, None)
    assert a["status"] == b["status"] == "failed" and a["error"] == "nan"  # how each went is kept


def test_a_run_made_before_a_setting_existed_is_still_the_same_configuration(tmp_path):
    """A setting added to simclr later (a new param with its default) is absent from older runs' config.yaml:
    a re-run of their sweep resumes or skips them rather than calling them another configuration."""
    sweep = load_sweep(write_sweep(tmp_path, "base: base.yaml\ngrid:\n  loss.temperature: [0.2]\n"), out=tmp_path)
    combo = sweep.combinations[0]
    stored = resolved_dict(combo.experiment)
    del stored["data"]["dataset"]["seed"]  # as if synthetic's seed param were new
    combo.run_dir.mkdir()
    (combo.run_dir / ".simclr-run").touch()
    (combo.run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    check_run_dirs(sweep, sweep.combinations)  # no error
    stored["model"]["sync_batchnorm"] = False  # the default before global BN became it: no effect in one process
    (combo.run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    check_run_dirs(sweep, sweep.combinations)  # no error
    stored["data"]["dataset"]["count"] = 128  # a real change still is one
    (combo.run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(simclr.ConfigError, match="differs at data.dataset.count"):
        check_run_dirs(sweep, sweep.combinations)


def test_a_typo_in_the_last_combination_fails_before_any_run(tmp_path, capsys):
    body = """base: base.yaml
runs:
  - name: a
    set: [loss.temperature=0.1]
  - name: b
    set: [optimizer.lr=0.01]
  - name: c
    set:
      - loss.temperatur=0.5
"""
    sweep = write_sweep(tmp_path, body)
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert f"{sweep}:9 (run c): loss.temperatur: unknown key" in message
    assert not out.exists()


def test_sweep_file_mistakes_are_said_where_they_are(tmp_path, capsys):
    cases = {
        'base: base.yaml\nruns:\n  - {name: "a\\n"}\n': ":3: runs.0.name: 'a\\n' cannot name a run",
        "base: base.yaml\ngrid: {}\n": ":2: grid: is empty; give it KEY.PATH: [values] entries",
        "base: missing.yaml\ngrid:\n  loss.temperature: [0.1]\n": ":1 (run temperature=0.1): base: ",
        "base: base.yaml\nruns:\n  - {name: b/c}\n": ":3: runs.0.name: 'b/c' cannot name a run: it names the",
    }
    for body, expected in cases.items():
        sweep = write_sweep(tmp_path, body)
        assert main(["sweep", str(sweep), "--dry-run"]) == 2
        assert f"{sweep}{expected}" in " ".join(capsys.readouterr().err.split())
    assert main(["sweep", str(tmp_path), "--dry-run"]) == 2
    assert "is a directory, expected a sweep YAML file" in capsys.readouterr().err
    sweep = write_sweep(tmp_path, GRID)
    (tmp_path / "afile").write_text("")
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "afile"), "--dry-run"]) == 2
    assert "afile is a file, not a folder for the sweep's runs" in capsys.readouterr().err
    assert main(["sweep", str(sweep), "--only", "", "--dry-run"]) == 2
    assert "no run called ''; the runs are: temperature=0.2,lr=0.001" in capsys.readouterr().err
    # --device is checked as a name only: a sweep for a GPU machine validates on one without
    assert main(["sweep", str(sweep), "--device", "cuda", "--dry-run"]) == 0


def test_a_value_the_sweep_file_gives_a_run_cannot_be_replaced_behind_its_back(tmp_path, capsys):
    """A run's own grid value or set: entry replaced by --set or by a later entry (at its key, at a section above
    it, or inside the section it gives) would train something other than its name says: refused, at the replacing
    entry."""
    sweep = write_sweep(tmp_path, GRID)
    assert main(["sweep", str(sweep), "--set", "loss.temperature=0.9", "--dry-run"]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert (
        "--set loss.temperature=0.9 (every run): loss.temperature: replaces loss.temperature, which the run's"
        in message
    )
    assert main(["sweep", str(sweep), "--set", "loss={name: nt_logistic}", "--dry-run"]) == 2
    assert "loss: replaces loss.temperature" in capsys.readouterr().err
    assert main(["sweep", str(sweep), "--set", "loss.name=nt_logistic", "--dry-run"]) == 0  # beside it: fine
    capsys.readouterr()
    # inside a section the grid gives, and a key written with spaces, are the same key
    sections = write_sweep(tmp_path, "base: base.yaml\ngrid:\n  loss: [{name: nt_xent, temperature: 0.1}]\n")
    assert main(["sweep", str(sections), "--set", "loss. temperature=0.9", "--dry-run"]) == 2
    assert "loss.temperature: replaces loss.temperature, which" in capsys.readouterr().err
    assert main(["sweep", str(sections), "--set", "loss.name=nt_logistic", "--dry-run"]) == 2
    assert "loss.name: replaces loss.name, which" in capsys.readouterr().err
    assert main(["sweep", str(sections), "--set", "optimizer.lr=0.01", "--dry-run"]) == 0
    capsys.readouterr()
    clash = write_sweep(
        tmp_path, "base: base.yaml\nruns:\n  - name: a\n    set: [loss.temperature=0.3, 'loss={name: nt_xent}']\n"
    )
    assert main(["sweep", str(clash), "--dry-run"]) == 2
    assert f"{clash}:4 (run a): loss: replaces loss.temperature" in capsys.readouterr().err


def test_two_runs_of_the_same_experiment_are_warned_of(tmp_path, caplog):
    grid = write_sweep(tmp_path, "base: base.yaml\ngrid:\n  loss.temperature: [1, 1.0, 0.5]\n")
    with caplog.at_level("WARNING", logger="simclr"):
        assert main(["sweep", str(grid), "--dry-run"]) == 0
    assert f"{grid}:2: run temperature=1.0 trains the same experiment as run temperature=1" in caplog.text
    caplog.clear()
    run = "  - {name: NAME, set: [loss.temperature=0.2]}\n"
    listed = write_sweep(tmp_path, "base: base.yaml\nruns:\n" + run.replace("NAME", "a") + run.replace("NAME", "b"))
    with caplog.at_level("WARNING", logger="simclr"):
        assert main(["sweep", str(listed), "--dry-run"]) == 0
    assert f"{listed}:4: run b trains the same experiment as run a" in caplog.text
    caplog.clear()
    seeds = write_sweep(tmp_path, "base: base.yaml\ngrid:\n  train.seed: [0, 1]\n")
    with caplog.at_level("WARNING", logger="simclr"):
        assert main(["sweep", str(seeds), "--dry-run"]) == 0
    assert "same experiment" not in caplog.text  # another seed is another experiment


def test_sweep_file_errors_point_at_their_line(tmp_path, capsys):
    body = """base: base.yaml
grid:
  loss.temperature: [0.5, -1]
epochs: 3
"""
    sweep = write_sweep(tmp_path, body)
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert f"{sweep}:4: epochs: unknown key" in capsys.readouterr().err
    sweep.write_text(body.replace("epochs: 3\n", ""))
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert f"{sweep}:3 (run temperature=-1): loss.temperature:" in capsys.readouterr().err
    sweep.write_text("base: base.yaml\nruns:\n  - {name: a}\n  - {name: a}\ngrid: {loss.temperature: [1]}\n")
    assert main(["sweep", str(sweep)]) == 2
    assert "either grid" in capsys.readouterr().err
    sweep.write_text("base: base.yaml\nruns:\n  - name: a\n  - name: b\n  - name: a\n")
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"{sweep}:5: runs.2.name: 'a' is the name of run 0 too; run names must be unique" in message
    assert not (tmp_path / "out").exists()


def test_one_process_per_gpu(tmp_path):
    """The --parallel-gpus path, with two pretend GPUs: each child sees CUDA_VISIBLE_DEVICES=<its GPU>, which on
    this CPU-only machine means no GPU, so it trains on the CPU."""
    sweep = load_sweep(write_sweep(tmp_path, GRID.replace("[0.001, 0.01]", "[0.001]")), out=tmp_path / "out")
    states = run_parallel(
        sweep, sweep.combinations, ["0", "1"], lambda combo: child_command(sweep, combo, []), poll_seconds=0.2
    )
    assert states == {"temperature=0.2,lr=0.001": "finished", "temperature=0.5,lr=0.001": "finished"}
    for combo in sweep.combinations:
        assert (combo.run_dir / "eval.json").is_file()
        assert "evaluating" in (tmp_path / "out" / "logs" / f"{combo.name}.log").read_text()


STOPPABLE_CHILD = """
import signal, sys, time, pathlib
folder = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    (folder / f"{sys.argv[2]}-got-{signal.Signals(signum).name}").touch()
    sys.exit(130)
signal.signal(signal.SIGTERM, stop)
(folder / f"{sys.argv[2]}-ready").touch()
while not all((folder / f"{name}-ready").exists() for name in ("a", "b")):
    time.sleep(0.05)
if sys.argv[3] == "exit":  # stopped on its own, as by a SIGTERM sent to it alone
    sys.exit(130)
if sys.argv[3] == "kill-parent":
    import os
    os.kill(os.getppid(), signal.SIGTERM)
time.sleep(60)
"""


@pytest.mark.parametrize("first", ["exit", "kill-parent"])
def test_a_parallel_sweep_passes_a_stop_on_to_every_child(tmp_path, first):
    """A child that exits 130, or SIGTERM to the sweep itself, stops every other child with SIGTERM (each saves
    its checkpoint) instead of waiting for their runs to end."""
    sweep = load_sweep(write_sweep(tmp_path, GRID.replace("[0.001, 0.01]", "[0.001]")), out=tmp_path / "out")
    script = tmp_path / "child.py"
    script.write_text(STOPPABLE_CHILD)
    roles = {sweep.combinations[0].name: ("a", first), sweep.combinations[1].name: ("b", "wait")}

    def command(combo):
        return [sys.executable, str(script), str(tmp_path), *roles[combo.name]]

    started, before = time.monotonic(), signal.getsignal(signal.SIGTERM)
    with pytest.raises(SweepInterrupted):
        run_parallel(sweep, sweep.combinations, ["0", "1"], command, poll_seconds=0.1)
    assert time.monotonic() - started < 30
    assert (tmp_path / "b-got-SIGTERM").exists()
    assert (tmp_path / "a-got-SIGTERM").exists() == (first == "kill-parent")
    assert signal.getsignal(signal.SIGTERM) is before  # this process's own handling is back


# ---- simclr report on fabricated runs ------------------------------------------------------------------------
def fake_run(folder: Path, config: dict, result: dict | None, epochs: list[tuple[float, float]], record=None):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if result is not None:
        (folder / "eval.json").write_text(json.dumps(result))
    if epochs:  # (images/s, seconds) of each epoch trained, summed into training.json as the trainer does
        images = sum(rate * seconds for rate, seconds in epochs)
        trained = {"epochs": len(epochs), "train_seconds": sum(t for _, t in epochs), "images": images}
        (folder / "training.json").write_text(json.dumps(trained))
    if record is not None:
        (folder / "sweep.json").write_text(json.dumps(record))


def config_of(backbone: str, loss: dict, optimizer: dict, batch: int = 128, epochs: int = 80) -> dict:
    return {
        "data": {"batch_size": batch},
        "model": {"backbone": {"name": backbone}},
        "loss": loss,
        "optimizer": optimizer,
        "train": {"epochs": epochs},
    }


def result_of(top1: float, few: dict[str, float], knn: float, baseline: float | None = None, k: int = 200) -> dict:
    result = {
        "epoch": 80,
        "linear": {"top1": top1, "top5": 99.0},
        "few_label": {k: {"top1": v, "std": 1.0} for k, v in few.items()},
        "knn": {"k": k, "top1": knn},
    }
    if baseline is not None:
        result["baseline"] = {"linear": {"top1": baseline}}
    return result


def test_report_of_fabricated_runs(tmp_path, capsys):
    root = tmp_path / "study"
    triplet = {"name": "margin_triplet", "margin": 0.8, "miner": "semi_hard"}
    fake_run(
        root / "b",
        config_of("resnet50", triplet, {"name": "adam", "lr": 0.0003}),
        result_of(73.25, {"1": 20.0, "10": 50.0}, 70.0, baseline=30.0),
        [(100.0, 10.0), (300.0, 30.0)],
        {"name": "r50_triplet_sh", "index": 1, "reported": 73.5, "status": "trained"},
    )
    fake_run(
        root / "a",
        config_of("resnet18", {"name": "nt_logistic", "temperature": 0.2, "balance": "weight"}, {"name": "lars"}),
        result_of(66.0, {"5": 40.0}, 60.0),
        [(50.0, 60.0)],
        {"name": "r18_logistic", "index": 0, "reported": 66.5, "status": "trained"},
    )
    fake_run(
        root / "c",
        config_of("resnet50", {"name": "nt_xent", "temperature": 0.5}, {"name": "lars", "lr": 0.075}),
        None,
        [],
        {"name": "r50_lars", "index": 2, "reported": None, "status": "failed", "error": "the loss became NaN"},
    )
    fake_run(
        root / "extra" / "mine",
        config_of("resnet18", {"name": "nt_xent"}, {"name": "sgd"}),
        result_of(10.0, {}, 5.0, k=20),
        [(1.0, 1.0)],
    )
    assert main(["report", str(root)]) == 0
    printed = capsys.readouterr()
    assert "r50_triplet_sh" in printed.out and "r50_lars failed: the loss became NaN" in printed.err

    lines = (root / "report.md").read_text().splitlines()
    assert lines[0] == (
        "| run | backbone | loss | t/m | optimizer | batch | epochs | linear top-1 | reported top-1 | top-5 | "
        "1-label top-1 | 5-label top-1 | 10-label top-1 | kNN top-1 | random-init top-1 | train time | images/s |"
    )
    # sweep rows in sweep order, then the loose run; train time 10+30 s; images/s (100*10+300*30)/40 = 250
    assert (
        lines[2] == "| r18_logistic | resnet18 | nt_logistic (weight) | 0.2 | lars | 128 | 80 | 66.0 | 66.5 | "
        "99.0 |  | 40.0 |  | 60.0 (k=200) |  | 1 min 00 s | 50 |"
    )
    assert (
        lines[3] == "| r50_triplet_sh | resnet50 | margin_triplet (semi_hard) | 0.8 | adam 0.0003 | 128 | 80 | "
        "73.2 | 73.5 | 99.0 | 20.0 |  | 50.0 | 70.0 (k=200) | 30.0 | 40 s | 250 |"
    )
    assert lines[4].startswith("| r50_lars | resnet50 | nt_xent | 0.5 | lars 0.075 | 128 | 80 | failed | – |")
    assert lines[5].startswith("| extra/mine | resnet18 | nt_xent |  | sgd | 128 | 80 | 10.0 |")
    assert lines[7] == "- r50_lars failed: the loss became NaN"

    with open(root / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["run"] for r in rows] == ["r18_logistic", "r50_triplet_sh", "r50_lars", "extra/mine"]
    assert float(rows[1]["train_seconds"]) == 40.0 and float(rows[1]["images_per_sec"]) == 250.0
    assert rows[1]["few_label_1_top1"] == "20.0" and rows[1]["few_label_5_top1"] == ""
    assert rows[2]["status"] == "failed" and rows[2]["linear_top1"] == "" and rows[2]["reported"] == ""
    assert rows[1]["knn_k"] == "200" and rows[3]["knn_k"] == "20"
    assert (root / "report.png").stat().st_size > 1000
    shutil.rmtree(root / "extra")  # one k left: the header says it
    assert main(["report", str(root)]) == 0
    assert "| kNN top-1 (k=200) |" in (root / "report.md").read_text().splitlines()[0]
    # a run that probes the projection head's output g(h): the table says what each run probed
    projection = {**result_of(50.0, {"1": 20.0}, 45.0), "representation": "projection"}
    fake_run(root / "g", config_of("resnet50", {"name": "nt_xent"}, {"name": "adam"}), projection, [(1.0, 1.0)])
    assert main(["report", str(root)]) == 0
    lines = (root / "report.md").read_text().splitlines()
    assert "| batch | epochs | probed | linear top-1 |" in lines[0]
    assert lines[2].startswith("| r18_logistic | resnet18 | nt_logistic (weight) | 0.2 | lars | 128 | 80 | h | 66.0 |")
    assert lines[5].startswith("| g | resnet50 | nt_xent |  | adam | 128 | 80 | g(h) | 50.0 |")
    with open(root / "report.csv") as handle:
        representations = {r["run"]: r["representation"] for r in csv.DictReader(handle)}
    assert representations == {
        "r18_logistic": "backbone",
        "r50_triplet_sh": "backbone",
        "r50_lars": "",
        "g": "projection",
    }


def test_report_names_the_dataset_when_runs_used_different_ones(tmp_path):
    root = tmp_path / "runs"
    config = config_of("resnet18", {"name": "nt_xent"}, {"name": "adam"})

    def on(dataset: str) -> dict:
        return {**config, "data": {"batch_size": 128, "dataset": {"name": dataset}}}

    fake_run(root / "a", on("cifar10"), result_of(60.0, {}, 50.0), [])
    fake_run(root / "b", on("cifar10"), result_of(61.0, {}, 50.0), [])
    assert main(["report", str(root)]) == 0
    assert "dataset" not in (root / "report.md").read_text().splitlines()[0]  # one dataset: no column
    fake_run(root / "c", on("stl10"), result_of(70.0, {}, 50.0), [])
    assert main(["report", str(root)]) == 0
    lines = (root / "report.md").read_text().splitlines()
    assert lines[0].startswith("| run | dataset | backbone | loss |")
    assert lines[2].startswith("| a | cifar10 | resnet18 |") and lines[4].startswith("| c | stl10 | resnet18 |")
    with open(root / "report.csv") as handle:
        assert [r["dataset"] for r in csv.DictReader(handle)] == ["cifar10", "cifar10", "stl10"]


def test_report_marks_a_run_that_trained_on_after_its_evaluation(tmp_path):
    root = tmp_path / "runs"
    config = config_of("resnet18", {"name": "nt_xent"}, {"name": "adam"}, epochs=4)
    fake_run(root / "current", config, {**result_of(60.0, {}, 50.0), "epoch": 4}, [(1.0, 1.0)] * 4)
    fake_run(root / "resumed", config, {**result_of(55.0, {}, 45.0), "epoch": 2}, [(1.0, 1.0)] * 4)
    assert main(["report", str(root)]) == 0
    lines = (root / "report.md").read_text().splitlines()
    assert lines[2].startswith("| current | resnet18 | nt_xent |  | adam | 128 | 4 | 60.0 |")
    assert lines[3].startswith("| resumed | resnet18 | nt_xent |  | adam | 128 | 2 (trained 4) | 55.0 |")
    assert (
        lines[5]
        == f"- resumed was evaluated at epoch 2 and has since trained to epoch 4: `simclr eval {root / 'resumed'}` "
        "updates it"
    )
    with open(root / "report.csv") as handle:
        assert {r["run"]: (r["epochs"], r["trained_epochs"]) for r in csv.DictReader(handle)} == {
            "current": ("4", "4"),
            "resumed": ("2", "4"),
        }


def test_report_shows_the_loss_params_that_tell_runs_apart(tmp_path):
    root = tmp_path / "runs"
    losses = {
        "tp0.1": {"name": "debiased", "temperature": 0.5, "tau_plus": 0.1, "normalise": True},
        "tp0.05": {"name": "debiased", "temperature": 0.5, "tau_plus": 0.05, "normalise": True},
        "sample3": {"name": "nt_logistic", "temperature": 0.2, "balance": "sample", "negatives_per_positive": 3},
        "sample1": {"name": "nt_logistic", "temperature": 0.5, "balance": "sample", "negatives_per_positive": 1},
        "m0.1": {"name": "dcl", "temperature": 0.5, "margin": 0.1},  # the t/m column shows the temperature
        "m0.3": {"name": "dcl", "temperature": 0.5, "margin": 0.3},
    }
    for index, (name, loss) in enumerate(losses.items()):
        record = {"name": name, "index": index, "status": "trained"}
        fake_run(root / name, config_of("resnet18", loss, {"name": "adam"}), result_of(50.0, {}, 40.0), [], record)
    assert main(["report", str(root)]) == 0
    cells = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[2:4]
        for line in (root / "report.md").read_text().splitlines()[2:]
    }
    assert cells == {
        "tp0.1": ["debiased (tau_plus=0.1)", "0.5"],  # temperature is in the t/m column, normalise the same
        "tp0.05": ["debiased (tau_plus=0.05)", "0.5"],
        "sample3": ["nt_logistic (sample, negatives_per_positive=3)", "0.2"],
        "sample1": ["nt_logistic (sample, negatives_per_positive=1)", "0.5"],
        "m0.1": ["dcl (margin=0.1)", "0.5"],
        "m0.3": ["dcl (margin=0.3)", "0.5"],
    }
    with open(root / "report.csv") as handle:
        params = {r["run"]: json.loads(r["loss_params"]) for r in csv.DictReader(handle)}
    assert params["tp0.05"] == {"temperature": 0.5, "tau_plus": 0.05, "normalise": True}


def test_report_skips_damaged_or_foreign_results_with_a_warning(tmp_path, caplog):
    root = tmp_path / "runs"
    config = config_of("resnet18", {"name": "nt_xent"}, {"name": "adam"})
    fake_run(root / "good", config, result_of(60.0, {}, 50.0), [(1.0, 1.0)])
    for name, content in (("a-list", b"[1, 2]"), ("odd-shape", b'{"linear": 5}'), ("binary", b"\xff\xfe\x00")):
        fake_run(root / name, config, None, [(1.0, 1.0)])
        (root / name / "eval.json").write_bytes(content)
    (root / "good" / "sweep.json").write_text("[]")  # a damaged record is ignored
    (root / "good" / "training.json").write_text("{truncated")  # and a damaged training.json costs the train time
    with caplog.at_level("WARNING", logger="simclr"):
        assert main(["report", str(root)]) == 0
    rows = (root / "report.md").read_text().splitlines()[2:]
    assert len(rows) == 1 and rows[0].startswith("| good |") and rows[0].endswith("| 50.0 |  |  |  |")  # no time
    assert f"report: {root / 'good'}: training.json is not what simclr writes" in caplog.text
    for name in ("a-list", "odd-shape", "binary"):
        assert f"report: skipped {root / name}: its eval.json is not what simclr writes" in caplog.text


def test_report_shows_a_run_whose_config_or_sweep_record_is_hand_edited_with_blank_cells(tmp_path):
    """eval.json holds the results: a config.yaml whose sections are not mappings, or a sweep.json whose index is
    not a number, blanks the cells they fill but keeps the row."""
    root = tmp_path / "runs"
    good = config_of("resnet18", {"name": "nt_xent", "temperature": 0.5}, {"name": "adam", "lr": 0.001})
    fake_run(root / "good", good, result_of(60.0, {}, 50.0), [], record={"name": "good", "index": 0})
    odd = {"loss": ["nt_xent"], "optimizer": 5, "model": {"backbone": "resnet18"}, "data": None}
    fake_run(root / "odd", odd, result_of(40.0, {}, 30.0), [], record={"name": "odd", "index": "first"})
    assert main(["report", str(root)]) == 0
    rows = [line.split(" | ") for line in (root / "report.md").read_text().splitlines()[2:]]
    assert [row[0].strip("| ") for row in rows] == ["good", "odd"]  # a number's order first, the odd one after
    assert rows[1][1:6] == ["", "", "", "", ""] and rows[1][6:8] == ["80", "40.0"]  # epochs and results: eval.json


def test_report_of_a_folder_of_unreadable_results_says_they_were_skipped(tmp_path, capsys):
    fake_run(tmp_path / "run", {}, None, [])
    (tmp_path / "run" / "eval.json").write_text("[]")
    assert main(["report", str(tmp_path)]) == 2
    assert "no eval.json under it that simclr can read (1 skipped, see above)" in capsys.readouterr().err


def test_a_damaged_run_config_in_a_sweep_is_an_error_not_a_traceback(tmp_path, capsys):
    sweep = write_sweep(tmp_path, GRID)
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out), "--dry-run"]) == 0
    run = out / GRID_NAMES[0]
    run.mkdir(parents=True)
    (run / ".simclr-run").touch()
    (run / "config.yaml").write_text("data: [unclosed")
    assert main(["sweep", str(sweep), "--out", str(out), "--dry-run"]) == 2
    assert f"{run / 'config.yaml'}: not valid YAML" in " ".join(capsys.readouterr().err.split())


def test_report_of_a_folder_without_results_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no eval.json" in capsys.readouterr().err


def test_report_lists_a_trained_run_without_evaluation_and_zooms_its_chart(tmp_path):
    from simclr.report import chart_axis_start, collect

    root = tmp_path / "runs"
    config = config_of("resnet18", {"name": "nt_xent"}, {"name": "adam"}, epochs=2)
    fake_run(root / "done", config, {**result_of(94.0, {}, 90.0, baseline=92.2), "epoch": 2}, [(1.0, 1.0)] * 2)
    fake_run(root / "pending", config, None, [(1.0, 1.0)] * 2)
    assert main(["report", str(root)]) == 0
    lines = (root / "report.md").read_text().splitlines()
    assert lines[3].startswith("| pending | resnet18 | nt_xent |  | adam | 128 | 2 | not evaluated |")
    assert lines[5] == f"- pending has no evaluation yet (trained 2 epochs): `simclr eval {root / 'pending'}`"
    (root / "pending" / "training.json").write_text("{damaged")
    assert main(["report", str(root)]) == 0
    assert f"- pending has no evaluation yet: `simclr eval {root / 'pending'}`" in (root / "report.md").read_text()
    rows = collect(root)
    assert chart_axis_start(rows) == 80  # the baseline, 92.2, is the lowest bar or marker: the axis starts at 80
    assert chart_axis_start([{**rows[0], "baseline_top1": 12.0}]) == 0


def test_report_marks_runs_that_stopped_short_of_their_epochs(tmp_path, capsys):
    """A run interrupted at epoch 3 of 30, evaluated or not, is not shown as done: its epochs cell says "3 of 30"
    and its note says how to train it on; the command prints the notes too."""
    root = tmp_path / "runs"
    config = config_of("resnet18", {"name": "nt_xent"}, {"name": "adam"}, epochs=30)
    fake_run(root / "evaluated", config, {**result_of(70.0, {}, 60.0), "epoch": 3}, [(1.0, 1.0)] * 3)
    fake_run(root / "pending", config, None, [(1.0, 1.0)] * 3)
    fake_run(root / "complete", {**config, "train": {"epochs": 3}}, {**result_of(71.0, {}, 61.0), "epoch": 3}, [])
    assert main(["report", str(root)]) == 0
    lines = (root / "report.md").read_text().splitlines()
    cells = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[6] for line in lines[2:5]}
    assert cells == {"complete": "3", "evaluated": "3 of 30", "pending": "3 of 30"}
    resume = "trains it on (a sweep's run: run the sweep again)"
    notes = [
        f"evaluated was evaluated at epoch 3 of the 30 epochs it is configured for: "
        f"`simclr train --resume {root / 'evaluated'}` {resume}",
        f"pending stopped after 3 of the 30 epochs it is configured for: `simclr train --resume {root / 'pending'}` "
        f"{resume}",
    ]
    assert lines[6:] == [f"- {note}" for note in notes]
    printed = " ".join(capsys.readouterr().err.split())
    assert all(note in printed for note in notes)


def test_report_tells_runs_of_the_same_name_apart_by_their_folder(tmp_path):
    root = tmp_path / "runs"
    config = config_of("resnet18", {"name": "nt_xent"}, {"name": "adam"})
    for sweep, top1 in (("sweep-a", 60.0), ("sweep-b", 65.0)):
        fake_run(
            root / sweep / "temperature=0.2", config, result_of(top1, {}, 50.0), [], record={"name": "temperature=0.2"}
        )
    fake_run(
        root / "sweep-b" / "temperature=0.5", config, result_of(70.0, {}, 50.0), [], record={"name": "temperature=0.5"}
    )
    assert main(["report", str(root)]) == 0
    runs = [line.split(" | ")[0].lstrip("| ") for line in (root / "report.md").read_text().splitlines()[2:]]
    assert runs == ["sweep-a/temperature=0.2", "sweep-b/temperature=0.2", "temperature=0.5"]
