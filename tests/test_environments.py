"""The readers' environments name what the code imports.

* ``requirements.txt`` (the README's setup) installs every third-party package that
  the notebooks, the helper package and the tests import;
* ``pyproject.toml``'s dependencies (what ``pip install`` of the package brings, as in
  Colab) cover every third-party import of the helper package;
* ``binder/requirements.txt`` (Binder, built by repo2docker) installs the CPU-only
  PyTorch and every third-party package the notebooks import, plus the package;
* the Python versions: ``requires-python``, the classifiers (which the noxfile runs)
  and Binder's ``runtime.txt`` agree.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
import types
from pathlib import Path

import nbformat
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE = canonicalize_name(PYPROJECT["project"]["name"])

#: Import names whose distribution is named otherwise.
DISTRIBUTIONS = {
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "IPython": "ipython",
    "mnist_helpers": PACKAGE,
}

#: What a distribution brings that the code imports under its own name: pytest's
#: plugins are found by the test runner, not imported.
PROVIDED_BY = {"_pytest": "pytest"}


def imports_of(source: str) -> set[str]:
    """Top-level names of the absolute imports in Python ``source`` (IPython's
    ``%magic`` and ``!shell`` lines made ``pass`` first)."""
    lines = [
        line[: len(line) - len(line.lstrip())] + "pass"  # keeps an `if` block valid
        if line.lstrip().startswith(("%", "!"))
        else line
        for line in source.splitlines()
    ]
    names = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party(names: set[str]) -> set[str]:
    """Distribution names of the imports that Python itself does not provide."""
    return {
        canonicalize_name(DISTRIBUTIONS.get(PROVIDED_BY.get(name, name), name))
        for name in names
        if name not in sys.stdlib_module_names and name != "__future__"
    }


def notebook_imports() -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        code = [cell.source for cell in cells if cell.cell_type == "code"]
        found[path.name] = third_party(set().union(*map(imports_of, code)))
    return found


def python_imports(folder: str) -> set[str]:
    """Distribution names of the third-party imports of the Python files in ``folder``
    (its own modules, such as ``conftest``, excluded)."""
    paths = sorted((ROOT / folder).rglob("*.py"))
    names = set().union(*(imports_of(path.read_text(encoding="utf-8")) for path in paths))
    own = {path.stem for path in paths} | {path.stem for path in NOTEBOOK_MODULES}
    return third_party(names - own) - {PACKAGE}


#: The notebooks folder's own modules (the nbval extension), which tests and scripts
#: import from there.
NOTEBOOK_MODULES = sorted((ROOT / "notebooks").glob("*.py"))


def requirements(path: Path) -> tuple[dict[str, Requirement], list[str]]:
    """The named requirements of a pip requirements file, and its other lines
    (options such as ``--extra-index-url``, and local paths such as ``.``)."""
    named, other = {}, []
    for line in path.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or line.startswith("."):
            other.append(line)
        else:
            requirement = Requirement(line)
            named[canonicalize_name(requirement.name)] = requirement
    return named, other


def installs_the_package(other_lines: list[str]) -> bool:
    return any(re.fullmatch(r"(-e\s+)?\.", line) for line in other_lines)


def _missing(needed: dict[str, set[str]], available: set[str]) -> dict[str, list[str]]:
    missing = {where: sorted(names - available) for where, names in needed.items()}
    return {where: names for where, names in missing.items() if names}


# --- the import scanner itself ---------------------------------------------------------


def test_imports_of_reads_notebook_code():
    code = "%matplotlib inline\n!pip list\nimport os, numpy as np\nfrom PIL import Image\n"
    code += "from torch.utils.data import DataLoader\nfrom . import local\nimport a.b.c\n"
    assert imports_of(code) == {"os", "numpy", "PIL", "torch", "a"}
    assert third_party(imports_of(code)) == {"numpy", "pillow", "torch", "a"}


# --- requirements.txt and pyproject.toml ------------------------------------------------


def test_requirements_install_what_the_notebooks_package_and_tests_import():
    named, other = requirements(ROOT / "requirements.txt")
    assert installs_the_package(other), "requirements.txt installs the package (-e .)"
    available = set(named) | {PACKAGE}
    needed = {
        **notebook_imports(),
        "mnist_helpers": python_imports("mnist_helpers"),
        "tests": python_imports("tests"),
        "scripts": python_imports("scripts"),
    }
    assert not _missing(needed, available), "requirements.txt lacks these"


def test_package_dependencies_cover_its_imports():
    declared = {
        canonicalize_name(Requirement(line).name) for line in PYPROJECT["project"]["dependencies"]
    }
    missing = python_imports("mnist_helpers") - declared
    assert not missing, f"pyproject.toml's dependencies lack {sorted(missing)}"


# --- Binder -----------------------------------------------------------------------------

BINDER = ROOT / "binder"


def test_binder_installs_what_the_notebooks_import():
    named, other = requirements(BINDER / "requirements.txt")
    assert installs_the_package(other), "binder/requirements.txt installs the package (.)"
    package_dependencies = {
        canonicalize_name(Requirement(line).name) for line in PYPROJECT["project"]["dependencies"]
    }
    needed = {**notebook_imports(), "the package's dependencies": package_dependencies}
    assert not _missing(needed, set(named) | {PACKAGE}), "binder/requirements.txt lacks these"


def test_binder_takes_the_cpu_only_pytorch_of_the_stored_outputs():
    named, other = requirements(BINDER / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in other
    reader, _ = requirements(ROOT / "requirements.txt")
    for name in ("torch", "torchvision"):
        (pin,) = named[name].specifier
        assert pin.operator == "==" and pin.version.endswith("+cpu"), pin
        # The same release the README's setup admits, so outputs agree.
        assert Version(pin.version) in reader[name].specifier, (name, pin.version)


def test_python_versions_agree():
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    classifiers = [
        line.rsplit("::", 1)[1].strip()
        for line in PYPROJECT["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", line)
    ]
    assert classifiers, "pyproject.toml lists the Python versions it supports"
    assert all(Version(version) in requires for version in classifiers)
    lowest = min(classifiers, key=Version)
    assert Version(f"{lowest}").release[:2] == Version(str(requires).lstrip(">=")).release[:2]
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-") and runtime.removeprefix("python-") in classifiers
    readme = (ROOT / "README.md").read_text()
    assert f"Python {lowest} or newer" in readme, "the README promises what pyproject enforces"


def test_noxfile_runs_the_readme_test_command_under_every_promised_version(monkeypatch):
    """Run the noxfile with a stand-in for nox that records what it asks for."""
    sessions, calls = {}, []

    class Options:
        pass

    def session(python):
        def register(function):
            sessions[function.__name__] = (python, function)
            return function

        return register

    class Session:
        posargs = ["tests/test_data.py"]

        def install(self, *args):
            calls.append(("install", *args))

        def run(self, *args):
            calls.append(("run", *args))

    fake = types.ModuleType("nox")
    fake.options, fake.session, fake.Session = Options(), session, Session
    monkeypatch.setitem(sys.modules, "nox", fake)
    namespace = {"__file__": str(ROOT / "noxfile.py"), "__name__": "noxfile"}
    exec(compile((ROOT / "noxfile.py").read_text(), "noxfile.py", "exec"), namespace)

    classifiers = [
        line.rsplit("::", 1)[1].strip()
        for line in PYPROJECT["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", line)
    ]
    (pythons, tests) = sessions["tests"]
    assert pythons == classifiers
    tests(Session())
    assert calls == [
        ("install", "-r", "requirements.txt"),
        ("run", "python", "-m", "pytest", "tests/test_data.py"),
    ]
