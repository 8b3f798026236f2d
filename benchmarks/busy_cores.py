"""Small-batch training when other programs keep the cores busy (chapter 7).

    python benchmarks/busy_cores.py [--busy N] [--repeats R] [--min-run-time S] [--json PATH]
        [--max-slowdown F]

Trains the book's MLP (784-512-512-10, SGD, lr 0.01) on MNIST held in memory as
normalised tensors, in batches of 32, and prints the samples per second it sustains
with three settings:

* the defaults (PyTorch's OpenMP threads, one per core, spin while they wait);
* ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead);
* ``torch.set_num_threads(1)`` (one thread: none ever waits for another);

each once with no other work started by this script ("idle") and once while ``N``
other processes (default: one per core) each keep a core busy with
``python -c "while True: pass"``.

``OMP_WAIT_POLICY`` is read once, when PyTorch is imported, so every measurement runs
in a fresh Python process with its own environment. Each one times blocks of ten
training steps with ``torch.utils.benchmark.Timer.blocked_autorange`` (PyTorch's
benchmarking tool, which warms up, picks a block size and reports the median block)
and is repeated ``R`` times, in fresh processes, interleaved with the other settings;
the table gives the median of the repeats. "Idle" means only that this script starts
nothing: the load average printed with the table says how busy the machine already
was. The refresh's calibration (``scripts/refresh_notebooks.py``) runs before and
after the whole measurement: when either fell more than ``--max-slowdown`` below the
machine's best, other work was slowing it, and the script says so, writes no JSON and
exits with 1. Progress goes to stderr, the table to stdout, ``--json`` writes every
figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH_SIZE = 32
STEPS_PER_BLOCK = 10
SETTINGS = {  # name: (environment variables, torch threads or None for the default)
    "default": ({}, None),
    "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "torch.set_num_threads(1)": ({}, 1),
}
SPIN = "while True: pass"


def log(message: str) -> None:
    print(f"[busy_cores] {message}", file=sys.stderr, flush=True)


def measure_here(threads: int | None, min_run_time: float) -> dict:
    """Samples per second of in-memory training at batch 32, in this process."""
    import logging

    import torch

    # a CUDA build of PyTorch on a machine without a GPU logs a warning when
    # torch.utils.benchmark imports its C++ tools, which this script does not use
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch import nn
    from torch.utils.benchmark import Timer

    from mnist_helpers import MLP, TensorLoader, load_tensors, normalize

    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    images, labels = load_tensors(train=True)
    loader = TensorLoader(normalize(images), labels, BATCH_SIZE, shuffle=True)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def train(steps: int) -> None:
        for _ in range(steps):
            X, y = next(batches)
            optimizer.zero_grad()
            loss_fn(model(X), y).backward()
            optimizer.step()

    train(20)  # warm up
    timer = Timer(
        stmt=f"train({STEPS_PER_BLOCK})",
        globals={"train": train},
        num_threads=torch.get_num_threads(),  # the Timer's default is one thread
    )
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    samples = STEPS_PER_BLOCK * BATCH_SIZE
    return {
        "samples_per_second": samples / measurement.median,
        "iqr_seconds": measurement.iqr,
        "median_seconds": measurement.median,
        "blocks": len(measurement.times),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
    }


def measure_in_fresh_process(setting: str, min_run_time: float) -> dict:
    variables, threads = SETTINGS[setting]
    env = {**os.environ, **variables}
    if "OMP_WAIT_POLICY" not in variables:
        env.pop("OMP_WAIT_POLICY", None)  # the default: spinning threads
    command = [sys.executable, __file__, "--child", "--min-run-time", str(min_run_time)]
    if threads is not None:
        command += ["--threads", str(threads)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as error:  # a hung run must not hold the table up
        raise RuntimeError(f"the run of {setting!r} took over {error.timeout} s") from error
    if done.returncode != 0:  # say why, rather than only that it failed
        raise RuntimeError(f"the run of {setting!r} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout)


def refresh_module():
    """scripts/refresh_notebooks.py, whose processor name and calibration this
    script shares with the chapters' refresh."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "refresh_notebooks.py"
    spec = importlib.util.spec_from_file_location("refresh_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def processor() -> str:
    """The processor's model name, read as the refresh reads it."""
    return refresh_module().cpu_model()


def calibrated(measure_all, max_slowdown: float) -> tuple[dict, bool]:
    """``measure_all()``'s result with the refresh's calibration before and after it
    and the machine's best, and whether both were within ``max_slowdown`` of it."""
    refresh = refresh_module()
    before = refresh.calibrate()
    result = measure_all()
    after = refresh.calibrate()
    key = refresh.machine_key(before)
    for gflops in (before["gflops"], after["gflops"]):
        refresh.record_best(key, gflops)
    best = refresh.recorded_best(key)
    result["calibration"] = {
        "before_gflops": round(before["gflops"], 1),
        "after_gflops": round(after["gflops"], 1),
        "best_gflops": best,
        "max_slowdown": max_slowdown,
    }
    quiet = all(
        refresh.quiet(gflops, best, max_slowdown) for gflops in (before["gflops"], after["gflops"])
    )
    return result, quiet


def start_spinners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]


def stop_spinners(spinners: list[subprocess.Popen]) -> None:
    for process in spinners:
        process.terminate()
    for process in spinners:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run(busy: int, repeats: int, min_run_time: float) -> dict:
    conditions = {"idle": 0, f"{busy} busy processes": busy}
    result = {
        "machine": {
            "cpu_cores": os.cpu_count(),
            "processor": processor(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "batch_size": BATCH_SIZE,
        "repeats": repeats,
        "min_run_time": min_run_time,
        "conditions": {},
    }
    for condition, count in conditions.items():
        load_before = os.getloadavg()[0]
        spinners = start_spinners(count)
        try:
            time.sleep(1.0 if count else 0.0)  # let the spinners get going
            runs = {setting: [] for setting in SETTINGS}
            for repeat in range(1, repeats + 1):
                for setting in SETTINGS:
                    log(f"{condition}, {setting}: run {repeat} of {repeats}")
                    runs[setting].append(measure_in_fresh_process(setting, min_run_time))
        finally:
            stop_spinners(spinners)
        result["conditions"][condition] = {
            "busy_processes": count,
            "load_average_before": load_before,
            "settings": {
                setting: {
                    "samples_per_second": statistics.median(
                        run["samples_per_second"] for run in measured
                    ),
                    "runs": measured,
                }
                for setting, measured in runs.items()
            },
        }
    first = result["conditions"]["idle"]["settings"]["default"]["runs"][0]
    result["machine"]["torch"] = first["torch"]
    result["machine"]["default_threads"] = first["threads"]
    return result


def format_table(result: dict) -> str:
    machine = result["machine"]
    conditions = result["conditions"]
    lines = [
        f"{machine['cpu_cores']} CPU cores, torch {machine['torch']} "
        f"({machine['default_threads']} threads by default); MNIST in memory, batches "
        f"of {result['batch_size']}; samples/s, median of {result['repeats']} runs",
        "",
        f"{'setting':26}" + "".join(f"{name:>20}" for name in conditions),
    ]
    for setting in SETTINGS:
        rates = [row["settings"][setting]["samples_per_second"] for row in conditions.values()]
        lines.append(f"{setting:26}" + "".join(f"{rate:20,.0f}" for rate in rates))
    loads = ", ".join(
        f"{name} {row['load_average_before']:.1f}" for name, row in conditions.items()
    )
    lines += ["", f"(load average before each part: {loads})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--busy", type=int, default=os.cpu_count(), help="busy processes (one per core)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (3)")
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds timed per run (2)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write JSON here")
    parser.add_argument(
        "--max-slowdown",
        type=float,
        default=0.15,
        help="refuse figures when a calibration fell more than this fraction below "
        "the machine's best, as the refresh does (0.15)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(args.threads, args.min_run_time)))
        return 0
    if args.busy < 1 or args.repeats < 1 or args.min_run_time <= 0:
        parser.error("--busy and --repeats must be at least 1, --min-run-time positive")
    result, quiet = calibrated(
        lambda: run(args.busy, args.repeats, args.min_run_time), args.max_slowdown
    )
    print(format_table(result))
    calibration = result["calibration"]
    print(
        f"(calibration {calibration['before_gflops']:.0f} GFLOP/s before, "
        f"{calibration['after_gflops']:.0f} after, best {calibration['best_gflops']:.0f})"
    )
    if not quiet:
        log(
            f"the machine was busy: a calibration fell more than {args.max_slowdown:.0%} "
            "below its best, so these figures are not the machine's; stop what else "
            "runs and measure again" + (f" ({args.json} not written)" if args.json else "")
        )
        return 1
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
