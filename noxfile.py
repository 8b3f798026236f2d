"""The README's test command under every Python version the book promises.

    nox                       # every promised version this machine has
    nox -s tests-3.12         # one version
    nox -s tests-3.12 -- tests/test_data.py   # arguments after -- go to pytest
    nox -s oldest             # the oldest PyTorch and torchvision the book admits
    nox -s rounding           # the test command as other processors round

Each ``tests`` session is what a reader does on a fresh machine: a virtual
environment of its own (made on the first run, reused by later ones), ``pip install
-r requirements.txt``, then ``python -m pytest``. Versions
that are not installed are skipped (``nox --error-on-missing-interpreters`` makes
them fail).

The ``oldest`` session installs the same, but with the oldest PyTorch and torchvision
that ``pyproject.toml`` admits (its floors, :data:`OLDEST`), and runs the test
command with ``--nbval-lax``: every unit test, and every chapter top to bottom with
its hidden checks, without comparing the stored outputs, whose float digits another
PyTorch release may change. The tests that compare a fresh run's figures with the
stored ones exactly are left out there (:data:`EXACT_TESTS`).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "notebooks"))
from nbval_tolerance import ROUNDING_MODES  # noqa: E402

#: Python versions from pyproject's classifiers, the ones ``requires-python`` admits.
PYTHONS = [
    line.rsplit("::", 1)[1].strip()
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    if line.startswith("Programming Language :: Python :: 3.")
]

#: The libraries whose oldest admitted release the ``oldest`` session installs, each at
#: the floor of its ``>=`` in pyproject.toml's dependencies.
OLDEST = ("torch", "torchvision")

#: Tests that compare a fresh run with the stored outputs digit for digit, as nbval
#: does: they hold for the release the outputs were made with, not for every release.
EXACT_TESTS = "not test_testing_chapter_alone_in_an_empty_folder"


def floors() -> dict[str, str]:
    """``{"torch": "2.4", ...}``: the ``>=`` floor of each of pyproject.toml's
    dependencies."""
    found = {}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        name, _, rest = line.partition(">=")
        found[name.strip()] = rest.split(",")[0].strip()
    return found


nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """pip install -r requirements.txt, then python -m pytest."""
    session.install("-r", "requirements.txt")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHONS[0])
def oldest(session: nox.Session) -> None:
    """requirements.txt with the oldest admitted PyTorch and torchvision, then the
    test command without comparing the stored outputs (``--nbval-lax``)."""
    pins = [f"{name}=={floors()[name]}" for name in OLDEST]
    session.install("-r", "requirements.txt", *pins)
    session.run("python", "-m", "pip", "list", silent=False)
    session.run("python", "-m", "pytest", "--nbval-lax", "-k", EXACT_TESTS, *session.posargs)


@nox.session(python=PYTHONS[0])
def rounding(session: nox.Session) -> None:
    """The test command under each of the rounding modes other machines round in
    (``ROUNDING_MODES`` in notebooks/nbval_tolerance.py), one after the other, in one
    environment: ``nox -s rounding`` for all, ``nox -s rounding -- one-thread`` for
    one. Every stored output is compared (numbers within their cells' tolerances) and
    every hidden check runs; no ``--nbval-lax``."""
    modes = session.posargs or list(ROUNDING_MODES)
    unknown = sorted(set(modes) - set(ROUNDING_MODES))
    if unknown:
        session.error(f"unknown mode(s) {unknown}: choose from {list(ROUNDING_MODES)}")
    session.install("-r", "requirements.txt")
    for mode in modes:
        session.log(f"rounding mode {mode}: {ROUNDING_MODES[mode] or 'as this machine'}")
        session.run("python", "-m", "pytest", env=ROUNDING_MODES[mode])
