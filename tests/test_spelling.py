"""A spelling check of everything a reader reads: the chapters (their text, code and
text outputs), the book's pages, the helper package, the tests, the scripts and the
README. codespell looks for common misspellings; its settings, and the short list of
words it accepts, are in pyproject.toml (``[tool.codespell]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What the check reads, from the repository root.
CHECKED = [
    "notebooks",
    "book",
    "mnist_helpers",
    "tests",
    "scripts",
    "benchmarks",
    "README.md",
    "CONTRIBUTING.md",
]


def codespell(*paths: str | Path) -> subprocess.CompletedProcess:
    """codespell with the project's settings, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "codespell_lib", "--toml", "pyproject.toml", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_misspelling():
    paths = [path for path in CHECKED if (ROOT / path).exists()]
    assert "notebooks" in paths and "book" in paths
    result = codespell(*paths)
    assert result.returncode == 0, (
        "misspellings (fix them, or add a word that is right to ignore-words-list in "
        f"pyproject.toml):\n{result.stdout}{result.stderr}"
    )


def test_the_check_finds_a_misspelling_in_a_notebook_and_a_page(tmp_path):
    """The settings leave the text of notebooks and pages checked: only the stored
    images are skipped. (The misspellings are put together here, so that this file
    passes the check itself.)"""
    the, receive = "t" + "eh", "rec" + "ieve"
    page = tmp_path / "page.md"
    page.write_text(f"{the.title()} network.\n")
    notebook = tmp_path / "chapter.ipynb"
    notebook.write_text(
        f'{{"cells": [{{"source": ["the accuracy we {receive}"], "outputs": [{{"data": '
        f'{{"image/png": "iVBOR{the}0KGgo", "text/plain": ["a figure"]}}}}]}}]}}\n'
    )
    result = codespell(page, notebook)
    assert result.returncode != 0
    found = result.stdout.lower()
    assert f"page.md:1: {the}" in found and f"chapter.ipynb:1: {receive}" in found, found
    assert found.count(the) == 1, "the image's base64 text is not read as words"
