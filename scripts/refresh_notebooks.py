"""Re-execute notebooks in place so their stored outputs are current.

    python scripts/refresh_notebooks.py                 # every chapter
    python scripts/refresh_notebooks.py notebooks/03_training.ipynb
    python scripts/refresh_notebooks.py --no-execute    # only normalise the metadata

Each notebook runs top to bottom in a fresh kernel from the notebooks/ folder, as
nbval runs it, and is saved with its outputs and execution counts. The time each
one took is printed.

Before saving, the cell metadata is normalised (also with ``--no-execute``, which
runs nothing and keeps outputs and execution counts as they are):

* every cell tagged ``remove-cell`` (the bootstrap cell and the hidden checks, which
  the book leaves out) is collapsed in JupyterLab (``"jupyter": {"source_hidden":
  true}``) and in Colab (``"cellView": "form"``), so it stays out of sight there too;
* the per-cell execution timestamps that Jupyter records (``"execution"``) are
  dropped, so that re-running a notebook changes only what its cells print;
* widget views (chapter 10's drawing canvas) are dropped from the outputs, and no
  widget state is stored: a widget lives only in a running kernel, and a stored
  view would make the book load widget code from the network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
HIDDEN_TAG = "remove-cell"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def is_hidden(cell) -> bool:
    """Whether the book leaves ``cell`` out (tagged ``remove-cell``)."""
    return HIDDEN_TAG in cell.get("metadata", {}).get("tags", [])


def is_collapsed(cell) -> bool:
    """Whether ``cell`` is collapsed in JupyterLab and in Colab."""
    metadata = cell.get("metadata", {})
    return (
        metadata.get("jupyter", {}).get("source_hidden") is True
        and metadata.get("cellView") == "form"
    )


def normalise_metadata(notebook: nbformat.NotebookNode) -> int:
    """Collapse every ``remove-cell`` cell and drop execution timestamps, in place.

    Returns how many cells changed. Sources, outputs and execution counts are kept.
    """
    changed = 0
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        before = nbformat.from_dict(cell.metadata)
        cell.metadata.pop("execution", None)
        if is_hidden(cell):
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
            cell.metadata["cellView"] = "form"
        changed += cell.metadata != before
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                del output["data"][WIDGET_VIEW]
                changed += 1
    return changed


def refresh(path: Path, execute: bool = True, timeout: int = 600) -> float:
    """Execute ``path`` in place (unless ``execute`` is false), normalise its
    metadata and save it. Returns the seconds the execution took."""
    notebook = nbformat.read(path, as_version=4)
    seconds = 0.0
    if execute:
        start = time.perf_counter()
        NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            record_timing=False,
            store_widget_state=False,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        seconds = time.perf_counter() - start
    normalise_metadata(notebook)
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: all chapters")
    parser.add_argument(
        "--no-execute",
        dest="execute",
        action="store_false",
        help="run nothing: only collapse the hidden cells and drop timestamps",
    )
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    total = 0.0
    for path in paths:
        seconds = refresh(path, execute=args.execute)
        total += seconds
        if args.execute:
            print(f"{seconds:6.1f} s  {path.name}", flush=True)
        else:
            print(f"normalised  {path.name}", flush=True)
    if args.execute:
        print(f"{total:6.1f} s  in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
