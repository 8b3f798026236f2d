"""The oldest releases the book admits are the ones its ``oldest`` nox session tests:
pyproject.toml and requirements.txt have the same floors for PyTorch and
torchvision, the session installs exactly those, and the README names them."""

from __future__ import annotations

import sys
import tomllib
import types
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def floor(requirement: Requirement) -> str:
    (lowest,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    return lowest


def pyproject_floors() -> dict[str, str]:
    requirements = map(Requirement, PYPROJECT["project"]["dependencies"])
    return {canonicalize_name(r.name): floor(r) for r in requirements}


def requirements_floors() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-", ".")):
            requirement = Requirement(line)
            if any(spec.operator == ">=" for spec in requirement.specifier):
                found[canonicalize_name(requirement.name)] = floor(requirement)
    return found


def load_noxfile(monkeypatch) -> dict:
    """The noxfile's sessions, run with a stand-in for nox that records calls."""
    sessions = {}

    def session(python=None):
        def register(function):
            sessions[function.__name__] = (python, function)
            return function

        return register

    fake = types.ModuleType("nox")
    fake.options, fake.session, fake.Session = types.SimpleNamespace(), session, object
    monkeypatch.setitem(sys.modules, "nox", fake)
    namespace = {"__file__": str(ROOT / "noxfile.py"), "__name__": "noxfile"}
    exec(compile((ROOT / "noxfile.py").read_text(), "noxfile.py", "exec"), namespace)
    return {"sessions": sessions, **namespace}


class RecordingSession:
    posargs: list[str] = []

    def __init__(self):
        self.calls = []

    def install(self, *args):
        self.calls.append(("install", *args))

    def run(self, *args, **kwargs):
        self.calls.append(("run", *args))


def test_pyproject_and_requirements_have_the_same_floors():
    package, reader = pyproject_floors(), requirements_floors()
    assert {name: reader[name] for name in package} == package


def test_the_oldest_session_installs_the_floors_and_runs_every_check(monkeypatch):
    noxfile = load_noxfile(monkeypatch)
    python, oldest = noxfile["sessions"]["oldest"]
    assert python == noxfile["PYTHONS"][0]  # the oldest Python too
    session = RecordingSession()
    oldest(session)
    floors = pyproject_floors()
    pins = [f"{name}=={floors[name]}" for name in ("torch", "torchvision")]
    assert session.calls[0] == ("install", "-r", "requirements.txt", *pins)
    (pytest_call,) = [call for call in session.calls if "pytest" in call]
    assert "--nbval-lax" in pytest_call  # every chapter runs, its hidden checks too
    assert noxfile["floors"]() == floors


def test_the_readme_names_the_tested_floors():
    versions = (ROOT / "README.md").read_text().split("## Versions", 1)[1].split("\n## ")[0]
    floors = pyproject_floors()
    assert f"PyTorch {floors['torch']}" in versions, versions
    assert f"torchvision {floors['torchvision']}" in versions, versions
    assert "nox -s oldest" in versions
