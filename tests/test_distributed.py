"""Distributed training on CPU with gloo and 2 processes: one step on 2 ranks equals one step on the whole batch
(loss, gradients, updated weights, BN statistics), per-rank view streams survive a checkpoint, and a 2-rank run
started with `simclr train --nproc 2` resumes in a single process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from conftest import run_simclr
from plugin_fixtures import PLUGIN_MISTAKES, make_distribution

from simclr import config
from simclr import evaluate as evaluate_module
from simclr.checkpoint import load_checkpoint
from simclr.cli.launch import exit_status, torchrun_args
from simclr.datastream import ViewStream
from simclr.distributed import GlobalBatchNorm, convert_global_batchnorm, gather_shards
from simclr.errors import UserError
from simclr.evaluate import knn_monitor
from simclr.rundir import lock_run_dir
from simclr.runtime import Runtime
from simclr.trainer import Trainer
from simclr.views import normalize

BATCH = 16

STEP_EXPERIMENT = {
    "name": "dist",
    "data": {"dataset": {"name": "synthetic", "image_size": 16, "count": 32}, "batch_size": BATCH},
    "model": {"backbone": {"name": "small_resnet"}, "projection": {"out_dim": 16}},
    "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0},
    "schedule": {"warmup_epochs": 0, "decay": "constant"},
    "train": {"epochs": 1, "device": "cpu", "seed": 5, "callbacks": []},
}

LOSSES = {
    "nt_xent": {"name": "nt_xent", "temperature": 0.5},
    "nt_logistic_weight": {"name": "nt_logistic", "balance": "weight"},
    "nt_logistic_sample": {"name": "nt_logistic", "balance": "sample", "negatives_per_positive": 3},
    "margin_triplet_semi_hard": {"name": "margin_triplet", "miner": "semi_hard"},
}


def step_experiment(loss: str) -> config.Experiment:
    return config.experiment_from_dict({**STEP_EXPERIMENT, "loss": LOSSES[loss]})


def fixed_views() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    return tuple(torch.randn(BATCH, 3, 16, 16, generator=generator) for _ in range(2))


def one_step(trainer: Trainer, view1: torch.Tensor, view2: torch.Tensor) -> dict:
    """Loss, gradients and updated state of one optimisation step through the trainer's own step code."""
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    trainer.schedule.set_step(0)
    loss = trainer._step(view1, view2)
    return {
        "loss": loss.detach(),
        "before": before,
        "grads": {name: p.grad.clone() for name, p in trainer.model.named_parameters()},
        "state": {name: value.clone() for name, value in trainer.model.state_dict().items()},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def monitor_knn(trainer: Trainer) -> float:
    """The kNN monitor on the trainer's freshly initialised model (the same weights in every process), with
    batches smaller than a rank's shard."""
    return knn_monitor(trainer.model, trainer.dataset, "cpu", k=5, batch_size=6)


def step_worker(rank: int, world_size: int, port: int, out: Path) -> None:
    """One torchrun-like rank: the same fixed views, this rank's rows of them."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    view1, view2 = fixed_views()
    rows = slice(rank * BATCH // world_size, (rank + 1) * BATCH // world_size)
    results = {}
    for loss in LOSSES:
        trainer = Trainer(step_experiment(loss), out / loss, show_progress=False)
        results[loss] = one_step(trainer, view1[rows], view2[rows])
        results[loss]["global_bn_layers"] = sum(isinstance(m, GlobalBatchNorm) for m in trainer.model.modules())
    results["shards"] = gather_shards(torch.arange(rank, 7, world_size), 7)  # uneven shards: 4 and 3 rows
    extracted = []  # the number of images this rank extracts from each labelled split for the kNN monitor
    extract = evaluate_module.extract_features
    evaluate_module.extract_features = lambda model, split, *a, **k: (
        extracted.append(len(split)) or extract(model, split, *a, **k)
    )
    results["knn"] = monitor_knn(Trainer(step_experiment("nt_xent"), out / "knn", show_progress=False))
    evaluate_module.extract_features = extract
    results["extracted"] = extracted
    signals = {"signal": "SIGINT" if rank == 1 else None}  # only rank 1 got the signal
    results["stop"] = [trainer._stop_requested(signals, logged=False), trainer._stop_requested(signals, logged=True)]
    torch.rand(3 + rank, generator=trainer.stream.generator)  # as if views had been drawn
    trainer._start()
    trainer.save()
    torch.distributed.barrier()  # rank 0 has written the checkpoint
    resumed = Trainer(step_experiment(loss), out / loss, resume=True, show_progress=False)
    results["stream_saved"] = trainer.stream.generator.get_state()
    results["stream_resumed"] = resumed.stream.generator.get_state()
    torch.save(results, out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_step(tmp_path_factory) -> tuple[dict, list[dict]]:
    """The single-process reference for every loss, and what each of 2 ranks computed."""
    out = tmp_path_factory.mktemp("dist")
    view1, view2 = fixed_views()
    reference = {
        loss: one_step(Trainer(step_experiment(loss), out / "ref", show_progress=False), view1, view2)
        for loss in LOSSES
    }
    knn_trainer = Trainer(step_experiment("nt_xent"), out / "knn-ref", show_progress=False)
    reference["knn"] = monitor_knn(knn_trainer)
    reference["split_sizes"] = [len(split) for split in knn_trainer.dataset.eval_splits()]
    mp.spawn(step_worker, args=(2, free_port(), out), nprocs=2)
    return reference, [torch.load(out / f"rank{rank}.pt") for rank in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("loss", list(LOSSES))
def test_two_ranks_take_the_same_step_as_one_process(two_rank_step, loss):
    reference, ranks = two_rank_step
    expected = reference[loss]
    for result in ranks:
        assert result[loss]["global_bn_layers"] > 0
        torch.testing.assert_close(result[loss]["loss"], expected["loss"], rtol=1e-5, atol=1e-6)
        for name, grad in expected["grads"].items():
            torch.testing.assert_close(result[loss]["grads"][name], grad, rtol=1e-5, atol=1e-5, msg=name)
        for name, value in expected["state"].items():
            torch.testing.assert_close(result[loss]["state"][name], value, rtol=1e-5, atol=1e-5, msg=name)
    # the step moved the weights well beyond the tolerance, so a wrong gradient scale would show
    moved = max((value - expected["before"][name]).abs().max() for name, value in expected["state"].items())
    assert moved > 1e-2


@pytest.mark.slow
def test_each_rank_resumes_its_own_view_stream(two_rank_step):
    _, ranks = two_rank_step
    assert not torch.equal(ranks[0]["stream_saved"], ranks[1]["stream_saved"])
    for result in ranks:
        assert torch.equal(result["stream_resumed"], result["stream_saved"])


@pytest.mark.slow
def test_the_knn_monitor_shards_its_extraction_across_ranks_and_agrees_with_one_process(two_rank_step):
    reference, ranks = two_rank_step
    for result in ranks:  # every rank gathered the other's rows, in rank order, trimmed of the padding
        assert result["shards"].tolist() == [0, 2, 4, 6, 1, 3, 5]
    assert 0 <= reference["knn"] <= 100
    assert ranks[0]["knn"] == ranks[1]["knn"] == pytest.approx(reference["knn"])
    # each rank extracted only its round-robin shard of each split
    for size, first, second in zip(reference["split_sizes"], ranks[0]["extracted"], ranks[1]["extracted"], strict=True):
        assert (first, second) == ((size + 1) // 2, size // 2)


#: views that are the images themselves, so each view says which image it is
IDENTITY_AUGMENT = {
    "crop_scale": [1.0, 1.0],
    "crop_ratio": [1.0, 1.0],
    "flip_p": 0.0,
    "jitter_p": 0.0,
    "grayscale_p": 0.0,
    "blur": False,
}


@pytest.mark.parametrize("path", ["resident", "loader", "cpu"])
def test_ranks_train_on_disjoint_shares_of_the_global_batch(path):
    """What "each loss sees all batch_size images" rests on: at every step the ranks' rows are different images,
    and over an epoch together they are the images one process sees."""
    augment = {**IDENTITY_AUGMENT, "backend": "cpu" if path == "cpu" else "batched"}
    data = {"dataset": {"name": "synthetic", "image_size": 16, "count": 32}, "batch_size": 8, "augment": augment}
    data["device_resident"] = "never" if path == "loader" else "auto"
    experiment = config.experiment_from_dict({**STEP_EXPERIMENT, "loss": LOSSES["nt_xent"], "data": data})
    dataset = experiment.data.dataset.build()
    images = normalize(dataset.pretrain_tensor(), dataset.mean, dataset.std).flatten(1)

    def image_indices(rank: int, world_size: int) -> list[list[int]]:
        runtime = Runtime(torch.device("cpu"), "fp32", False, rank=rank, world_size=world_size)
        stream = ViewStream(dataset, experiment.data, runtime, seed=0)
        assert stream.path == path
        steps = []
        for view1, view2 in stream.epoch(0):
            for view in (view1, view2):
                distance = torch.cdist(view.flatten(1), images)
                assert (distance.min(dim=1).values < 0.5).all()  # each view is one of the images (others: > 30)
            steps.append(distance.argmin(dim=1).tolist())
        return steps

    single = image_indices(0, 1)
    ranks = [image_indices(rank, 2) for rank in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 4
    for first, second in zip(*ranks, strict=True):
        assert len(first) == len(second) == 4 and not set(first) & set(second)
    assert sorted(sum(ranks[0] + ranks[1], [])) == sorted(sum(single, [])) == list(range(32))


def test_a_global_batch_not_divisible_by_the_ranks_is_refused():
    experiment = step_experiment("nt_xent")
    runtime = Runtime(torch.device("cpu"), "fp32", False, rank=0, world_size=3)
    with pytest.raises(UserError, match="data.batch_size 16 is not divisible by the 3 processes"):
        ViewStream(experiment.data.dataset.build(), experiment.data, runtime, seed=0)


def test_ranks_agree_to_stop_at_a_logged_step(two_rank_step):
    _, ranks = two_rank_step
    assert [result["stop"] for result in ranks] == [[False, True], [False, True]]


def test_nproc_under_torchrun_is_refused(tmp_path):
    result = run_simclr("train", "exp.yaml", "--nproc", "2", cwd=tmp_path, env={"LOCAL_RANK": "0"})
    assert result.returncode == 2 and "leave --nproc out" in result.stderr


def test_convert_global_batchnorm_keeps_parameters_and_buffers():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Sequential(torch.nn.BatchNorm1d(4))
    )
    model[1].running_mean.fill_(0.5)
    weight, running_var = model[1].weight, model[1].running_var
    model.eval()
    converted = convert_global_batchnorm(model)
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[2][0], GlobalBatchNorm)
    assert converted[1].weight is weight and converted[1].running_var is running_var
    assert torch.equal(converted[1].running_mean, torch.full((4,), 0.5)) and not converted[1].training
    assert set(converted.state_dict()) == set(torch.nn.Sequential(*model).state_dict())


def test_global_batchnorm_without_process_group_is_batchnorm():
    x = torch.randn(8, 4, 5, 5) * 3 + 1
    plain, converted = torch.nn.BatchNorm2d(4), convert_global_batchnorm(torch.nn.BatchNorm2d(4))
    torch.testing.assert_close(converted(x), plain(x))
    torch.testing.assert_close(converted.running_var, plain.running_var)


def test_torchrun_args_drop_nproc_in_every_spelling():
    for argv in (
        ["train", "exp.yaml", "--nproc", "2", "--set", "a=1"],
        ["train", "--nproc=2", "exp.yaml", "--set", "a=1"],
        ["train", "exp.yaml", "--npr", "2", "--set", "a=1"],
    ):
        command = torchrun_args(argv, 2, Path("runs/x"))
        assert command[:4] == ["--standalone", "--nproc_per_node=2", "-m", "simclr"]
        assert command[4:] == ["train", "exp.yaml", "--set", "a=1", "--out", "runs/x"]


QUICK = {
    "name": "quick",
    "data": {"dataset": {"name": "digits", "image_size": 16}, "batch_size": 64},
    "model": {"backbone": {"name": "small_resnet"}, "projection": {"out_dim": 16}},
    "loss": {"name": "nt_xent", "temperature": 0.5},
    "optimizer": {"name": "adam", "lr": 0.001},
    "schedule": {"warmup_epochs": 0},
    "train": {
        "epochs": 1,
        "device": "cpu",
        "log_every": 1,
        "max_steps_per_epoch": 3,
        "seed": 2,
        "callbacks": [{"name": "metrics_jsonl"}],
    },
    "eval": {
        "after_train": True,
        "labels_per_class": [1],
        "few_label_draws": 1,
        "baseline": False,
        "linear": {"max_iter": 50},
    },
}


@pytest.mark.slow
def test_two_rank_run_resumes_in_one_process(tmp_path):
    exp = tmp_path / "quick.yaml"
    exp.write_text(yaml.safe_dump(QUICK))
    runs = tmp_path / "runs"
    result = run_simclr("train", str(exp), "--nproc", "2", "--no-progress", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("of frozen features") == 1 and "Traceback" not in result.stderr  # rank 0 evaluates
    (run,) = list(runs.iterdir())
    assert {"config.yaml", "metrics.jsonl", "checkpoints", "eval.json"} <= {p.name for p in run.iterdir()}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "step"] == [1, 2, 3]
    state = load_checkpoint(run)
    assert state["global_step"] == 3 and not any(key.startswith("module.") for key in state["model"])
    streams = [s["generator"] for s in state["rng"]["streams"]]
    assert len(streams) == 2 and not torch.equal(*streams)

    experiment = config.experiment_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    single = Trainer(experiment, run, resume=True, show_progress=False)
    assert torch.equal(single.stream.generator.get_state(), streams[0])

    resume = ["--resume", str(run), "--set", "train.epochs=2", "--set", "eval.after_train=false", "--no-progress"]
    result = run_simclr("train", *resume, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(run)["global_step"] == 6
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "step"] == [1, 2, 3, 4, 5, 6]


def test_cpu_path_augmentations_differ_across_ranks():
    """Ranks start with identical global RNGs; the DataLoader workers that augment must still draw differently."""
    experiment = config.experiment_from_dict(
        {
            **STEP_EXPERIMENT,
            "data": {
                "dataset": {"name": "synthetic", "image_size": 16, "count": 32},
                "batch_size": 8,
                "num_workers": 1,
                "augment": {"backend": "cpu"},
            },
            "loss": LOSSES["nt_xent"],
        }
    )
    dataset = experiment.data.dataset.build()
    image = dataset.pretrain_split()[0][0]
    dataset.pretrain_split = lambda: [(image, 0)] * 32  # every view is of the same image
    views = []
    for rank in range(2):
        torch.manual_seed(0)
        runtime = Runtime(torch.device("cpu"), "fp32", False, rank=rank, world_size=2)
        stream = ViewStream(dataset, experiment.data, runtime, seed=0)
        views.append(next(stream.epoch(0))[0])
    assert views[0].shape == (4, 3, 16, 16)
    assert not torch.allclose(views[0], views[1])


def test_knn_monitor_leaves_the_global_rng_alone(tmp_path):
    """If the kNN monitor drew from the global RNG, the ranks' loss samples could diverge."""
    experiment = config.experiment_from_dict(
        {**STEP_EXPERIMENT, "loss": LOSSES["nt_xent"], "eval": {"knn_k": 5, "batch_size": 16}}
    )
    trainer = Trainer(experiment, tmp_path / "run", show_progress=False)
    before = torch.get_rng_state()
    assert 0 <= trainer._knn_monitor() <= 100
    assert torch.equal(torch.get_rng_state(), before)


def test_the_launchers_exit_status_is_the_one_that_matters_and_each_message_is_shown_once(capsys):
    same = {"exit_code": 2, "message": "data.batch_size 127 is not divisible by the 2 processes"}
    assert exit_status({0: same, 1: same}, {0: 2, 1: 2}, interrupted=False, nproc=2) == 2
    assert capsys.readouterr().err == ""  # rank 0 printed it itself
    rank_only = {"exit_code": 2, "message": "LOCAL_RANK 1 but only 1 GPU"}
    assert exit_status({1: rank_only}, {1: 2}, interrupted=False, nproc=2) == 2
    assert "rank 1: LOCAL_RANK 1 but only 1 GPU" in " ".join(capsys.readouterr().err.split())
    stopped = {"exit_code": 130, "message": "stopped by SIGTERM"}
    assert exit_status({0: stopped, 1: stopped}, {}, interrupted=True, nproc=2) == 130
    bad_input = {"exit_code": 2, "message": "missing data"}
    assert exit_status({0: stopped, 1: bad_input}, {1: 2}, interrupted=False, nproc=2) == 2  # the cause, not the stop
    assert exit_status({}, {1: -9}, interrupted=False, nproc=2) == 1
    assert "rank 1 was killed by signal 9 without a message" in " ".join(capsys.readouterr().err.split())
    assert exit_status({}, {}, interrupted=False, nproc=2) == 0
    capsys.readouterr()
    assert exit_status({1: stopped}, {}, interrupted=True, nproc=2) == 130  # rank 0 was killed before it saved
    printed = " ".join(capsys.readouterr().err.split())
    assert "rank 0 did not stop within 300 s of the signal and was killed" in printed
    assert "rank 1 did not stop" not in printed and "rank 1: stopped by SIGTERM" in printed  # rank 0 said nothing


@pytest.mark.parametrize("outcome, status", [("finished", 0), ("signal", 130), ("rank failed", 2)])
def test_the_launcher_gives_back_the_environment_and_signal_handlers_it_lent_the_agent(monkeypatch, outcome, status):
    """The agent runs in this process: whatever it does, os.environ and the signal handlers are as before."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from simclr.cli import launch

    seen = {}

    def agent(args):
        seen["env"] = {key: os.environ.get(key) for key in (launch.RANK_REPORTS_ENV, launch.SHUTDOWN_TIMEOUT_ENV)}
        seen["args"] = args
        os.environ["OMP_NUM_THREADS"] = "1"  # as torch's agent does
        signal.signal(signal.SIGTERM, lambda *_: None)
        if outcome == "signal":
            raise SignalException("got SIGTERM", sigval=signal.SIGTERM)
        if outcome == "rank failed":
            report = {"exit_code": 2, "message": "missing data"}
            (Path(os.environ[launch.RANK_REPORTS_ENV]) / "rank-1.json").write_text(json.dumps(report))
            failure = ProcessFailure(local_rank=1, pid=1, exitcode=2, error_file="")
            raise ChildFailedError("simclr", {1: failure})

    monkeypatch.setattr(torchrun, "run", agent)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    environment, handler = dict(os.environ), signal.getsignal(signal.SIGTERM)
    assert launch.launch_torchrun(["train", "exp.yaml", "--nproc", "2"], 2) == status
    assert dict(os.environ) == environment and signal.getsignal(signal.SIGTERM) is handler
    assert seen["env"][launch.SHUTDOWN_TIMEOUT_ENV] == "300" and seen["env"][launch.RANK_REPORTS_ENV]
    assert not Path(seen["env"][launch.RANK_REPORTS_ENV]).exists()  # the reports' folder is gone
    assert seen["args"].nproc_per_node == "2" and seen["args"].training_script_args == ["train", "exp.yaml"]


@pytest.mark.slow
def test_bad_input_found_by_the_ranks_of_nproc_exits_2_once_with_nothing_written(tmp_path):
    exp = tmp_path / "quick.yaml"
    exp.write_text(yaml.safe_dump({**QUICK, "data": {**QUICK["data"], "batch_size": 63}}))
    result = run_simclr("train", str(exp), "--nproc", "2", "--no-progress", cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert result.stderr.count("data.batch_size 63 is not divisible by the 2 processes") == 1
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_nproc_on_a_run_another_process_trains_exits_2_once_with_nothing_written(tmp_path):
    """Only rank 0 takes the run's lock: the other ranks stop with its message rather than fail in their first
    collective (before, rank 1's gloo 'Connection closed by peer' traceback followed the message)."""
    exp = tmp_path / "quick.yaml"
    exp.write_text(yaml.safe_dump({**QUICK, "eval": {"after_train": False}}))
    run = tmp_path / "run"
    assert run_simclr("train", str(exp), "--out", str(run), "--no-progress", cwd=tmp_path).returncode == 0
    config_before = (run / "config.yaml").read_text()
    lock = lock_run_dir(run)  # another training process, as far as the ranks can tell
    try:
        for args in (["--resume", str(run), "--set", "train.epochs=2"], [str(exp), "--out", str(run), "--overwrite"]):
            result = run_simclr("train", *args, "--nproc", "2", "--no-progress", cwd=tmp_path, timeout=300)
            assert result.returncode == 2, result.stderr[-3000:]
            assert result.stderr.count(f"{run} is being trained by process {os.getpid()}") == 1, result.stderr
            assert "Traceback" not in result.stderr and "Connection closed" not in result.stderr
    finally:
        lock.close()
    assert (run / "config.yaml").read_text() == config_before and load_checkpoint(run)["global_step"] == 3


@pytest.mark.slow
def test_nproc_with_a_broken_callback_exits_2_once(tmp_path):
    """Callbacks are built on rank 0 only: its error stops the other ranks too, rather than leaving them in DDP's
    first collective (a gloo traceback here, a hang until the timeout under NCCL)."""
    make_distribution(tmp_path / "site", "acme-mistakes", {"acme": PLUGIN_MISTAKES})
    exp = tmp_path / "quick.yaml"
    train = {**QUICK["train"], "callbacks": [{"name": "wrong_arguments"}]}
    exp.write_text(yaml.safe_dump({**QUICK, "train": train, "eval": {"after_train": False}}))
    env = {"PYTHONPATH": str(tmp_path / "site")}
    result = run_simclr("train", str(exp), "--nproc", "2", "--no-progress", cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("callback 'wrong_arguments' from plugin 'acme'") == 1, result.stderr
    assert "Traceback" not in result.stderr and "Connection closed" not in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sigterm_to_the_nproc_launcher_stops_every_rank_with_a_checkpoint(tmp_path):
    """A scheduler's SIGTERM reaches only the launcher: the ranks get it through the agent, save and stop, and the
    launcher exits 130 after them (before, it exited at once and left the ranks training)."""
    train = {**QUICK["train"], "epochs": 50, "max_steps_per_epoch": None}
    exp = tmp_path / "long.yaml"
    exp.write_text(yaml.safe_dump({**QUICK, "train": train, "eval": {"after_train": False}}))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "simclr", "train", str(exp), "--nproc", "2", "--no-progress", "--out", str(run)]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while not (run / "metrics.jsonl").is_file() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    launcher.send_signal(signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 130, stderr[-3000:]
    assert stderr.count("stopped by SIGTERM") == 1 and "Traceback" not in stderr
    state = load_checkpoint(run)
    assert state["global_step"] > 0 and state["epoch"] < 50
    workers = subprocess.run(["pgrep", "-f", "--", f"--out {run}"], capture_output=True, text=True).stdout
    assert workers == ""


def shutdown_worker(rank: int, world_size: int, port: int, out: Path) -> None:
    """Rank 0 is still busy (drawing plots, say) when rank 1 finishes: with ``together`` rank 1 waits for it."""
    from simclr.runtime import shutdown

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.distributed.init_process_group("gloo")
    runtime = Runtime(torch.device("cpu"), "fp32", False, rank=rank, world_size=world_size)
    if rank == 0:
        time.sleep(1.0)
    started = time.monotonic()
    shutdown(runtime, together=True)
    (out / f"rank-{rank}").write_text(f"{time.monotonic() - started} {torch.distributed.is_initialized()}")


def failing_trainer_worker(rank: int, world_size: int, port: int, out: Path) -> None:
    """Both ranks join the process group, then find the run to resume has no checkpoint."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0"
    )
    try:
        Trainer(step_experiment("nt_xent"), out / "no-run", resume=True, device="cpu", show_progress=False)
    except UserError as exc:
        joined = torch.distributed.is_initialized()
        (out / f"rank-{rank}").write_text(f"{joined} {type(exc).__name__}")


def run_dir_worker(rank: int, world_size: int, port: int, out: Path) -> None:
    """Each rank names its own run directory, as plain torchrun ranks without --out do (the timestamps differ)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0"
    )
    trainer = Trainer(step_experiment("nt_xent"), out / f"run-of-rank-{rank}", device="cpu", show_progress=False)
    (out / f"rank-{rank}").write_text(str(trainer.run_dir))
    torch.distributed.destroy_process_group()


def test_every_rank_uses_rank_0s_run_directory(tmp_path):
    mp.spawn(run_dir_worker, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    assert [(tmp_path / f"rank-{rank}").read_text() for rank in range(2)] == [str(tmp_path / "run-of-rank-0")] * 2


def test_a_trainer_that_cannot_start_leaves_the_process_group(tmp_path):
    """Under torchrun the trainer joins the process group first: a rank whose trainer then fails leaves it (so
    the process exits without NCCL's warnings, and its peers see it gone rather than wait for it)."""
    mp.spawn(failing_trainer_worker, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    assert [(tmp_path / f"rank-{rank}").read_text() for rank in range(2)] == ["False UserError"] * 2


def test_ranks_leave_the_process_group_together(tmp_path):
    mp.spawn(shutdown_worker, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    waited, initialized = (tmp_path / "rank-1").read_text().split()
    assert float(waited) > 0.5 and initialized == "False"
