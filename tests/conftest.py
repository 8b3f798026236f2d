"""Shared fixtures: the repository's paths, a headless matplotlib, tiny MNIST files
written on the fly, the real MNIST (skipped with a reason where it is absent), a
comparison of model weights, and the book built once per test session."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Before torch is imported (OpenMP reads it once, when it loads): threads that wait
# for work yield the core instead of spinning, so the tests, and the processes and
# notebook kernels they start, keep their speed when other programs are busy. See
# notebooks/conftest.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # before pyplot is imported anywhere: no windows, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import mnist_helpers.data as data_module  # noqa: E402
from mnist_helpers.checkpoints import best_path  # noqa: E402
from mnist_helpers.data import MNIST_FILES, MNISTFile, data_dir, raw_dir  # noqa: E402
from mnist_helpers.recipe import _finished_run  # noqa: E402

#: The repository's root, and its notebooks.
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

# The tests use small tensors, for which a second thread costs more than it saves; one
# thread also keeps them fast when other processes share the CPU. Results do not depend
# on it.
torch.set_num_threads(1)

#: Samples in the tiny training and test sets.
TINY_TRAIN, TINY_TEST = 12, 5


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format of MNIST: magic number (2051 for images,
    2049 for labels: 0x08 for unsigned bytes, then the number of dimensions), each
    dimension as a big-endian 32-bit integer, then the values."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim)
    header += b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.tobytes()


def gz_bytes(data: bytes) -> bytes:
    """gzip ``data`` reproducibly (no timestamp in the header)."""
    return gzip.compress(data, mtime=0)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class TinyMNIST:
    """Four tiny MNIST files under ``root/MNIST/raw`` (only the ``.gz`` files are
    written) with ``mnist_helpers.data.MNIST_FILES`` patched to accept them."""

    root: Path
    monkeypatch: pytest.MonkeyPatch
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # raw name -> array
    raw_bytes: dict[str, bytes] = field(default_factory=dict)  # raw name -> IDX bytes
    gz: dict[str, bytes] = field(default_factory=dict)  # gz name -> gzip bytes

    @property
    def raw(self) -> Path:
        return raw_dir(self.root)

    num_train: int = TINY_TRAIN
    num_test: int = TINY_TEST
    md5 = staticmethod(md5)
    gz_bytes = staticmethod(gz_bytes)

    def set_md5(self, gz_name: str, gz_md5: str) -> None:
        """Make ensure_mnist expect ``gz_md5`` for ``gz_name``."""
        files = tuple(
            MNISTFile(f.gz_name, gz_md5, f.raw_size) if f.gz_name == gz_name else f
            for f in data_module.MNIST_FILES
        )
        self.monkeypatch.setattr(data_module, "MNIST_FILES", files)

    def listing(self) -> set[str]:
        """Every name in the raw folder, hidden temporary files included."""
        return {path.name for path in self.raw.iterdir()}


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch) -> TinyMNIST:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (TINY_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(TINY_TRAIN, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (TINY_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 2, 1, 0, 4], dtype=np.uint8),
    }
    tiny = TinyMNIST(root=tmp_path / "data", monkeypatch=monkeypatch, arrays=arrays)
    tiny.raw.mkdir(parents=True)
    files = []
    for original in MNIST_FILES:
        raw = idx_bytes(arrays[original.raw_name])
        packed = gz_bytes(raw)
        (tiny.raw / original.gz_name).write_bytes(packed)
        tiny.raw_bytes[original.raw_name] = raw
        tiny.gz[original.gz_name] = packed
        files.append(MNISTFile(original.gz_name, md5(packed), len(raw)))
    monkeypatch.setattr(data_module, "MNIST_FILES", tuple(files))
    # Nothing in these tests may reach the network: a download fails at once.
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])
    return tiny


def _real_mnist_present() -> bool:
    raw = raw_dir(data_dir())
    return all((raw / f.gz_name).is_file() or (raw / f.raw_name).is_file() for f in MNIST_FILES)


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real MNIST from the one data location, verified (and extracted if needed)."""
    if not _real_mnist_present():
        pytest.skip(
            f"the real MNIST files are not in {raw_dir(data_dir())}: copy the four .gz files "
            "there or set MNIST_DATA_DIR (CI provides them)"
        )
    return data_module.ensure_mnist(download=False)


@pytest.fixture(scope="session")
def real_train(real_root):
    return data_module.load_tensors(train=True, root=real_root, download=False)


@pytest.fixture(scope="session")
def real_test(real_root):
    return data_module.load_tensors(train=False, root=real_root, download=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- paths ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of the repository checkout the tests run from."""
    return ROOT


@pytest.fixture(scope="session")
def notebook_paths() -> list[Path]:
    """Every chapter notebook, in order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="session")
def chapter4_checkpoint() -> Path | None:
    """``notebooks/checkpoints/mlp.pt`` when chapter 4's final run has finished there
    (the test command runs chapter 4 first, in the same worker as the tests that ask
    for this), else None. No test trains into that folder: the chapters would then
    load a model trained under these tests' one thread."""
    path = NOTEBOOKS / "checkpoints" / "mlp.pt"
    return path if _finished_run(path, best_path(path)) else None


# --- model weights ------------------------------------------------------------------------


def _state(model_or_state) -> dict:
    if isinstance(model_or_state, torch.nn.Module):
        return model_or_state.state_dict()
    return model_or_state


def states_equal(a, b) -> bool:
    """Whether two models (or state dicts) have the same names and bit-identical tensors."""
    a, b = _state(a), _state(b)
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.fixture(name="states_equal")
def states_equal_fixture():
    """:func:`states_equal`: ``states_equal(model_or_state, model_or_state) -> bool``."""
    return states_equal


# --- the book, built once per session ---------------------------------------------------


@dataclass
class Build:
    html: Path  # the built site
    log: str  # everything the build printed
    returncode: int
    seconds: float


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Build:
    """The book built from the stored notebook outputs with the README's command
    (``jupyter-book build -W -n --keep-going``) into a temporary folder, once per
    test session; fails with the end of the build log when no site comes out."""
    out = tmp_path_factory.mktemp("book")
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        *("build", "-W", "-n", "--keep-going", "--path-output", str(out), str(ROOT)),
    ]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    build = Build(
        out / "_build" / "html",
        result.stdout + result.stderr,
        result.returncode,
        time.perf_counter() - start,
    )
    if not (build.html / "index.html").is_file():
        pytest.fail(f"the book did not build:\n{build.log[-5000:]}")
    return build


# Headless Chromium, for the tests of the built book (test_browser, test_draw_page).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
]


def _missing_browser() -> str | None:
    for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not os.access(path, os.X_OK):
            return f"{name} is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="session")
def driver(tmp_path_factory):
    if reason := _missing_browser():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A fixed driver path: Selenium never tries to download one.
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_script_timeout(30)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


@pytest.fixture(scope="session")
def site(built_book) -> Path:
    return built_book.html
