"""Data-parallel training of the book's MLP with ``torch.distributed``
(chapter 12).

Start it with ``torchrun``, which starts one process per device and tells each
its rank::

    torchrun --standalone --nproc-per-node=2 -m mnist_helpers.ddp [options]

Every process holds a full copy of the model and trains on its own share of
every batch (a :class:`~torch.utils.data.DistributedSampler` deals the shares);
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients, so
every copy takes the same step. Validation and test figures are summed over
the processes with ``all_reduce``. Rank 0 alone logs and saves the checkpoint
(the book's one format, :func:`~mnist_helpers.save_checkpoint`) after every
epoch; a run started again with the same ``--checkpoint`` continues from it,
and since the data order and every process's random numbers are a function of
the seed, the epoch and the rank, it ends with the same weights as a run that
never stopped. Started without ``torchrun``, the script trains in one process.

:func:`torchrun` and :func:`start_torchrun` launch it from Python (the chapter
and the tests do), with a timeout and a check that the rendezvous port is free.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import (
    ShiftedLoader,
    TensorLoader,
    data_dir,
    ensure_mnist,
    load_tensors,
    normalize,
    train_val_split,
)
from .model import MLP
from .recipe import FINAL_RECIPE
from .runtime import seed_everything
from .training import evaluate

__all__ = [
    "SetupError",
    "check_batch",
    "epoch_seed",
    "finish",
    "free_port",
    "main",
    "start_torchrun",
    "torchrun",
]


class SetupError(ValueError):
    """The run cannot start as asked (batch size, backend, port...): the
    message says what to change."""


class InjectedFailure(RuntimeError):
    """The failure that ``--crash-at-epoch`` asks for, to show a restart."""


# --- the command line -------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    recipe = FINAL_RECIPE
    parser = argparse.ArgumentParser(
        prog="torchrun --standalone --nproc-per-node=2 -m mnist_helpers.ddp",
        description="Train the book's MLP data-parallel on MNIST. Defaults: "
        "chapter 4's final recipe (AdamW, one-cycle schedule, random shifts).",
    )
    add = parser.add_argument
    add("--epochs", type=int, default=recipe.epochs,
        help="epochs (%(default)s)")
    add("--batch-size", type=int, default=recipe.batch_size,
        help="global batch: the sum over all processes (%(default)s)")
    add("--optimizer", choices=("adamw", "sgd"), default="adamw",
        help="adamw with a one-cycle schedule, or sgd with momentum 0.9 at "
        "a constant --lr (%(default)s)")
    add("--lr", type=float, default=recipe.max_lr,
        help="peak learning rate of the one-cycle schedule, or SGD's "
        "(%(default)s)")
    add("--weight-decay", type=float, default=recipe.weight_decay)
    add("--dropout", type=float, default=0.2)
    add("--max-shift", type=int, default=recipe.max_shift,
        help="random shifts of up to this many pixels (%(default)s)")
    add("--seed", type=int, default=recipe.seed)
    add("--max-steps", type=int, default=None,
        help="stop after this many optimizer steps (then no checkpoint)")
    add("--save-steps", type=int, nargs="*", default=[],
        help="also save the weights after these steps, to "
        "<checkpoint>.step<N>.pt")
    add("--max-samples", type=int, default=None,
        help="train on this many images; validate and test on a fifth as "
        "many")
    add("--data-dir", type=Path, default=None,
        help="the folder that holds MNIST/raw (default: the book's)")
    add("--checkpoint", type=Path, default=Path("checkpoints/ddp.pt"),
        help="saved after every epoch, resumed from when it exists "
        "(%(default)s)")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="auto: one GPU per process when there are GPUs, else the CPU")
    add("--backend", choices=("auto", "gloo", "nccl"), default="auto",
        help="auto: nccl on GPUs, gloo on the CPU")
    add("--timeout", type=float, default=120.0,
        help="seconds a process waits for the others before it gives up "
        "(%(default)s)")
    add("--crash-at-epoch", type=int, default=None,
        help="for teaching: the last process fails halfway through this "
        "epoch, on the first attempt only (see torchrun --max-restarts)")
    return parser.parse_args(argv)


# --- setting up the processes ----------------------------------------------


def world() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` as ``torchrun`` sets them in the
    environment; ``(0, 0, 1)`` without it."""
    return (
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("LOCAL_RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
    )


def choose_device(args, local_rank: int) -> tuple[torch.device, str]:
    """The device of this process (one GPU per local rank) and the backend."""
    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        raise SetupError(
            "--device cuda asks for a GPU, but PyTorch sees none "
            "(torch.cuda.is_available() is False): use --device cpu."
        )
    use_cuda = args.device == "cuda" or (args.device == "auto" and cuda)
    backend = args.backend
    if backend == "auto":
        backend = "nccl" if use_cuda else "gloo"
    if backend == "nccl" and not use_cuda:
        why = "--device cpu was asked for" if cuda else "this machine has none"
        raise SetupError(
            f"--backend nccl needs one CUDA GPU per process, and {why}: use "
            "--backend gloo (or leave --backend auto) to train on the CPU."
        )
    if not use_cuda:
        return torch.device("cpu"), backend
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    gpus = torch.cuda.device_count()
    if local_world > gpus:
        raise SetupError(
            f"{local_world} processes on this machine but {gpus} GPU(s): "
            f"start torchrun with --nproc-per-node={gpus}, or pass "
            "--device cpu."
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank), backend


def check_batch(batch_size: int, world_size: int) -> int:
    """The batch of one process: the global batch split evenly over them
    all. Raises :class:`SetupError` when it does not split."""
    if batch_size < world_size or batch_size % world_size:
        lower = max(world_size, batch_size // world_size * world_size)
        raise SetupError(
            f"the global batch of {batch_size} does not split evenly over "
            f"{world_size} processes: pass a multiple of {world_size} to "
            f"--batch-size (such as {lower} or {lower + world_size}), or "
            "start another number of processes."
        )
    return batch_size // world_size


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one process in one epoch: a function of these three and of
    nothing else (no state to save), different for every epoch and rank."""
    mixed = np.random.SeedSequence([seed, epoch, rank])
    return int(mixed.generate_state(1)[0])


# --- data, evaluation, one epoch -------------------------------------------


def load_data(args, local_rank: int) -> dict:
    """The book's split, normalised, in memory: ``{"train": (X, y), "val":
    ..., "test": ...}``. Each machine's local rank 0 checks (or downloads)
    the files while the others wait at the barrier."""
    root = args.data_dir or data_dir()
    if local_rank == 0:
        ensure_mnist(root)
    dist.barrier()  # nobody reads the files before they are there
    images, labels = load_tensors(train=True, root=root, download=False)
    test_images, test_labels = load_tensors(False, root, download=False)
    train_idx, val_idx = train_val_split()
    test_idx = torch.arange(len(test_labels))
    if args.max_samples:  # a tiny run: the first images of each set
        train_idx = train_idx[: args.max_samples]
        val_idx = val_idx[: args.max_samples // 5]
        test_idx = test_idx[: args.max_samples // 5]
    return {  # only the images used are normalised
        "train": (normalize(images[train_idx]), labels[train_idx]),
        "val": (normalize(images[val_idx]), labels[val_idx]),
        "test": (normalize(test_images[test_idx]), test_labels[test_idx]),
    }


def shard_evaluate(model, X, y, device) -> tuple[float, float]:
    """Loss and accuracy on ``X, y``: every rank evaluates every
    world-size-th image, and ``all_reduce`` adds up their sums."""
    rank = dist.get_rank()
    world_size = dist.get_world_size()
    X, y = X[rank::world_size], y[rank::world_size]
    result = evaluate(model, TensorLoader(X, y, 1000), device=device)
    correct = (result.predictions == result.targets).sum().item()
    totals = torch.tensor([result.loss * len(y), correct, len(y)],
                          dtype=torch.float64, device=device)
    dist.all_reduce(totals)  # the sums over all ranks, on every rank
    loss, correct, count = totals.tolist()
    return loss / count, correct / count


def train_epoch(model, loader, optimizer, scheduler, device, step, args):
    """One epoch of the five-step loop; DDP averages the gradients inside
    ``backward()``. Returns the sums of the losses, the correct answers and
    the images of this rank, and the step reached (at most --max-steps)."""
    model.train()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for batch, (X, y) in enumerate(loader):
        if batch == len(loader) // 2 and fails_now(args):
            raise InjectedFailure(
                f"failing on purpose in epoch {args.epoch}, batch {batch}")
        X, y = X.to(device), y.to(device)
        optimizer.zero_grad()
        logits = model(X)
        loss = F.cross_entropy(logits, y)
        loss.backward()  # the gradients are all-reduced here, in buckets
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        correct = (logits.argmax(dim=1) == y).sum().item()
        totals += torch.tensor([loss.item() * len(y), correct, len(y)],
                               dtype=torch.float64, device=device)
        if step in args.save_steps and dist.get_rank() == 0:
            save_checkpoint(snapshot_path(args.checkpoint, step),
                            model.module, epoch=args.epoch - 1)
        if step == args.max_steps:
            break
    return totals, step


def fails_now(args) -> bool:
    """Whether this process is the one ``--crash-at-epoch`` fails now: the
    last rank, in that epoch, on torchrun's first attempt."""
    first = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    last = dist.get_rank() == dist.get_world_size() - 1
    return args.epoch == args.crash_at_epoch and first and last


def snapshot_path(checkpoint: Path, step: int) -> Path:
    """``checkpoints/ddp.pt`` -> ``checkpoints/ddp.step10.pt``."""
    return checkpoint.with_suffix(f".step{step}.pt")


def make_optimizer(model, args, steps_per_epoch: int):
    """AdamW with a one-cycle schedule, or SGD with momentum (no schedule)."""
    if args.optimizer == "sgd":
        sgd = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        return sgd, None
    optimizer = torch.optim.AdamW(
        model.parameters(), weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs,
        steps_per_epoch=steps_per_epoch)
    return optimizer, scheduler


# --- the run ----------------------------------------------------------------


def train(args, device: torch.device) -> int:
    rank = dist.get_rank()
    world_size = dist.get_world_size()
    log = print if rank == 0 else (lambda *args, **kwargs: None)
    sets = load_data(args, local_rank=world()[1])
    X_train, y_train = sets["train"]
    per_rank = args.batch_size // world_size
    sampler = DistributedSampler(range(len(y_train)), world_size, rank,
                                 shuffle=True, seed=args.seed)
    steps_per_epoch = math.ceil(len(sampler) / per_rank)
    torch.manual_seed(args.seed)  # the same first weights everywhere
    model = MLP(dropout=args.dropout).to(device)
    optimizer, scheduler = make_optimizer(model, args, steps_per_epoch)
    history = {key: [] for key in
               ("train_loss", "train_acc", "val_loss", "val_acc", "seconds")}
    if args.checkpoint.is_file():  # every rank reads it, before DDP
        saved = load_checkpoint(args.checkpoint, model, optimizer, scheduler,
                                map_location=device)
        history = saved["history"]
        attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) + 1
        log(f"resumed from {args.checkpoint} after epoch {saved['epoch']} "
            f"(attempt {attempt})")
    model = DistributedDataParallel(model)  # broadcasts rank 0's weights
    processes = "process" if world_size == 1 else "processes"
    log(f"{world_size} {processes} on {device.type} ({dist.get_backend()}), "
        f"threads per process: {torch.get_num_threads()}")
    log(f"global batch {args.batch_size} = {world_size} x {per_rank}, "
        f"{len(y_train):,} training images")
    done = len(history["seconds"])
    step = done * steps_per_epoch  # the steps of the epochs done before
    train_seconds = sum(history["seconds"])
    for epoch in range(done + 1, args.epochs + 1):
        args.epoch = epoch
        sampler.set_epoch(epoch)  # a new order, the same on every rank
        seed = epoch_seed(args.seed, epoch, rank)
        generator = seed_everything(seed)  # the shifts; dropout too
        order = torch.tensor(list(sampler))  # this rank's share
        loader = ShiftedLoader(
            TensorLoader(X_train[order], y_train[order], per_rank,
                         generator=generator), args.max_shift)
        start = time.perf_counter()
        totals, step = train_epoch(model, loader, optimizer, scheduler,
                                   device, step, args)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        if step == args.max_steps:
            break
        dist.all_reduce(totals)  # the sums over all ranks
        train_loss, train_acc = (totals[:2] / totals[2]).tolist()
        val_loss, val_acc = shard_evaluate(model.module, *sets["val"], device)
        figures = (train_loss, train_acc, val_loss, val_acc, seconds)
        for key, value in zip(history, figures):
            history[key].append(value)
        if rank == 0:
            save_checkpoint(args.checkpoint, model.module, optimizer, epoch,
                            history, scheduler)
        dist.barrier()  # the checkpoint is complete before anyone goes on
        log(f"epoch {epoch:>2}/{args.epochs}  train loss {train_loss:.4f} "
            f"acc {train_acc:6.2%}  val loss {val_loss:.4f} acc "
            f"{val_acc:6.2%}  {seconds:5.1f} s", flush=True)
    test_loss, test_acc = shard_evaluate(model.module, *sets["test"], device)
    log(f"{step} steps in {train_seconds:.2f} s of training; test loss "
        f"{test_loss:.4f} accuracy {test_acc:.2%}", flush=True)
    return 0


def _stop(signum, frame):
    raise SystemExit(128 + signum)  # so that the finally clauses run


def main(argv: list[str] | None = None) -> int:
    """Train with the options ``argv`` (default: the command line), in the
    process group ``torchrun`` describes, or alone. Returns the exit status:
    0 when done, 2 for bad input (the message is on stderr), 1 for the
    failure ``--crash-at-epoch`` asks for."""
    args = parse_args(argv)
    rank, local_rank, world_size = world()
    try:  # checks that need no other process: all fail alike, at once
        check_batch(args.batch_size, world_size)
        device, backend = choose_device(args, local_rank)
    except SetupError as error:
        return report(error, rank)
    timeout = datetime.timedelta(seconds=args.timeout)
    sigterm = signal.getsignal(signal.SIGTERM)
    if "MASTER_ADDR" in os.environ:  # started by torchrun
        signal.signal(signal.SIGTERM, _stop)  # how torchrun stops us
        dist.init_process_group(backend, timeout=timeout)
    else:  # alone: a world of one process
        dist.init_process_group(backend, store=dist.HashStore(), rank=0,
                                world_size=1, timeout=timeout)
    try:
        return train(args, device)
    except (CheckpointError, SetupError) as error:  # alike on every rank
        return report(error, rank)
    except InjectedFailure as error:
        print(f"[rank {rank}] {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        dist.destroy_process_group()
        signal.signal(signal.SIGTERM, sigterm)


def report(error: Exception, rank: int) -> int:
    """Print ``error`` once (from rank 0: the others fail alike) and return
    the exit status 2."""
    if rank == 0:
        print(f"error: {error}", file=sys.stderr, flush=True)
    return 2


# --- launching from Python --------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on now (the system picks one)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _check_port(torchrun_args: list[str]) -> None:
    """Refuse a rendezvous endpoint whose port another program holds:
    torchrun would wait on that program until its rendezvous timeout."""
    for i, arg in enumerate(torchrun_args):
        if not arg.startswith(("--rdzv-endpoint", "--rdzv_endpoint")):
            continue
        endpoint = arg.split("=", 1)[1] if "=" in arg else torchrun_args[i + 1]
        host, _, port = endpoint.rpartition(":")
        with socket.socket() as sock:
            try:
                sock.bind((host, int(port)))
            except OSError as error:
                raise SetupError(
                    f"port {port} on {host} is already in use "
                    f"({error.strerror}): another run may still hold it. "
                    "Wait for it to end, or pass another port, e.g. "
                    f"--rdzv-endpoint={host}:{free_port(host)}."
                ) from None


def start_torchrun(*args, env: dict | None = None, check_port: bool = True):
    """Start ``torchrun *args`` (as ``python -m torch.distributed.run``) in a
    process group of its own, its output captured, and return the
    ``subprocess.Popen``. ``env`` adds environment variables. This process's
    ``OMP_NUM_THREADS`` is not passed on (``env`` may set it), so that
    ``torchrun``'s own default applies: one thread per process when it starts
    several. A rendezvous endpoint whose port is taken raises
    :class:`SetupError` first."""
    args = [str(arg) for arg in args]
    if check_port:
        _check_port(args)
    inherited = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**inherited, **(env or {})}, start_new_session=True,
    )


def finish(process, timeout: float = 300, grace: float = 60):
    """Wait for a :func:`start_torchrun` process and return its
    ``subprocess.CompletedProcess``; past ``timeout`` seconds, stop it and
    every process it started, and raise ``subprocess.TimeoutExpired``."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_launch(process, grace)
        raise
    return subprocess.CompletedProcess(
        process.args, process.returncode, stdout, stderr)


def _stop_launch(process, grace: float) -> None:
    """Stop a launch and what it started. torchrun starts each worker in a
    session of its own, out of reach of a signal to torchrun's group, so it
    gets SIGTERM first, which it passes on to its workers (waiting for them
    up to 30 s); whatever is left of the group after ``grace`` seconds gets
    SIGKILL. The pipes are closed last: nothing waits on them forever."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def torchrun(*args, timeout: float = 300, env: dict | None = None):
    """Run ``torchrun *args`` to the end (at most ``timeout`` seconds: see
    :func:`finish`) and return the ``subprocess.CompletedProcess``, with its
    stdout and stderr."""
    return finish(start_torchrun(*args, env=env), timeout)


if __name__ == "__main__":
    # record: torchrun's report then shows an exception that ends a process
    sys.exit(record(main)())
