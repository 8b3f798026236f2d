"""The README's test command under every Python version the book promises.

    nox                       # every promised version this machine has
    nox -s tests-3.12         # one version
    nox -s tests-3.12 -- tests/test_data.py   # arguments after -- go to pytest

Each session is what a reader does on a fresh machine: a new virtual environment,
``pip install -r requirements.txt``, then ``python -m pytest``. Versions that are not
installed are skipped (``nox --error-on-missing-interpreters`` makes them fail).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

#: Python versions from pyproject's classifiers, the ones ``requires-python`` admits.
PYTHONS = [
    line.rsplit("::", 1)[1].strip()
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    if line.startswith("Programming Language :: Python :: 3.")
]

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """pip install -r requirements.txt, then python -m pytest."""
    session.install("-r", "requirements.txt")
    session.run("python", "-m", "pytest", *session.posargs)
