"""How fast does this machine train the book's MLP? One command, one run:

    python -m mnist_helpers.bench [--json PATH] [--batches N] [--rounds R] [--dry-run]

It measures, on the current machine and in the same run:

* the samples per second that three pipelines sustain while training the
  784-512-512-10 MLP with SGD at batch 32: the original notebook's (torchvision's
  MNIST with ``ToTensor``, a DataLoader with 3 workers), the book's (normalised
  tensors in memory, chapter 4) and the compute-only ceiling (one batch already in
  memory, used again and again: no data loading at all);
* the matrix-multiply speed of the machine (sgemm, GFLOP/s) and the floating-point
  work of one training step per sample, counted from the layer sizes, so that the
  ceiling reads as a fraction of the hardware's peak;
* the seconds the final recipe (chapter 4) and the speed recipe (chapter 11) train
  for, with the test accuracy each reaches (the target: 98.5%), also in units of one
  epoch of the original notebook as it runs: all 60,000 images, timed from the
  start of the epoch, when its 3 workers start, to its last step (the unit chapter
  11 uses). The pipelines' seconds per epoch are at their steady rate instead.

* the samples per second of data-parallel training (chapter 12): the final recipe at
  its global batch of 256 for a fixed number of steps, in two processes of one
  thread each (``torchrun``, gloo, on the CPU) beside one process with its default
  threads.

Progress goes to stderr, the table to stdout, and ``--json`` writes every figure.
``--dry-run`` runs the same code on tiny sizes in a few seconds (for the tests): its
figures mean nothing. Timings depend on whatever else runs: use a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoints import read_checkpoint
from .data import TensorLoader, load_mnist, load_tensors, normalize, train_val_split
from .model import MLP
from .recipe import FINAL_RECIPE, train_final_model
from .runtime import get_device, synchronize
from .speedrun import SPEED_RECIPE, SpeedRecipe, speedrun
from .training import evaluate

__all__ = [
    "flop_per_sample",
    "main",
    "original_epoch_seconds",
    "samples_per_second",
    "sgemm_gflops",
]

LAYERS = (784, 512, 512, 10)
NUM_TRAIN = 60_000  # one epoch of the original notebook
WARMUP_BATCHES = 5
TARGET_ACCURACY = 0.985


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def flop_per_sample(layers=LAYERS) -> int:
    """Floating-point operations per sample of one training step of an MLP with
    these layer sizes: per linear layer of ``n_in x n_out`` weights, a forward
    product and the weights' gradient (``2 * n_in * n_out`` each), and the gradient
    of its input (the same again) for every layer but the first (the images need
    no gradient). Biases, activations and the optimizer are left out (little: the
    optimizer's work is per weight once per batch, the others' per unit)."""
    pairs = list(zip(layers, layers[1:]))
    total = sum(4 * n_in * n_out for n_in, n_out in pairs)
    return total + sum(2 * n_in * n_out for n_in, n_out in pairs[1:])


def sgemm_gflops(size: int = 2048, repeats: int = 5, device="cpu") -> float:
    """The best rate of a ``size x size`` float32 matrix product, in GFLOP/s."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def samples_per_second(loader, num_batches: int, device) -> float:
    """Train a fresh MLP with SGD (lr 0.01) on ``num_batches`` batches from
    ``loader``, after a few warm-up batches (which also start any workers), and
    return the samples per second."""
    torch.manual_seed(0)
    model = MLP().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    batches = iter(loader)
    count, start = 0, time.perf_counter()
    for step in range(WARMUP_BATCHES + num_batches):
        if step == WARMUP_BATCHES:
            synchronize(device)
            start, count = time.perf_counter(), 0
        X, y = next(batches)
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad()
        loss_fn(model(X), y).backward()
        optimizer.step()
        count += len(y)
    synchronize(device)
    seconds = time.perf_counter() - start
    del batches  # shuts the workers down
    return count / seconds


def original_epoch_seconds(num_batches: int | None = None, device="cpu") -> float:
    """Seconds of one whole epoch of the original notebook as it runs: a fresh MLP
    trained with SGD (lr 0.01) at batch 32 on torchvision's MNIST with ``ToTensor``,
    through a DataLoader with 3 workers, timed from the start of the epoch, when the
    workers start, to its last step. Chapter 11 measures its unit of training time
    the same way. With ``num_batches``, only that many batches run and the time is
    scaled to the whole epoch (for the dry run)."""
    torch.manual_seed(0)
    model = MLP().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    with warnings.catch_warnings():
        # 3 workers on fewer cores make PyTorch warn: measuring that is the point
        warnings.filterwarnings(
            "ignore", message="This DataLoader will create", category=UserWarning
        )
        loader = DataLoader(load_mnist(train=True), batch_size=32, shuffle=True, num_workers=3)
        count = 0
        synchronize(device)
        start = time.perf_counter()
        for X, y in itertools.islice(loader, num_batches):  # the workers start here
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()
            loss_fn(model(X), y).backward()
            optimizer.step()
            count += 1
        synchronize(device)
        seconds = time.perf_counter() - start
    return seconds * len(loader) / count


def measure_pipelines(num_batches: int, rounds: int, device) -> dict[str, float]:
    """Samples per second at batch 32 of the original pipeline, the book's
    in-memory pipeline and the compute-only ceiling (best of ``rounds``, since
    other programs only ever slow a measurement down)."""
    train_set = load_mnist(train=True)  # ToTensor, as in the original
    images, labels = load_tensors(train=True)
    X_all, y_all = normalize(images).to(device), labels.to(device)
    X_one, y_one = X_all[:32].clone(), y_all[:32].clone()
    makers = {
        "original": lambda: DataLoader(train_set, batch_size=32, shuffle=True, num_workers=3),
        "in_memory": lambda: TensorLoader(X_all, y_all, batch_size=32, shuffle=True),
        "compute_only": lambda: itertools.repeat((X_one, y_one)),
    }
    rates = dict.fromkeys(makers, 0.0)
    for round_ in range(1, rounds + 1):
        for name, make_loader in makers.items():
            log(f"pipeline {name}, round {round_} of {rounds}: {num_batches} batches")
            with warnings.catch_warnings():
                # 3 workers on fewer cores make PyTorch warn: measuring that is the point
                warnings.filterwarnings(
                    "ignore", message="This DataLoader will create", category=UserWarning
                )
                rate = samples_per_second(make_loader(), num_batches, device)
            rates[name] = max(rates[name], rate)
    return rates


def _test_accuracy(model, device, num_test: int | None = None) -> float:
    images, labels = load_tensors(train=False)
    X_test, y_test = normalize(images[:num_test]), labels[:num_test]
    loader = TensorLoader(X_test, y_test, batch_size=1000)
    return evaluate(model, loader, device=device).accuracy


def run_final_recipe(device, dry_run: bool) -> tuple[float, float]:
    """Seconds of training (the per-epoch times ``fit`` records: training and
    validation) and test accuracy of the final recipe. The dry run trains one epoch
    of the same settings on 512 images."""
    if dry_run:
        from .recipe import ShiftedLoader
        from .training import fit

        images, labels = load_tensors(train=True)
        X, y = normalize(images[:640]), labels[:640]
        generator = torch.Generator().manual_seed(FINAL_RECIPE.seed)
        train = ShiftedLoader(
            TensorLoader(X[:512], y[:512], FINAL_RECIPE.batch_size, True, generator)
        )
        model = MLP().to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), FINAL_RECIPE.max_lr, weight_decay=FINAL_RECIPE.weight_decay
        )
        history = fit(
            model, train, TensorLoader(X[512:], y[512:]), optimizer, 1, device=device, log=None
        )
        return sum(history["seconds"]), _test_accuracy(model, device, 1000)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "final.pt"
        model = train_final_model(device, path, log=lambda line: log(f"final recipe: {line}"))
        history = read_checkpoint(path)["history"]
    return sum(history["seconds"]), _test_accuracy(model, device)


def run_speed_recipe(device, dry_run: bool) -> tuple[float, float]:
    """Seconds of training and test accuracy of the speed recipe (in the dry run:
    one epoch on 1,024 images)."""
    images, labels = load_tensors(train=True)
    train_idx, _ = train_val_split()
    recipe = SPEED_RECIPE
    if dry_run:
        train_idx = train_idx[:1024]
        recipe = SpeedRecipe(**{**recipe.__dict__, "epochs": 1})
    X = normalize(images[train_idx]).to(device)
    y = labels[train_idx].to(device)
    model, seconds = speedrun(X, y, recipe, device)
    return seconds, _test_accuracy(model, device, 1000 if dry_run else None)


def run_data_parallel(dry_run: bool) -> dict[str, dict]:
    """Data-parallel training (chapter 12) against one process at the same global
    batch: the final recipe's settings for 200 steps (3 on 1,024 images in the dry
    run) on the CPU, in two processes of one thread each started by ``torchrun``
    and in this process with its default threads. Each row: processes, threads per
    process, steps, seconds of training and samples per second."""
    from . import ddp

    steps = 3 if dry_run else 200
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        args = ["-m", "mnist_helpers.ddp", "--device", "cpu", "--max-steps", str(steps)]
        if dry_run:
            args += ["--max-samples", "1024"]
        for name, processes in (("two_processes", 2), ("one_process", 1)):
            log(f"data parallel: processes: {processes}, steps: {steps}")
            checkpoint = ["--checkpoint", str(Path(folder) / f"{name}.pt")]
            if processes == 1:  # in this process, as chapter 12's run_alone
                with contextlib.redirect_stdout(io.StringIO()) as printed:
                    status = ddp.main([*args[2:], *checkpoint])
                done = subprocess.CompletedProcess(args, status, printed.getvalue(),
                                                   "(its messages are above)")
            else:
                done = ddp.torchrun("--standalone", "--nproc-per-node=2", *args, *checkpoint,
                                    timeout=900)
            if done.returncode != 0:
                raise RuntimeError(f"the data-parallel run failed:\n{done.stderr[-2000:]}")
            threads = int(re.search(r"threads per process: (\d+)", done.stdout)[1])
            seconds = float(re.search(r"steps in ([\d.]+) s of training", done.stdout)[1])
            rows[name] = {
                "processes": processes,
                "threads_per_process": threads,
                "steps": steps,
                "seconds": seconds,
                "samples_per_second": steps * FINAL_RECIPE.batch_size / seconds,
            }
    return rows


def run(num_batches: int = 200, rounds: int = 2, dry_run: bool = False) -> dict:
    """Every measurement, as a JSON-ready dictionary."""
    device = get_device()
    torch.manual_seed(0)
    log(f"device {device}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} threads")
    log("matrix-multiply speed (sgemm)")
    gflops = sgemm_gflops(256 if dry_run else 2048, 2 if dry_run else 5, device)
    rates = measure_pipelines(num_batches, rounds, device)
    log("one whole epoch of the original notebook, worker start included")
    original_epoch = original_epoch_seconds(3 if dry_run else None, device)
    flop = flop_per_sample()
    peak = gflops * 1e9 / flop
    recipes = {}
    for name, runner in (("final", run_final_recipe), ("speed", run_speed_recipe)):
        log(f"{name} recipe: training")
        seconds, accuracy = runner(device, dry_run)
        recipes[name] = {
            "seconds": seconds,
            "test_accuracy": accuracy,
            "reaches_target": accuracy >= TARGET_ACCURACY,
            "original_epochs": seconds / original_epoch,
        }
    recipes["final"]["settings"] = FINAL_RECIPE.__dict__
    recipes["speed"]["settings"] = SPEED_RECIPE.__dict__
    data_parallel = run_data_parallel(dry_run)
    log("done")
    return {
        "dry_run": dry_run,
        "machine": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name() if device.type == "cuda" else None,
            "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "model": {"layers": list(LAYERS), "flop_per_sample": flop},
        "sgemm_gflops": gflops,
        "peak_samples_per_second": peak,
        "batch_size": 32,
        "timed_batches": num_batches,
        "rounds": rounds,
        "pipelines": {
            name: {
                "samples_per_second": rate,
                "epoch_seconds": NUM_TRAIN / rate,
                "vs_original": rate / rates["original"],
                "fraction_of_peak": rate / peak,
            }
            for name, rate in rates.items()
        },
        "original_epoch_seconds": original_epoch,
        "target_accuracy": TARGET_ACCURACY,
        "recipes": recipes,
        "data_parallel": data_parallel,
    }


def format_table(result: dict) -> str:
    """The measurements as a plain-text table."""
    machine = result["machine"]
    lines = [
        f"device {machine['device_name'] or machine['device']}, {machine['cpu_cores']} "
        f"CPU cores, torch {machine['torch']} ({machine['torch_threads']} threads)",
        f"784-512-512-10 MLP: {result['model']['flop_per_sample'] / 1e6:.2f} MFLOP per "
        f"sample per training step; sgemm {result['sgemm_gflops']:.0f} GFLOP/s, so at "
        f"most {result['peak_samples_per_second']:,.0f} samples/s",
        "",
        f"{'pipeline (batch 32, SGD)':28} {'samples/s':>10} {'s/epoch':>8} "
        f"{'vs original':>11} {'of peak':>8}",
    ]
    for name, row in result["pipelines"].items():
        lines.append(
            f"{name.replace('_', ' '):28} {row['samples_per_second']:10,.0f} "
            f"{row['epoch_seconds']:8.1f} {row['vs_original']:10.1f}x "
            f"{row['fraction_of_peak']:8.0%}"
        )
    lines += [
        "",
        f"{'recipe':28} {'seconds':>10} {'original epochs':>16} {'test accuracy':>14}",
    ]
    for name, row in result["recipes"].items():
        mark = "" if row["reaches_target"] else "  (below target)"
        lines.append(
            f"{name:28} {row['seconds']:10.1f} {row['original_epochs']:16.2f} "
            f"{row['test_accuracy']:14.2%}{mark}"
        )
    lines.append(
        f"(original epochs: one whole epoch of the original notebook, worker start "
        f"included, {result['original_epoch_seconds']:.1f} s; "
        f"target {result['target_accuracy']:.1%})"
    )
    lines += [
        "",
        f"{'data parallel (CPU, batch 256)':32} {'threads':>7} {'steps':>6} "
        f"{'seconds':>8} {'samples/s':>10}",
    ]
    for name, row in result["data_parallel"].items():
        lines.append(
            f"{name.replace('_', ' '):32} {row['threads_per_process']:7} "
            f"{row['steps']:6} {row['seconds']:8.2f} {row['samples_per_second']:10,.0f}"
        )
    if result["dry_run"]:
        lines.append("DRY RUN: tiny sizes, the figures mean nothing")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_helpers.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write JSON here")
    parser.add_argument("--batches", type=int, default=200, help="timed batches (200)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, best kept (2)")
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny sizes, a few seconds: a smoke test"
    )
    args = parser.parse_args(argv)
    if args.batches < 1 or args.rounds < 1:
        parser.error("--batches and --rounds must be at least 1")
    if args.dry_run:
        args.batches, args.rounds = min(args.batches, 3), 1
    result = run(args.batches, args.rounds, args.dry_run)
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
