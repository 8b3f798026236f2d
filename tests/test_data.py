"""mnist_helpers.data: the data location, verification, loading and batching.

Loading and every fault case run on tiny IDX files written by the tests (see
``tiny_mnist`` in conftest.py); the checks of the real MNIST use the one data
location and are skipped where the files are absent.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets, transforms

import mnist_helpers.data as data_module
from mnist_helpers import (
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    MNISTDataError,
    ShiftedLoader,
    TensorLoader,
    data_dir,
    ensure_mnist,
    load_mnist,
    load_tensors,
    normalize,
    raw_dir,
    shift_images,
    train_val_split,
)

# --- the data location -------------------------------------------------------------


def test_data_dir_honours_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "elsewhere"))
    assert data_dir() == tmp_path / "elsewhere"
    assert raw_dir() == tmp_path / "elsewhere" / "MNIST" / "raw"


def test_data_dir_expands_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MNIST_DATA_DIR", "~/mnist")
    assert data_dir() == tmp_path / "mnist"


@pytest.mark.parametrize("value", [None, ""])
def test_data_dir_defaults_to_the_checkout(monkeypatch, value, repo_root):
    if value is None:
        monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("MNIST_DATA_DIR", value)
    monkeypatch.chdir(repo_root / "tests")  # not the working directory: the checkout's data/
    assert data_dir() == repo_root / "data"


def test_data_dir_outside_a_checkout_is_in_the_working_directory(monkeypatch, tmp_path):
    # As when installed from a wheel (or in Colab): no pyproject.toml and notebooks/ above.
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    installed = tmp_path / "site-packages" / "mnist_helpers" / "data.py"
    monkeypatch.setattr(data_module, "__file__", str(installed))
    monkeypatch.chdir(tmp_path)
    assert data_dir() == tmp_path / "data"


def test_raw_dir_is_torchvisions_layout(tmp_path):
    assert raw_dir(tmp_path) == tmp_path / "MNIST" / "raw"
    assert raw_dir(str(tmp_path)) == tmp_path / "MNIST" / "raw"


def test_mnist_files_are_the_original_distribution():
    # The md5 sums are torchvision's; the sizes follow from the IDX headers:
    # 16 header bytes + N*28*28 for images, 8 header bytes + N for labels.
    assert [(f.gz_name, f.gz_md5) for f in MNIST_FILES] == list(datasets.MNIST.resources)
    sizes = {f.raw_name: f.raw_size for f in MNIST_FILES}
    assert sizes == {
        "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
        "train-labels-idx1-ubyte": 8 + 60_000,
        "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
        "t10k-labels-idx1-ubyte": 8 + 10_000,
    }


# --- loading tiny files ------------------------------------------------------------


def test_ensure_mnist_extracts_when_only_the_gz_files_exist(tiny_mnist):
    assert tiny_mnist.listing() == set(tiny_mnist.gz)
    assert ensure_mnist(tiny_mnist.root, download=False) == tiny_mnist.root
    assert tiny_mnist.listing() == set(tiny_mnist.gz) | set(tiny_mnist.raw_bytes)
    for name, data in tiny_mnist.raw_bytes.items():
        assert (tiny_mnist.raw / name).read_bytes() == data
    for name, data in tiny_mnist.gz.items():
        assert (tiny_mnist.raw / name).read_bytes() == data


def test_ensure_mnist_accepts_extracted_files_without_their_gz(tiny_mnist):
    ensure_mnist(tiny_mnist.root, download=False)
    for name in tiny_mnist.gz:
        (tiny_mnist.raw / name).unlink()
    assert ensure_mnist(tiny_mnist.root, download=False) == tiny_mnist.root
    assert tiny_mnist.listing() == set(tiny_mnist.raw_bytes)


def test_load_mnist_gives_the_right_shapes_and_labels(tiny_mnist):
    arrays = tiny_mnist.arrays
    train = load_mnist(train=True, root=tiny_mnist.root, download=False)
    test = load_mnist(train=False, root=tiny_mnist.root, download=False)
    assert len(train) == tiny_mnist.num_train and len(test) == tiny_mnist.num_test
    image, label = train[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32  # ToTensor by default
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"][3]).float() / 255
    assert torch.equal(image[0], expected)
    assert label == int(arrays["train-labels-idx1-ubyte"][3])
    assert [test[i][1] for i in range(tiny_mnist.num_test)] == [7, 2, 1, 0, 4]


def test_load_mnist_applies_the_given_transform(tiny_mnist):
    dataset = load_mnist(root=tiny_mnist.root, transform=transforms.PILToTensor())
    image, _ = dataset[0]
    assert image.dtype == torch.uint8
    assert np.array_equal(image[0].numpy(), tiny_mnist.arrays["train-images-idx3-ubyte"][0])


def test_load_tensors_dtypes_and_values(tiny_mnist):
    X, y = load_tensors(train=True, root=tiny_mnist.root, download=False)
    assert X.dtype == torch.uint8 and X.shape == (tiny_mnist.num_train, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (tiny_mnist.num_train,)
    assert np.array_equal(X.numpy(), tiny_mnist.arrays["train-images-idx3-ubyte"])
    assert y.tolist() == [i % 10 for i in range(tiny_mnist.num_train)]
    X_test, y_test = load_tensors(train=False, root=tiny_mnist.root)
    assert X_test.shape == (tiny_mnist.num_test, 28, 28) and y_test.tolist() == [7, 2, 1, 0, 4]


def test_load_tensors_uses_data_dir_by_default(tiny_mnist, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_mnist.root))
    X, y = load_tensors(train=False)
    assert X.shape == (tiny_mnist.num_test, 28, 28) and y.tolist() == [7, 2, 1, 0, 4]


# --- faults ---------------------------------------------------------------------------


def _forbid_download(monkeypatch):
    def download_url(*args, **kwargs):
        raise AssertionError("no download may be attempted")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", download_url)


def test_missing_file_while_offline(tiny_mnist):
    name = "t10k-labels-idx1-ubyte.gz"
    (tiny_mnist.raw / name).unlink()
    with pytest.raises(MNISTDataError) as info:
        ensure_mnist(tiny_mnist.root)
    message = str(info.value)
    assert f"Could not download {name}" in message
    assert "127.0.0.1:9" in message  # the mirror it tried
    assert str(tiny_mnist.raw) in message  # where to put the file
    assert "MNIST_DATA_DIR" in message  # the remedy
    assert not any(n.endswith(".part") for n in tiny_mnist.listing())
    assert name not in tiny_mnist.listing()


def test_interrupted_download_leaves_no_partial_file(tiny_mnist, monkeypatch):
    name = "t10k-labels-idx1-ubyte.gz"
    (tiny_mnist.raw / name).unlink()
    calls = []

    def download_url(url, root, filename, md5):
        calls.append(url)
        (Path(root) / filename).write_bytes(tiny_mnist.gz[name][:10])  # some bytes, then
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", download_url)
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://a/", "http://b/"])
    with pytest.raises(MNISTDataError, match="connection reset"):
        ensure_mnist(tiny_mnist.root)
    assert calls == [f"http://a/{name}", f"http://b/{name}"]  # every mirror was tried
    assert not any(n.endswith(".part") for n in tiny_mnist.listing())
    assert name not in tiny_mnist.listing()


def test_download_puts_the_verified_file_in_place(tiny_mnist, monkeypatch):
    name = "t10k-labels-idx1-ubyte.gz"
    (tiny_mnist.raw / name).unlink()

    def download_url(url, root, filename, md5):
        if url.startswith("http://bad/"):  # torchvision's md5 check fails on this mirror
            (Path(root) / filename).write_bytes(b"<html>not found</html>")
            raise RuntimeError("File not found or corrupted.")
        (Path(root) / filename).write_bytes(tiny_mnist.gz[name])

    monkeypatch.setattr("torchvision.datasets.utils.download_url", download_url)
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://bad/", "http://good/"])
    ensure_mnist(tiny_mnist.root)
    assert (tiny_mnist.raw / name).read_bytes() == tiny_mnist.gz[name]
    assert not any(n.endswith(".part") for n in tiny_mnist.listing())
    _, y = load_tensors(train=False, root=tiny_mnist.root)
    assert y.tolist() == [7, 2, 1, 0, 4]


def test_missing_file_without_download(tiny_mnist, monkeypatch):
    _forbid_download(monkeypatch)
    name = "train-images-idx3-ubyte.gz"
    (tiny_mnist.raw / name).unlink()
    with pytest.raises(MNISTDataError) as info:
        load_mnist(root=tiny_mnist.root, download=False)
    message = str(info.value)
    assert f"{tiny_mnist.raw / name} is missing" in message
    assert "MNIST_DATA_DIR" in message and str(tiny_mnist.raw) in message
    assert name not in tiny_mnist.listing()


def _assert_md5_error(message: str, path: Path, expected_md5: str, actual: bytes):
    assert str(path) in message
    assert hashlib.md5(actual).hexdigest() in message and expected_md5 in message
    assert f"{len(actual):,} bytes" in message
    assert "left untouched" in message


def test_truncated_gz_is_reported_and_left_untouched(tiny_mnist, monkeypatch):
    _forbid_download(monkeypatch)
    name = "train-images-idx3-ubyte.gz"
    truncated = tiny_mnist.gz[name][: len(tiny_mnist.gz[name]) // 2]
    (tiny_mnist.raw / name).write_bytes(truncated)
    with pytest.raises(MNISTDataError, match="corrupt or incomplete") as info:
        ensure_mnist(tiny_mnist.root)
    _assert_md5_error(
        str(info.value), tiny_mnist.raw / name, tiny_mnist.md5(tiny_mnist.gz[name]), truncated
    )
    assert (tiny_mnist.raw / name).read_bytes() == truncated
    assert "train-images-idx3-ubyte" not in tiny_mnist.listing()  # nothing extracted


def test_wrong_md5_is_reported_and_left_untouched(tiny_mnist, monkeypatch):
    _forbid_download(monkeypatch)
    name = "train-labels-idx1-ubyte.gz"
    other = tiny_mnist.gz_bytes(b"something else entirely")
    (tiny_mnist.raw / name).write_bytes(other)
    with pytest.raises(MNISTDataError, match="corrupt or incomplete") as info:
        ensure_mnist(tiny_mnist.root)
    _assert_md5_error(
        str(info.value), tiny_mnist.raw / name, tiny_mnist.md5(tiny_mnist.gz[name]), other
    )
    assert (tiny_mnist.raw / name).read_bytes() == other


def test_truncated_extracted_file_is_reported_and_left_untouched(tiny_mnist, monkeypatch):
    _forbid_download(monkeypatch)
    ensure_mnist(tiny_mnist.root)
    name = "t10k-images-idx3-ubyte"
    full = tiny_mnist.raw_bytes[name]
    truncated = full[:1000]
    (tiny_mnist.raw / name).write_bytes(truncated)
    with pytest.raises(MNISTDataError, match="truncated or corrupt") as info:
        load_tensors(train=False, root=tiny_mnist.root)
    message = str(info.value)
    assert str(tiny_mnist.raw / name) in message
    assert "1,000 bytes" in message and f"{len(full):,}" in message
    assert (tiny_mnist.raw / name).read_bytes() == truncated
    assert (tiny_mnist.raw / f"{name}.gz").read_bytes() == tiny_mnist.gz[f"{name}.gz"]


def _bad_block_type(gz: bytes) -> bytes:
    return gz[:10] + b"\xff" + gz[11:]  # deflate block type 3 is reserved: zlib.error


def _bad_crc(gz: bytes) -> bytes:
    return gz[:-8] + bytes(b ^ 0xFF for b in gz[-8:-4]) + gz[-4:]


@pytest.mark.parametrize(
    "corrupt",
    [
        _bad_block_type,
        _bad_crc,
        lambda gz: gz[: len(gz) // 2],  # ends early: EOFError
        lambda gz: b"this is not gzip data",  # BadGzipFile
    ],
    ids=["bad-deflate-block", "bad-crc", "cut-short", "not-gzip"],
)
def test_gz_with_expected_md5_but_corrupt_content(tiny_mnist, monkeypatch, corrupt):
    _forbid_download(monkeypatch)
    name = "train-images-idx3-ubyte.gz"
    bad = corrupt(tiny_mnist.gz[name])
    (tiny_mnist.raw / name).write_bytes(bad)
    tiny_mnist.set_md5(name, tiny_mnist.md5(bad))  # the md5 check passes; only decompression fails
    before = tiny_mnist.listing()
    with pytest.raises(MNISTDataError, match="could not be decompressed") as info:
        ensure_mnist(tiny_mnist.root)
    message = str(info.value)
    assert str(tiny_mnist.raw / name) in message and "corrupt" in message
    assert "train-images-idx3-ubyte" not in tiny_mnist.listing()  # no partial extraction
    assert tiny_mnist.listing() == before  # and no temporary file
    assert (tiny_mnist.raw / name).read_bytes() == bad


# --- the real MNIST ------------------------------------------------------------------

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_files_pass_verification(real_root):
    raw = raw_dir(real_root)
    for file in MNIST_FILES:
        if (raw / file.gz_name).is_file():
            assert data_module._md5(raw / file.gz_name) == file.gz_md5
        assert (raw / file.raw_name).stat().st_size == file.raw_size
    assert ensure_mnist(real_root, download=False) == real_root


def test_real_shapes_and_label_counts(real_train, real_test):
    X, y = real_train
    assert X.shape == (60_000, 28, 28) and X.dtype == torch.uint8
    assert y.shape == (60_000,) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == TRAIN_COUNTS
    X_test, y_test = real_test
    assert X_test.shape == (10_000, 28, 28) and X_test.dtype == torch.uint8
    assert torch.bincount(y_test).tolist() == TEST_COUNTS


def test_real_mean_and_std(real_train):
    # Exact statistics of all 47,040,000 pixels from the histogram of their values.
    counts = torch.bincount(real_train[0].flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = (counts * values).sum() / counts.sum()
    std = ((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt()
    assert round(mean.item(), 4) == MNIST_MEAN
    assert round(std.item(), 4) == MNIST_STD


def test_normalize_equals_totensor_and_normalize(real_root, real_train):
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    )
    dataset = load_mnist(train=True, transform=transform, root=real_root, download=False)
    indices = range(0, 60_000, 600)
    expected = torch.stack([dataset[i][0] for i in indices])
    actual = normalize(real_train[0][list(indices)])
    assert actual.shape == (len(indices), 1, 28, 28) and actual.dtype == torch.float32
    assert torch.equal(actual, expected)  # the same float32 operations, bit for bit


def test_normalize_values():
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    out = normalize(images, mean=0.5, std=0.5)
    assert out.shape == (1, 1, 1, 2)
    assert out.flatten().tolist() == [-1.0, 1.0]


# --- train_val_split ---------------------------------------------------------------


def test_train_val_split_default_sizes_cover_and_are_disjoint():
    train, val = train_val_split()
    assert len(train) == 50_000 and len(val) == 10_000
    assert train.dtype == torch.int64
    both = torch.cat([train, val])
    assert torch.equal(both.sort().values, torch.arange(60_000))  # disjoint and covering


def test_train_val_split_is_seeded():
    a_train, a_val = train_val_split(1000, 100, seed=1)
    b_train, b_val = train_val_split(1000, 100, seed=1)
    c_train, c_val = train_val_split(1000, 100, seed=2)
    assert torch.equal(a_train, b_train) and torch.equal(a_val, b_val)
    assert not torch.equal(a_val, c_val)
    assert not torch.equal(a_val.sort().values, torch.arange(100))  # shuffled, not a slice


@pytest.mark.parametrize("num_val", [0, -1, 1000, 1001])
def test_train_val_split_rejects_bad_num_val(num_val):
    with pytest.raises(ValueError, match="num_val"):
        train_val_split(1000, num_val)


# --- TensorLoader --------------------------------------------------------------------


def test_tensor_loader_batches_in_order_without_shuffle():
    X, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    loader = TensorLoader(X, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)
    assert len(loader.dataset) == 10


@pytest.mark.parametrize("n, batch_size, batches", [(10, 5, 2), (11, 5, 3), (3, 128, 1)])
def test_tensor_loader_len(n, batch_size, batches):
    loader = TensorLoader(torch.zeros(n, 2), torch.zeros(n), batch_size=batch_size)
    assert len(loader) == batches == len(list(loader))


def test_tensor_loader_shuffles_every_sample_once_per_epoch():
    X, y = torch.arange(100).float(), torch.arange(100)
    loader = TensorLoader(X, y, batch_size=16, shuffle=True, generator=torch.Generator())
    epochs = []
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == 7
        assert all(torch.equal(bx.long(), by) for bx, by in batches)  # pairs kept together
        order = torch.cat([by for _, by in batches])
        assert torch.equal(order.sort().values, y)
        epochs.append(order)
    assert not torch.equal(epochs[0], y)  # shuffled
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch


def test_tensor_loader_shuffle_is_reproducible_with_a_seeded_generator():
    def orders(seed):
        X, y = torch.zeros(50, 1), torch.arange(50)
        loader = TensorLoader(X, y, 8, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [torch.cat([b for _, b in loader]) for _ in range(2)]

    first, again, other = orders(3), orders(3), orders(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_tensor_loader_rejects_a_length_mismatch():
    with pytest.raises(ValueError, match="5 samples but y has 4"):
        TensorLoader(torch.zeros(5, 3), torch.zeros(4))


# --- ShiftedLoader ----------------------------------------------------------------------


def _lit_loader(seed=0, n=6):
    X = torch.zeros(n, 1, 28, 28)
    X[:, 0, 14, 14] = 1.0  # one lit pixel in the middle
    return TensorLoader(
        X, torch.arange(n), batch_size=2, generator=torch.Generator().manual_seed(seed)
    )


def _lit_pixels(loader):
    return [tuple(X[0, 0].nonzero()[0].tolist()) for X, _ in loader]


def test_shifted_loader_moves_each_batch_by_at_most_max_shift():
    for max_shift in (1, 2):
        loader = ShiftedLoader(_lit_loader(n=40), max_shift=max_shift, background=0.0)
        assert len(loader) == 20 and loader.generator is loader.loader.generator
        positions = _lit_pixels(loader) + _lit_pixels(loader)
        offsets = {(r - 14, c - 14) for r, c in positions}
        assert max(max(abs(dr), abs(dc)) for dr, dc in offsets) == max_shift
        assert len(offsets) > 4  # the shifts vary from batch to batch
    assert _lit_pixels(ShiftedLoader(_lit_loader(), 0, background=0.0)) == [(14, 14)] * 3


def test_shifted_loader_shifts_a_whole_batch_alike_and_keeps_the_labels():
    X = torch.rand(4, 1, 28, 28)
    loader = TensorLoader(X, torch.arange(4), batch_size=4, generator=torch.Generator())
    ((shifted, labels),) = ShiftedLoader(loader, max_shift=2)
    assert labels.tolist() == [0, 1, 2, 3]
    matches = [
        (dy, dx)
        for dy in range(-2, 3)
        for dx in range(-2, 3)
        if torch.equal(shifted, shift_images(X, dy, dx))
    ]
    assert len(matches) == 1


def test_shifted_loader_draws_exactly_as_chapter_4_writes_it():
    """One ``torch.randint(-1, 2, (2,))`` per batch from the loader's generator, as the
    chapter's own class does: the final recipe's stored results depend on it."""

    def chapter_4(loader):
        for X, y in loader:
            dy, dx = torch.randint(-1, 2, (2,), generator=loader.generator).tolist()
            yield shift_images(X, dy, dx), y

    X, y = torch.rand(50, 1, 28, 28), torch.arange(50)

    def loader():
        return TensorLoader(X, y, 8, shuffle=True, generator=torch.Generator().manual_seed(3))

    ours, theirs = ShiftedLoader(loader()), loader()
    for _ in range(2):  # two epochs: the generator state carries over alike
        for (a, la), (b, lb) in zip(ours, chapter_4(theirs), strict=True):
            assert torch.equal(a, b) and torch.equal(la, lb)


def test_shifted_loader_rejects_a_negative_shift():
    with pytest.raises(ValueError, match="max_shift"):
        ShiftedLoader(_lit_loader(), max_shift=-1)


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, 0), (-3, 1), (1, -2), (0, 5)])
def test_shift_images_moves_the_ink_and_lets_blank_paper_in(dy, dx):
    """Each pixel moves by (dy, dx); what moves in at the edge is the background and
    nothing wraps round, unlike torch.roll."""
    X = torch.rand(3, 1, 28, 28)
    moved = shift_images(X, dy, dx, background=-1.0)
    assert moved.shape == X.shape
    for r in range(28):
        for c in range(28):
            r0, c0 = r - dy, c - dx
            inside = 0 <= r0 < 28 and 0 <= c0 < 28
            expected = X[..., r0, c0] if inside else torch.full((3, 1), -1.0)
            assert torch.equal(moved[..., r, c], expected), (r, c)


def test_shift_images_does_not_wrap_mnist_ink_round(real_train):
    """The reason it exists: digits with ink in the bottom row (723 of the training
    set), moved down by one, would get that ink at the top with torch.roll."""
    images = real_train[0].float().unsqueeze(1)
    inked = images[images[:, 0, -1, :].amax(dim=1) > 0]
    assert len(inked) == 723
    assert (inked.roll(1, dims=2)[:, 0, 0, :].amax(dim=1) > 0).all()
    assert (shift_images(inked, 1, 0, background=0.0)[:, 0, 0, :] == 0).all()


@pytest.mark.parametrize(
    "damage, complaint",
    [
        (lambda idx: b"\0\0\x0d" + idx[3:], "not an IDX file of unsigned bytes"),
        (lambda idx: idx[:4] + (9).to_bytes(4, "big") + idx[8:], "expected 9 for"),
    ],
)
def test_an_idx_file_that_contradicts_its_header_is_refused(tmp_path, damage, complaint):
    path = tmp_path / "labels-idx1-ubyte"
    idx = b"\0\0\x08\x01" + (3).to_bytes(4, "big") + bytes([7, 2, 1])
    path.write_bytes(idx)
    assert data_module._read_idx(path).tolist() == [7, 2, 1]
    path.write_bytes(damage(idx))
    with pytest.raises(MNISTDataError, match=complaint) as info:
        data_module._read_idx(path)
    assert str(path) in str(info.value) and "extracted afresh" in str(info.value)


def test_extracted_files_are_readable_by_others_as_the_umask_allows(tiny_mnist, monkeypatch):
    """A data folder shared between users (MNIST_DATA_DIR) works for everyone:
    the extracted files get the usual permissions, not the temporary file's 0600."""
    _forbid_download(monkeypatch)
    ensure_mnist(tiny_mnist.root)
    umask = os.umask(0)
    os.umask(umask)
    for path in tiny_mnist.raw.iterdir():
        if not path.name.endswith(".gz"):
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
