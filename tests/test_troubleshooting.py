"""The troubleshooting page quotes the messages readers see: each quoted message of
the helper package and of PyTorch is the message the code raises today.

A quoted message may be wrapped differently from the real one (the page wraps long
lines) and may leave parts out with ``...``; everything else must match. PyTorch's
own messages are those of the release the stored outputs were made with (older
releases word some of them differently), so they are compared from that release on.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
import torchvision.datasets.utils
from packaging.version import Version
from torch import nn

from mnist_helpers import MLP, MNISTDataError, load_checkpoint, save_checkpoint
from mnist_helpers.data import ensure_mnist

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "troubleshooting.md"

#: The PyTorch release whose messages the page quotes (README.md, "Versions").
QUOTED_RELEASE = Version("2.14")

#: torchvision's MNIST mirrors, in the order of the release the page quotes.
QUOTED_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: Whose messages these are: the helpers' always, PyTorch's from QUOTED_RELEASE on.
HELPERS_ERRORS = {"CheckpointError", "MNISTDataError", "ValueError"}

#: A message in a ``text`` block starts with the exception's name.
MESSAGE_START = re.compile(r"^(\w+(?:Error|Exception)): ", re.M)


def quoted_messages() -> list[tuple[str, str]]:
    """``(exception name, message)`` for every message in the page's ``text`` blocks,
    and for the checkpoint messages quoted in its list (they are CheckpointErrors)."""
    text = PAGE.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```text\n(.*?)^```", text, re.M | re.S):
        starts = list(MESSAGE_START.finditer(block))
        assert starts and starts[0].start() == 0, f"a text block that is no message:\n{block}"
        for start, end in zip(starts, [*starts[1:], None]):
            found.append((start[1], block[start.end() : end.start() if end else None]))
    section = text.split("\n(trouble-checkpoints)=\n", 1)[1]
    section = re.split(r"^\([\w-]+\)=$", section, flags=re.M)[0]  # up to the next label
    for quote in re.findall(r"^- `([^`]+)`:", section, re.M):
        found.append(("CheckpointError", quote))
    return found


def matches(quoted: str, real: str) -> bool:
    """Whether ``real`` is ``quoted`` up to line breaks, with ``...`` standing for
    any text."""
    parts = [" ".join(part.split()) for part in quoted.split("...")]
    pattern = ".*".join(re.escape(part) for part in parts)
    return re.fullmatch(pattern, " ".join(real.split()), re.S) is not None


def test_matches():
    assert matches("a b\nc", "a  b c")
    assert matches("a ... c", "a long b c")
    assert matches("x (...). y", "x (what: ever). y")
    assert not matches("a b", "a b c")
    assert not matches("a ... c", "a b d")


def _raised(function) -> BaseException:
    try:
        function()
    except Exception as error:  # whatever it raises is the message
        return error
    raise AssertionError(f"{function} raised nothing")


def _offline(*args, **kwargs):
    raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))


@pytest.fixture
def real_messages(tmp_path, monkeypatch) -> list[tuple[str, str]]:
    """``(exception name, message)`` of each error the page shows, raised here the way
    a reader meets it (in a folder with ``checkpoints/`` next to the notebook)."""
    monkeypatch.chdir(tmp_path)
    linear, loss_fn = nn.Linear(784, 512), nn.CrossEntropyLoss()
    logits = torch.zeros(4, 10)
    errors = [
        _raised(lambda: linear(torch.zeros(28, 28))),
        _raised(lambda: MLP()(torch.zeros(28, 28))),
        _raised(lambda: loss_fn(logits, torch.zeros(4))),
        _raised(lambda: loss_fn(logits, torch.zeros(4, dtype=torch.int32))),
        _raised(lambda: loss_fn(logits, torch.zeros(4, 1, dtype=torch.long))),
    ]
    if torch.cuda.is_available():
        errors.append(_raised(lambda: linear.cuda()(torch.zeros(2, 784))))
    # Offline in Colab: the data folder is /content/data. The mirrors are those of the
    # torchvision the page quotes (older releases try yann.lecun.com first).
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", _offline)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", QUOTED_MIRRORS)
    offline = _raised(lambda: ensure_mnist(tmp_path / "data"))
    assert isinstance(offline, MNISTDataError)
    # The final model's checkpoint, loaded into a smaller network; a missing one; junk.
    save_checkpoint("checkpoints/mlp.pt", MLP())
    errors.append(_raised(lambda: load_checkpoint("checkpoints/mlp.pt", MLP((256, 256)))))
    errors.append(_raised(lambda: load_checkpoint("checkpoints/none.pt", MLP())))
    Path("checkpoints/junk.pt").write_bytes(b"not a checkpoint")
    errors.append(_raised(lambda: load_checkpoint("checkpoints/junk.pt", MLP())))
    messages = [(type(error).__name__, str(error)) for error in errors]
    messages.append(("MNISTDataError", str(offline).replace(str(tmp_path), "/content")))
    # The page names every checkpoint checkpoints/mlp.pt.
    return [
        (kind, re.sub(r"checkpoints/(none|junk)\.pt", "checkpoints/mlp.pt", message))
        for kind, message in messages
    ]


def test_the_page_quotes_the_messages_the_code_raises(real_messages):
    quoted = quoted_messages()
    assert len(quoted) >= 8, quoted
    assert HELPERS_ERRORS <= {kind for kind, _ in quoted}
    for kind, message in quoted:
        if "cuda" in message and not torch.cuda.is_available():
            continue  # a GPU's message: checked where there is one
        if kind not in HELPERS_ERRORS and Version(torch.__version__) < QUOTED_RELEASE:
            continue  # PyTorch's wording of another release
        candidates = [real for name, real in real_messages if name == kind]
        assert any(matches(message, real) for real in candidates), (
            f"the page quotes a {kind} that nothing raises:\n{message}\n\nthe {kind}s "
            "raised:\n" + "\n\n".join(candidates)
        )


def test_the_architecture_message_is_quoted_up_to_its_list(real_messages):
    """The page leaves out only the tail of the list of tensors that do not fit."""
    (quoted,) = [m for kind, m in quoted_messages() if "different architecture" in m]
    (real,) = [m for kind, m in real_messages if "different architecture" in m]
    head, tail = (" ".join(part.split()) for part in quoted.split("..."))
    assert " ".join(real.split()).startswith(head)
    assert "hidden.0.weight" in head and tail.startswith("Build the model")


def test_the_quoted_mirrors_are_torchvisions():
    if Version(torch.__version__) < QUOTED_RELEASE:
        pytest.skip("an older torchvision, with its own list of mirrors")
    assert torchvision.datasets.MNIST.mirrors == QUOTED_MIRRORS


def test_the_busy_cores_table_quotes_the_stored_run():
    """The figures of the busy-cores section are those of the run chapter 7 reads,
    benchmarks/results/busy_cores_quiet.json, as the page rounds them."""
    stored = json.loads((ROOT / "benchmarks/results/busy_cores_quiet.json").read_text())
    section = PAGE.read_text().split("benchmarks/busy_cores.py", 1)[1][:1500]
    for condition in stored["conditions"].values():
        for setting in condition["settings"].values():
            assert f"{round(setting['samples_per_second']):,}" in section, setting
