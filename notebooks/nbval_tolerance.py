"""Compare a cell's numbers with the stored ones within a tolerance (an nbval extension).

Processors round floats differently: another CPU, another thread count or a GPU
trains a model whose losses and accuracies differ from the stored ones in the last
digits. A cell tagged ``nbval-tolerance`` is compared number by number instead of
character by character. Its metadata states how far each kind of number may move::

    "tags": ["nbval-tolerance"],
    "tolerance": {"percent": 0.3, "decimal": 0.002, "integer": 5, "rel": 0.0}

* ``percent``: numbers written with a ``%`` after them, in percentage points;
* ``decimal``: other numbers written with a decimal point or an exponent;
* ``integer``: numbers written without either (counts of images, batch numbers);
* ``rel``: a share of the stored number's size that any number may move by as well
  (for tiny figures printed as ``4.5e-08``); a number passes when it is within the
  larger of its kind's bound and ``rel`` times the stored value.

A kind left out may not move at all, so shapes and other integers that rounding
cannot change stay exact unless the cell says otherwise. A cell's ``nbval_skip``
metadata lists patterns whose matches are not compared at all (a timing printed
beside the losses, ``" *[\\d.]+ s$"``), in any cell, tagged or not. Everything that
is not a number (the words, the order of the lines, ``nan``) must match exactly,
except the width of runs of spaces that align columns. A number out of its bound fails the cell
with a line that names it: where it is, the stored and the new value and the bound.

The stored outputs are full runs. Under the test command's quick run
(``MNIST_BOOK_QUICK=1``) a cell whose output differs prints what
:data:`QUICK_OUTPUTS` in its metadata holds: the refresh stores the quick run's text
outputs there, and they are compared instead (within the cell's tolerance if it has
one), so quick cells are compared too rather than ignored.

``notebooks/conftest.py`` installs the comparison in nbval; the pure functions here
are unit-tested in ``tests/test_nbval_tolerance.py``, and
``scripts/rounding_variation.py`` uses them to measure how far outputs move.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass

TAG = "nbval-tolerance"
KINDS = ("percent", "decimal", "integer")
#: Cell metadata: the quick run's text outputs, compared under MNIST_BOOK_QUICK=1.
QUICK_OUTPUTS = "quick_outputs"
#: Cell metadata: why a cell tagged nbval-ignore-output is not compared.
IGNORE_REASON = "nbval_ignore_reason"
#: Cell metadata: patterns whose matches are left out of the comparison, in an
#: output otherwise compared (the seconds of each epoch beside its losses).
SKIP = "nbval_skip"
SKIPPED = "[...]"


def masked(text: str, patterns: list[str]) -> str:
    """``text`` with every match of ``patterns`` replaced by :data:`SKIPPED`."""
    for pattern in patterns:
        text = re.sub(pattern, SKIPPED, text, flags=re.M)
    return text


def mask_outputs(outputs, patterns: list[str]) -> list:
    """Copies of ``outputs`` whose texts are :func:`masked`."""
    result = []
    for output in outputs:
        output = copy.deepcopy(output)
        if isinstance(output.get("text"), str):
            output["text"] = masked(output["text"], patterns)
        for mime, value in output.get("data", {}).items():
            if isinstance(value, str) and mime.startswith("text/"):
                output["data"][mime] = masked(value, patterns)
        result.append(output)
    return result


def quick_run() -> bool:
    """Whether this is the test command's quick run (``MNIST_BOOK_QUICK=1``)."""
    return os.environ.get("MNIST_BOOK_QUICK") == "1"


def reference_outputs(cell) -> list:
    """The outputs a run of ``cell`` is compared with: the quick run's where this is
    one and the cell has them, else the stored ones."""
    if quick_run() and QUICK_OUTPUTS in cell.get("metadata", {}):
        return [copy.deepcopy(o) for o in cell["metadata"][QUICK_OUTPUTS]]
    return cell.get("outputs", [])


#: Rounding as other machines round, made on this one through the environment:
#: PyTorch's portable kernels instead of its vectorised ones, MKL's conditional
#: numerical reproducibility modes, one thread, and more threads than two cores.
#: ``scripts/rounding_variation.py`` measures the chapters under each, and
#: ``nox -s rounding`` runs the test command under each.
ROUNDING_MODES = {
    "this-machine": {},
    "portable-kernels": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "mkl-avx": {"MKL_CBWR": "AVX"},
    "one-thread": {"OMP_NUM_THREADS": "1"},
    "three-threads": {"OMP_NUM_THREADS": "3"},
}

#: A number as the chapters print them: an optional sign, digits with optional
#: thousands separators ("9,885"), an optional fraction and exponent, and an optional
#: "%". Not a number: digits that continue a word ("cu130", "mlp2") or a number.
NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])%?"
)
SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Number:
    text: str  # as printed
    line: int  # 1-based line of the output it is on

    @property
    def kind(self) -> str:
        if self.text.endswith("%"):
            return "percent"
        if re.search(r"[.eE]", self.text):
            return "decimal"
        return "integer"

    @property
    def value(self) -> float:
        return float(self.text.rstrip("%").replace(",", ""))


def split_numbers(text: str) -> tuple[list[str], list[Number]]:
    """``text`` cut into the words between its numbers and the numbers themselves:
    ``words[0] numbers[0] words[1] ... numbers[-1] words[-1]``."""
    words, numbers, last = [], [], 0
    for match in NUMBER.finditer(text):
        words.append(text[last : match.start()])
        line = text.count("\n", 0, match.start()) + 1
        numbers.append(Number(match.group(), line))
        last = match.end()
    words.append(text[last:])
    return words, numbers


def parse_tolerance(spec) -> dict[str, float]:
    """The bounds of a cell's ``tolerance`` metadata, every kind and ``rel`` filled
    in (0 where absent). Raises ``ValueError`` on anything else."""
    if not isinstance(spec, dict):
        raise ValueError(
            f'a cell tagged "{TAG}" needs "tolerance" metadata, a dictionary such as '
            f'{{"percent": 0.3, "decimal": 0.002}}; found {spec!r}'
        )
    unknown = set(spec) - {*KINDS, "rel"}
    if unknown:
        raise ValueError(
            f"unknown tolerance key(s) {sorted(unknown)}: use {', '.join(KINDS)} or rel"
        )
    bounds = {}
    for key in (*KINDS, "rel"):
        value = spec.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"tolerance {key!r} must be a number >= 0, not {value!r}")
        bounds[key] = float(value)
    return bounds


def bound_for(number: Number, bounds: dict[str, float]) -> float:
    """How far ``number`` (a stored one) may move under ``bounds``."""
    return max(bounds[number.kind], bounds["rel"] * abs(number.value))


@dataclass(frozen=True)
class Mismatch:
    index: int  # 1-based position of the number in the output
    stored: Number
    new: Number
    bound: float

    def __str__(self) -> str:
        return (
            f"number {self.index} (line {self.stored.line}): stored {self.stored.text}, "
            f"new {self.new.text}, differs by {abs(self.new.value - self.stored.value):.4g}"
            f", tolerance {self.bound:g} ({self.stored.kind})"
        )


def compare_text(stored: str, new: str, bounds: dict[str, float]):
    """Compare ``new`` with ``stored`` under ``bounds``.

    Returns ``None`` when the texts differ in anything but numbers and the width of
    runs of spaces (the caller then shows the whole diff), else the list of
    :class:`Mismatch` (empty when every number is within its bound).
    """
    stored_words, stored_numbers = split_numbers(stored)
    new_words, new_numbers = split_numbers(new)
    if len(stored_numbers) != len(new_numbers):
        return None
    if [SPACES.sub(" ", w) for w in stored_words] != [SPACES.sub(" ", w) for w in new_words]:
        return None
    mismatches = []
    for index, (old, fresh) in enumerate(zip(stored_numbers, new_numbers), start=1):
        if old.kind != fresh.kind:
            return None
        bound = bound_for(old, bounds)
        if abs(fresh.value - old.value) > bound + 1e-12 * max(1.0, abs(old.value)):
            mismatches.append(Mismatch(index, old, fresh, bound))
    return mismatches


def _texts(output) -> list[tuple[str, str | None]]:
    """``(key, mime)`` of each text an output holds: a stream's text, or each text
    MIME type of its data."""
    if output.get("output_type") == "stream":
        return [("text", None)]
    return [("data", mime) for mime, v in output.get("data", {}).items() if isinstance(v, str)]


def _stream_key(output) -> str:
    if output.get("output_type") == "stream":
        return f"stream:{output.get('name')}"
    return "data"


def reconcile(test_outputs, ref_outputs, bounds):
    """Copies of ``test_outputs`` whose texts are replaced by the stored ones where
    they differ only in numbers within ``bounds``, and the mismatches found
    (``(description, Mismatch)``). Outputs are paired as nbval pairs them: the k-th
    output of a kind (a stream's name, or data) with the k-th stored one."""
    ref_by_kind: dict[str, list] = {}
    for ref in ref_outputs:
        ref_by_kind.setdefault(_stream_key(ref), []).append(ref)
    seen: dict[str, int] = {}
    reconciled, problems = [], []
    for test in test_outputs:
        test = copy.deepcopy(test)
        kind = _stream_key(test)
        position = seen.get(kind, 0)
        seen[kind] = position + 1
        refs = ref_by_kind.get(kind, [])
        if position < len(refs):
            ref = refs[position]
            for key, mime in _texts(test):
                new = test[key] if mime is None else test[key][mime]
                stored = ref.get(key) if mime is None else ref.get(key, {}).get(mime)
                if not isinstance(stored, str):
                    continue
                result = compare_text(stored, new, bounds)
                if result is None:
                    continue  # differs in words: nbval's own diff shows it
                if result:
                    where = kind if mime is None else mime
                    problems.extend((where, mismatch) for mismatch in result)
                elif mime is None:
                    test[key] = stored
                else:
                    test[key][mime] = stored
        reconciled.append(test)
    return reconciled, problems
