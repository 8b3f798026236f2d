"""Locating, verifying and loading MNIST (introduced in chapter 1).

Every chapter and test finds the data in one place, :func:`data_dir`:

* ``$MNIST_DATA_DIR`` when that environment variable is set;
* otherwise ``data/`` at the root of the repository checkout the package was
  installed from (``pip install -e .``);
* otherwise ``data/`` in the current working directory (``/content/data`` in
  Colab).

The four ``.gz`` files live in ``<data_dir>/MNIST/raw/``, torchvision's layout.
Missing files are downloaded when online. Every file is verified, and a problem
raises :class:`MNISTDataError` naming the file, what is wrong and the remedy.
No function here ever deletes or overwrites a file it did not create.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # torchvision loads when first needed: training alone needs none
    from torchvision import datasets

__all__ = [
    "BACKGROUND",
    "MNIST_FILES",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNISTDataError",
    "ShiftedLoader",
    "TensorLoader",
    "data_dir",
    "ensure_mnist",
    "load_mnist",
    "load_tensors",
    "normalize",
    "raw_dir",
    "shift_images",
    "train_val_split",
]

#: Mean and standard deviation of the 60,000 training images scaled to [0, 1],
#: computed in chapter 1 and checked against the data by the tests.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class MNISTFile:
    gz_name: str
    gz_md5: str
    raw_size: int

    @property
    def raw_name(self) -> str:
        return self.gz_name.removesuffix(".gz")


#: The four files of the original distribution. The md5 sums are the ones
#: torchvision checks; the sizes are those of the extracted IDX files.
MNIST_FILES = (
    MNISTFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 47040016),
    MNISTFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 60008),
    MNISTFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 7840016),
    MNISTFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 10008),
)


class MNISTDataError(RuntimeError):
    """The MNIST files are missing, incomplete or corrupt. The message says how to fix it."""


def data_dir() -> Path:
    """The folder that holds ``MNIST/raw/`` (see the module docstring)."""
    if env := os.environ.get("MNIST_DATA_DIR"):
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "data"
    return Path.cwd() / "data"


def raw_dir(root: str | Path | None = None) -> Path:
    """Where the four MNIST files live: ``<root>/MNIST/raw``."""
    return Path(root if root is not None else data_dir()) / "MNIST" / "raw"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remedy(raw: Path) -> str:
    return (
        f"Put the four original MNIST files ({', '.join(f.gz_name for f in MNIST_FILES)}) "
        f"in {raw}, or set MNIST_DATA_DIR to a folder whose MNIST/raw/ holds them. "
        "With internet access they are downloaded automatically."
    )


def _download(file: MNISTFile, raw: Path) -> None:
    """Download one ``.gz`` file into ``raw``, trying torchvision's mirrors in turn.

    The download goes to a temporary name and is renamed only once its md5 is right,
    so a failed or partial download never leaves a file behind.
    """
    from torchvision import datasets
    from torchvision.datasets.utils import download_url

    part = raw / f".{file.gz_name}.part"
    errors = []
    for mirror in datasets.MNIST.mirrors:
        try:
            download_url(mirror + file.gz_name, str(raw), filename=part.name, md5=file.gz_md5)
        except Exception as error:  # URLError, HTTPError, md5 mismatch, timeouts...
            errors.append(f"  {mirror}{file.gz_name}: {error}")
            part.unlink(missing_ok=True)
            continue
        part.replace(raw / file.gz_name)
        return
    tried = "\n".join(errors)
    raise MNISTDataError(
        f"Could not download {file.gz_name} (are you offline?). Tried:\n{tried}\n" + _remedy(raw)
    )


def _extract(file: MNISTFile, raw: Path) -> None:
    """Extract ``file`` next to its ``.gz`` via a temporary name, then rename."""
    gz_path = raw / file.gz_name
    fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{file.raw_name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(gz_path, "rb") as src:
            shutil.copyfileobj(src, out)
        umask = os.umask(0)  # mkstemp makes the file private (0600): undo that
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, raw / file.raw_name)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        Path(tmp).unlink(missing_ok=True)
        raise MNISTDataError(
            f"{gz_path} could not be decompressed ({error}). The file is corrupt: "
            "move it away and run again to download it afresh. " + _remedy(raw)
        ) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_mnist(root: str | Path | None = None, download: bool = True) -> Path:
    """Make sure the four MNIST files are present, intact and extracted.

    Checks each ``.gz`` against torchvision's md5 and each extracted file's size,
    downloads what is missing when ``download`` is true, and extracts what needs it.
    Returns the data root to pass to :class:`torchvision.datasets.MNIST`.
    Raises :class:`MNISTDataError` with a remedy when anything is wrong.
    """
    root = Path(root) if root is not None else data_dir()
    raw = raw_dir(root)
    for file in MNIST_FILES:
        gz_path, raw_path = raw / file.gz_name, raw / file.raw_name
        if gz_path.is_file():
            actual = _md5(gz_path)
            if actual != file.gz_md5:
                raise MNISTDataError(
                    f"{gz_path} is corrupt or incomplete: its md5 is {actual}, "
                    f"expected {file.gz_md5} ({gz_path.stat().st_size:,} bytes on disk). "
                    "Move it away (it is left untouched) and run again to download it, "
                    "or replace it with a good copy. " + _remedy(raw)
                )
        elif not raw_path.is_file():
            if not download:
                raise MNISTDataError(f"{gz_path} is missing. " + _remedy(raw))
            raw.mkdir(parents=True, exist_ok=True)
            _download(file, raw)
        if not raw_path.is_file():
            _extract(file, raw)
        size = raw_path.stat().st_size
        if size != file.raw_size:
            raise MNISTDataError(
                f"{raw_path} is truncated or corrupt: it has {size:,} bytes, expected "
                f"{file.raw_size:,}. Delete it (it is left untouched) and run again: "
                f"it is extracted afresh from {file.gz_name}."
            )
    return root


def load_mnist(
    train: bool = True,
    transform=None,
    root: str | Path | None = None,
    download: bool = True,
) -> datasets.MNIST:
    """The verified MNIST training or test set as a torchvision dataset.

    ``transform`` defaults to :class:`~torchvision.transforms.ToTensor`.
    """
    from torchvision import datasets, transforms

    root = ensure_mnist(root, download=download)
    if transform is None:
        transform = transforms.ToTensor()
    return datasets.MNIST(root, train=train, transform=transform, download=False)


def load_tensors(
    train: bool = True, root: str | Path | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole training or test set in memory: ``uint8`` images ``(N, 28, 28)``
    and ``int64`` labels ``(N,)``, the same tensors as :func:`load_mnist`'s ``data``
    and ``targets``. The fast path of chapters 4 and 7. It reads the verified IDX
    files itself, so a process that trains from tensors never imports torchvision
    (a second or more of every process start)."""
    raw = raw_dir(ensure_mnist(root, download=download))
    prefix = "train" if train else "t10k"
    images = _read_idx(raw / f"{prefix}-images-idx3-ubyte")
    labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte")
    return images, labels.long()


def _read_idx(path: str | Path) -> torch.Tensor:
    """An IDX file of unsigned bytes, MNIST's format, as a ``uint8`` tensor: two
    zero bytes, the type code 0x08, the number of dimensions, one big-endian 4-byte
    size per dimension, then the bytes in row-major order."""
    data = Path(path).read_bytes()
    again = "Delete it (it is left untouched) and run again: it is extracted afresh."
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise MNISTDataError(f"{path} is not an IDX file of unsigned bytes. {again}")
    start = 4 + 4 * data[3]
    shape = struct.unpack(f">{data[3]}I", data[4:start])
    if len(data) - start != math.prod(shape):
        raise MNISTDataError(
            f"{path} holds {len(data) - start:,} bytes after its header, expected "
            f"{math.prod(shape):,} for its shape {shape}. {again}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)[start:].reshape(shape)


def normalize(images: torch.Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD):
    """``uint8`` images ``(N, 28, 28)`` to normalised ``float32`` ``(N, 1, 28, 28)``:
    the same values as ``ToTensor()`` followed by ``Normalize((mean,), (std,))``."""
    return ((images.float() / 255 - mean) / std).unsqueeze(1)


def train_val_split(
    num_samples: int = 60_000, num_val: int = 10_000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded, reproducible split of ``range(num_samples)`` into training and
    validation indices (default 50,000 / 10,000). The indices work with
    :class:`torch.utils.data.Subset` for a DataLoader and with tensor indexing for
    in-memory batching."""
    if not 0 < num_val < num_samples:
        raise ValueError(f"num_val must be between 1 and {num_samples - 1}, got {num_val}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_samples, generator=generator)
    return order[num_val:], order[:num_val]


class TensorLoader:
    """Batches from tensors already in memory, a drop-in for a DataLoader.

    Iterating yields ``(X[i], y[i])`` batches; with ``shuffle=True`` the order is
    drawn from ``generator`` (seeded, and saved in checkpoints by
    :func:`mnist_helpers.save_checkpoint`), so runs are reproducible.
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batch_size: int = 128,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ):
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator if generator is not None else torch.Generator()
        self.dataset = X  # so len(loader.dataset) works as with a DataLoader

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        n = len(self.X)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, self.batch_size):
                batch = order[start : start + self.batch_size]
                yield self.X[batch], self.y[batch]
        else:
            for start in range(0, n, self.batch_size):
                yield (
                    self.X[start : start + self.batch_size],
                    self.y[start : start + self.batch_size],
                )


#: The value of a blank (0) pixel after :func:`normalize`: what moves in at the edge
#: when :func:`shift_images` moves a normalised image.
BACKGROUND = (0 - MNIST_MEAN) / MNIST_STD


def shift_images(X: torch.Tensor, dy: int, dx: int, background: float = BACKGROUND):
    """The images ``X`` (``(..., H, W)``) moved ``dy`` pixels down and ``dx`` right
    (negative: up, left), as chapter 4 writes it: what moves out at one edge is lost
    and blank paper (``background``) moves in at the other. ``torch.roll`` would wrap
    the ink that leaves at the bottom round to the top, and MNIST has ink at its
    borders (723 of the 60,000 training digits in the bottom row)."""
    pad = max(abs(dy), abs(dx))
    padded = torch.nn.functional.pad(X, (pad, pad, pad, pad), value=background)
    height, width = X.shape[-2:]
    return padded[..., pad - dy : pad - dy + height, pad - dx : pad - dx + width]


class ShiftedLoader:
    """The batches of ``loader``, each moved by a random ``-max_shift..max_shift``
    pixels down and right (:func:`shift_images`, blank paper moving in): the data
    augmentation of chapter 4's final recipe.

    One shift per batch, drawn from the loader's seeded ``generator`` (which
    checkpoints save), so runs stay reproducible and resume exactly. The batches
    are normalised images, so what moves in is :data:`BACKGROUND`.
    """

    def __init__(self, loader, max_shift: int = 1, background: float = BACKGROUND):
        if max_shift < 0:
            raise ValueError(f"max_shift must be 0 or more pixels, got {max_shift}")
        self.loader = loader
        self.max_shift = max_shift
        self.background = background
        self.generator = loader.generator
        self.dataset = getattr(loader, "dataset", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for X, y in self.loader:
            dy, dx = torch.randint(
                -self.max_shift, self.max_shift + 1, (2,), generator=self.generator
            ).tolist()
            yield shift_images(X, dy, dx, self.background), y
