"""Does a group restarted by ``torchrun --max-restarts`` need a store of its own?
(Chapter 12, the box "why every attempt needs a store of its own".)

    python benchmarks/restart_store.py [--tries N] [--timeout S] [--json PATH]

Runs chapter 12's restart on a small scale, ``N`` times (default 6) in each of two
settings, interleaved: two processes on the CPU (``torchrun --standalone
--nproc-per-node=2 --max-restarts=1 -m mnist_helpers.ddp --device cpu``) train 3
epochs on 4,000 images, and the last process fails on purpose in epoch 2
(``--crash-at-epoch 2``), so that ``torchrun`` starts the group again. The settings:

* ``shared``: PyTorch's default, the restarted group reuses the rendezvous store of
  the failed one;
* ``own``: ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, every attempt gets a store of
  its own (what chapter 12 sets).

Each try ends one of three ways: ``resumed`` (the second attempt resumed from the
checkpoint and finished), ``failed`` (``torchrun`` gave up; the last line of its
report that names a cause, the root cause of the last attempt, is kept) or ``hung``
(still running after ``S`` seconds, default 120: every process of the launch is then
stopped). A process waits at most
60 s for the others (the script's ``--timeout``). Progress goes to stderr, the table
to stdout, ``--json`` writes every try. The outcome depends on timing, so it can
differ from one machine, load and PyTorch release to another: run it where you train.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from mnist_helpers.ddp import torchrun

SETTINGS = {"shared": {}, "own": {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}}
CAUSES = ("Connection refused", "Connection closed", "timed out", "Error")


def one_try(env: dict, folder: Path, timeout: float) -> dict:
    """One restart: its outcome and, for a failure, the line that says why."""
    checkpoint = folder / "restart.pt"
    try:
        done = torchrun(
            "--standalone", "--nproc-per-node=2", "--max-restarts=1",
            "-m", "mnist_helpers.ddp", "--device", "cpu", "--max-samples", "4000",
            "--epochs", "3", "--crash-at-epoch", "2", "--timeout", "60",
            "--checkpoint", checkpoint, env=env, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"outcome": "hung", "cause": f"still running after {timeout:.0f} s"}
    if done.returncode == 0 and "(attempt 2)" in done.stdout:
        return {"outcome": "resumed", "cause": ""}
    lines = done.stderr.splitlines()
    # the last attempt's cause: the root cause in torchrun's report comes last
    causes = [line for line in reversed(lines) if any(c in line for c in CAUSES)]
    return {"outcome": "failed", "cause": (causes or lines[-1:] or [""])[0][-300:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=6, help="tries per setting")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per try")
    parser.add_argument("--json", type=Path, help="write every try to this file")
    args = parser.parse_args(argv)
    if args.tries < 1 or args.timeout <= 0:
        parser.error("--tries must be at least 1 and --timeout positive")
    tries = {name: [] for name in SETTINGS}
    for number in range(1, args.tries + 1):
        for name, env in SETTINGS.items():  # interleaved
            with tempfile.TemporaryDirectory() as folder:
                result = one_try(env, Path(folder), args.timeout)
            tries[name].append(result)
            print(f"[restart] try {number}, store {name}: {result['outcome']} "
                  f"{result['cause']}".rstrip(), file=sys.stderr, flush=True)
    print(f"PyTorch {torch.__version__}, {platform.machine()}, {args.tries} tries each")
    print(f"{'store':8} {'resumed':>8} {'failed':>7} {'hung':>5}")
    for name, results in tries.items():
        counts = [sum(r["outcome"] == o for r in results) for o in ("resumed", "failed", "hung")]
        print(f"{name:8} {counts[0]:8} {counts[1]:7} {counts[2]:5}")
    if args.json:
        args.json.write_text(json.dumps(
            {"torch": torch.__version__, "python": platform.python_version(),
             "machine": platform.machine(), "cpu_count": os.cpu_count(),
             "tries": tries}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
