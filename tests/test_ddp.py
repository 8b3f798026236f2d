"""The data-parallel script of chapter 12, ``mnist_helpers.ddp``: a failed run
started again by hand resumes to the same weights, bad input stops at once with a
message that says what to do, and a launch past its timeout is stopped with every
process it started. The runs use the real MNIST, a few hundred images of it, on the
CPU. What needs ``torchrun`` itself (two processes take the steps of one, the log and
the checkpoint come from rank 0, ``--max-restarts`` resumes a failed group to the
same weights, two nodes meet at a rendezvous) is asserted by chapter 12's hidden
checks, which the test command runs: each launch costs several process starts."""

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
import torch.distributed as dist

from mnist_helpers import MLP, save_checkpoint
from mnist_helpers.ddp import (
    SetupError,
    check_batch,
    epoch_seed,
    finish,
    main,
    start_torchrun,
    torchrun,
)

TINY = ["--device", "cpu", "--max-samples", "512", "--batch-size", "64"]


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def run_alone(*args):
    """The script in this process, as a world of one; returns its exit status."""
    status = main([str(arg) for arg in args])
    assert not dist.is_initialized(), "destroy_process_group was not called"
    return status


def test_a_run_started_again_resumes_to_the_same_weights(real_root, tmp_path, capsys):
    args = [*TINY, "--epochs", "3"]
    assert run_alone(*args, "--checkpoint", tmp_path / "whole.pt") == 0
    path = tmp_path / "failed.pt"
    assert run_alone(*args, "--checkpoint", path, "--crash-at-epoch", "2") == 1
    assert "failing on purpose in epoch 2" in capsys.readouterr().err
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert run_alone(*args, "--checkpoint", path) == 0  # started again
    assert f"resumed from {path} after epoch 1" in capsys.readouterr().out
    whole, resumed = weights(tmp_path / "whole.pt"), weights(path)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_epoch_seeds_depend_on_seed_epoch_and_rank_only():
    assert epoch_seed(0, 3, 1) == epoch_seed(0, 3, 1)
    seeds = {epoch_seed(s, e, r) for s in (0, 1) for e in (1, 2) for r in (0, 1)}
    assert len(seeds) == 8


# --- bad input ----------------------------------------------------------------------


def test_a_batch_that_does_not_split_is_refused(monkeypatch, capsys, tmp_path):
    with pytest.raises(SetupError, match="a multiple of 3 to --batch-size"):
        check_batch(128, 3)
    assert check_batch(129, 3) == 43
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun would set it
    assert run_alone("--batch-size", "128", "--checkpoint", tmp_path / "x.pt") == 2
    error = capsys.readouterr().err
    assert "does not split evenly over 3 processes" in error and "such as 126" in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_nccl_without_a_gpu_is_refused(capsys, tmp_path):
    assert run_alone("--backend", "nccl", "--checkpoint", tmp_path / "x.pt") == 2
    error = capsys.readouterr().err
    assert "--backend nccl needs one CUDA GPU per process" in error
    assert "use --backend gloo" in error


def test_a_checkpoint_of_another_architecture_is_refused(real_root, capsys, tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(path, MLP(hidden_sizes=(16,)))
    assert run_alone(*TINY, "--checkpoint", path) == 2
    error = capsys.readouterr().err
    assert "different architecture" in error and "hidden_sizes=[16]" in error


def test_a_port_in_use_is_refused_before_anything_starts():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(SetupError, match=f"port {port} on 127.0.0.1 is already in use"):
            torchrun("--nnodes=1", "--rdzv-backend=c10d",
                     f"--rdzv-endpoint=127.0.0.1:{port}", "-m", "mnist_helpers.ddp",
                     timeout=10)  # fmt: skip


def test_a_launch_past_its_timeout_is_stopped_with_its_children():
    code = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(60)']); print('started', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    start = time.perf_counter()
    with pytest.raises(subprocess.TimeoutExpired):
        finish(process, timeout=2)
    assert time.perf_counter() - start < 30
    assert process.poll() in (-signal.SIGTERM, -signal.SIGKILL)
    for _ in range(100):  # the whole group is gone, its child too
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a process of the launch outlived its timeout")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split()[2] == "Z")


def test_a_torchrun_past_its_timeout_is_stopped_with_its_workers(tmp_path):
    """torchrun starts every worker in a session of its own, which a signal to the
    launch's process group does not reach: the workers must stop too."""
    pid_file, script = tmp_path / "worker.pid", tmp_path / "sleeper.py"
    script.write_text(
        "import os, pathlib, sys, time\n"
        "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    process = start_torchrun("--standalone", "--nproc-per-node=1", script, pid_file)
    for _ in range(1200):  # the worker starts: at most 120 s, on a busy machine
        if pid_file.is_file() and pid_file.read_text():
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    else:
        with pytest.raises(subprocess.TimeoutExpired):
            finish(process, timeout=0.1)  # stops the launch
        pytest.fail("torchrun's worker did not start within 120 s")
    worker = int(pid_file.read_text())
    with pytest.raises(subprocess.TimeoutExpired):
        finish(process, timeout=0.1)
    assert process.poll() is not None
    for _ in range(300):
        if not _alive(worker):
            break
        time.sleep(0.1)
    else:
        pytest.fail("a worker of torchrun outlived the launch's timeout")


def test_chapter_12_quotes_the_stored_restart_experiment():
    """The box on the rendezvous store quotes benchmarks/restart_store.py's stored
    run: its counts of failed, refused and hung restarts, without and with a store
    of its own for every attempt."""
    root = Path(__file__).resolve().parents[1]
    stored = json.loads((root / "benchmarks/results/restart_store.json").read_text())
    shared, own = stored["tries"]["shared"], stored["tries"]["own"]
    words = {1: "once", 2: "twice", 3: "three times"}
    refused = sum("Connection refused" in t["cause"] for t in shared)
    hung = sum(t["outcome"] == "hung" for t in shared)
    failed = sum(t["outcome"] != "resumed" for t in shared)
    assert failed == refused + hung and all(t["outcome"] == "resumed" for t in own)
    chapter = json.loads((root / "notebooks/12_distributed.ipynb").read_text())
    box = " ".join(" ".join(cell["source"]) for cell in chapter["cells"]).split()
    box = " ".join(box)
    assert f"Tried {len(shared)} times each way" in box
    assert f"failed in {failed} of {len(shared)} tries without the variable" in box
    assert f"{words[refused]} gloo reported `Connection refused`" in box
    assert f"{words[hung]} the group hung" in box
    assert f"with PyTorch {stored['torch'].split('+')[0]}" in box
    assert f"all {len(own)} restarts worked" in box
