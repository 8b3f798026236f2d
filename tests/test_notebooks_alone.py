"""A chapter run as a Colab reader runs it: alone, in an empty folder, with the helper
package installed from its sources (not editable, not the checkout) and no
checkpoints from earlier chapters.

The testing chapter is the one that depends on another chapter's files (the final
model that chapter 4 saves). Under the test command, chapter 4 has just run in the
same pytest-xdist worker (conftest.py's groups), so its two checkpoint files are
copied into the folder, as a reader copies them, and the chapter loads them. Run
alone, with no finished run of chapter 4 in the checkout, the folder starts empty
and ``load_final_model`` trains the final recipe with ``train_final_model`` (half a
minute or more). Either way the outputs nbval compares are the stored ones, and the
test accuracy the chapter prints is that of the model in the folder, evaluated here.
(The model itself depends on the processor's rounding, so that figure is the stored
one only on the processor that made the stored outputs. That ``train_final_model``
is chapter 4's recipe written out is tested in test_recipe.py.) The other chapters
need nothing but the package and MNIST, and nbval runs each of them in a fresh kernel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mnist_helpers import MLP, TensorLoader, evaluate, load_tensors, normalize
from mnist_helpers.checkpoints import best_path
from mnist_helpers.data import data_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "notebooks"))
import nbval_tolerance  # noqa: E402  (the notebooks' own comparison)

TESTING_CHAPTER = ROOT / "notebooks" / "05_testing.ipynb"

#: The line that states the test accuracy.
ACCURACY = re.compile(r"Test Accuracy \(Overall\): [0-9.]+% \(\d+/\d+\)")
ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """mnist_helpers installed from a copy of its sources into a folder of its own,
    as ``pip install`` from the repository does (no editable link to the checkout)."""
    sources = tmp_path_factory.mktemp("sources")
    shutil.copytree(
        ROOT / "mnist_helpers",
        sources / "mnist_helpers",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, sources / name)
    target = tmp_path_factory.mktemp("site-packages")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        + ["--no-build-isolation", "--no-index", "--target", str(target), str(sources)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (target / "mnist_helpers" / "recipe.py").is_file()
    assert not any(target.glob("__editable__*"))
    return target


def _texts(cell) -> list[str]:
    """What nbval compares of a code cell's outputs, as text. Each stream is one
    text, where it first appears, as nbval's ``coalesce_streams`` joins it: how a
    kernel splits a cell's printing into messages depends on timing."""
    texts, streams = [], {}
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name in streams:
            texts[streams[output.name]] += output.text
        elif output.output_type == "stream":
            streams[output.name] = len(texts)
            texts.append(f"{output.name}: {output.text}")
        elif output.output_type == "error":
            texts.append(f"error: {output.ename}: {output.evalue}")
        elif "text/plain" in output.get("data", {}):
            texts.append(f"value: {output.data['text/plain']}")
    return [ADDRESS.sub("0xADDRESS", text) for text in texts]


def _assert_same(texts: list[str], kept) -> None:
    """``texts``, a fresh run's, against the stored cell ``kept`` as nbval compares
    them in this project: numbers within the cell's stated tolerance, the patterns of
    its ``nbval_skip`` left out, everything else exactly."""
    stored = _texts(kept)
    skip = kept.metadata.get(nbval_tolerance.SKIP, [])
    texts = [nbval_tolerance.masked(text, skip) for text in texts]
    stored = [nbval_tolerance.masked(text, skip) for text in stored]
    if nbval_tolerance.TAG not in kept.metadata.get("tags", []):
        assert texts == stored, kept.source[:300]
        return
    bounds = nbval_tolerance.parse_tolerance(kept.metadata.get("tolerance"))
    assert len(texts) == len(stored), kept.source[:300]
    for new, old in zip(texts, stored, strict=True):
        assert nbval_tolerance.compare_text(old, new, bounds) == [], (old, new)


def _compared(cell) -> bool:
    return "nbval-ignore-output" not in cell.metadata.get("tags", [])


def _accuracy_line(checkpoint: Path) -> str:
    """The chapter's accuracy line for the model in ``checkpoint``, computed here."""
    model = MLP.from_checkpoint(checkpoint)
    images, labels = load_tensors(train=False)
    result = evaluate(model, TensorLoader(normalize(images), labels, batch_size=1000))
    num_right = (result.predictions == labels).sum().item()
    return f"Test Accuracy (Overall): {num_right / len(labels):.2%} ({num_right}/{len(labels)})"


def test_testing_chapter_alone_in_an_empty_folder(
    installed, real_root, chapter4_checkpoint, tmp_path
):
    if not TESTING_CHAPTER.is_file():
        pytest.skip(f"{TESTING_CHAPTER.name} is not in this checkout")
    stored = nbformat.read(TESTING_CHAPTER, as_version=4)
    assert any(ACCURACY.search(t) for c in stored.cells for t in _texts(c))
    folder = tmp_path / "empty"
    folder.mkdir()
    if chapter4_checkpoint is not None:  # chapter 4 ran before this test
        (folder / "checkpoints").mkdir()
        for path in (chapter4_checkpoint, best_path(chapter4_checkpoint)):
            shutil.copy(path, folder / "checkpoints" / path.name)
    notebook = nbformat.read(TESTING_CHAPTER, as_version=4)
    # Where the kernel found the package, to check it is the installed copy.
    notebook.cells.insert(
        0, nbformat.v4.new_code_cell("import mnist_helpers\nprint(mnist_helpers.__file__)")
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "MNIST_BOOK_QUICK"}
    }
    env.update(PYTHONPATH=str(installed), MNIST_DATA_DIR=str(data_dir()))
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(cwd=str(folder), env=env)

    where = notebook.cells.pop(0).outputs[0].text.strip()
    assert Path(where).is_relative_to(installed), where
    assert (folder / "checkpoints" / "mlp.best.pt").is_file()  # copied or trained
    assert not (folder / "data").exists()  # MNIST came from MNIST_DATA_DIR
    compared = 0
    for ran, kept in zip(notebook.cells, stored.cells, strict=True):
        if kept.cell_type == "code" and _compared(kept):
            _assert_same(_texts(ran), kept)
            compared += 1
    assert compared >= 10
    printed = [match.group() for cell in notebook.cells for text in _texts(cell)
               if (match := ACCURACY.search(text))]  # fmt: skip
    assert printed == [_accuracy_line(folder / "checkpoints" / "mlp.best.pt")]


def test_a_stream_split_into_several_messages_is_one_text():
    """nbval joins each stream of a cell (``coalesce_streams``); so does ``_texts``,
    or a kernel that split its printing differently would fail the comparison."""
    stream = nbformat.v4.new_output
    split = {
        "outputs": [
            stream("stream", name="stdout", text="top-1 98.82%\n"),
            stream("stream", name="stderr", text="a warning\n"),
            stream("stream", name="stdout", text="top-2 99.80%\n"),
        ]
    }
    whole = {
        "outputs": [
            stream("stream", name="stdout", text="top-1 98.82%\ntop-2 99.80%\n"),
            stream("stream", name="stderr", text="a warning\n"),
        ]
    }
    assert (
        _texts(split)
        == _texts(whole)
        == ["stdout: top-1 98.82%\ntop-2 99.80%\n", "stderr: a warning\n"]
    )
