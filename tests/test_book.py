"""The book: its sources agree with each other, and it builds cleanly into a site
that hides what it should, shows exercises as such and has no broken links.

It also holds every chapter to the book's conventions (CONTRIBUTING.md): a summary, a
questionnaire and exercises; short code cells; glossary terms that exist; links and
names that follow the chapters' numbers.

The site is built once per test session (the ``built_book`` fixture of conftest.py),
from the stored notebook outputs, with the command the README gives:
``jupyter-book build -W -n --keep-going``. ``tests/test_browser.py`` opens the same
build in a browser.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup

import mnist_helpers

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
OWNER_REPO = urlsplit(REPO_URL).path.strip("/")

#: Repositories other than this one that the sources may link to.
THIRD_PARTY = {
    "pytorch/pytorch",
    "pytorch/vision",
    "pytorch/tutorials",
    "jupyter-book/jupyter-book",
    "executablebooks/jupyter-book",
}

#: Where a repository is named: GitHub itself, Colab, Binder, raw files.
REPO_PATTERNS = [
    re.compile(
        r"(?<![\w.])github\.com/(?P<repo>[\w.-]+/[\w.-]+)(?:/(?:blob|tree)/(?P<branch>[\w.-]+))?"
    ),
    re.compile(
        r"colab\.research\.google\.com/github/(?P<repo>[\w.-]+/[\w.-]+)(?:/blob/(?P<branch>[\w.-]+))?"
    ),
    re.compile(r"mybinder\.org/v2/gh/(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<branch>[\w.-]+))?"),
    re.compile(r"raw\.githubusercontent\.com/(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<branch>[\w.-]+))?"),
]
BOOTSTRAP_PIP = re.compile(r"%pip install\b[^\n]*?[\"']?git\+(?P<url>[^\"'\s]+)")


def toc_files(entries=None) -> list[str]:
    """Every file of ``_toc.yml`` in reading order, the root first."""
    if entries is None:
        return [TOC["root"], *toc_files(TOC.get("parts", [])), *toc_files(TOC.get("chapters", []))]
    files = []
    for entry in entries:
        if "file" in entry:
            files.append(entry["file"])
        for key in ("chapters", "sections"):
            files += toc_files(entry.get(key, []))
    return files


def source_of(page: str) -> Path:
    """The source file of a ``_toc.yml`` entry (``book/intro`` -> ``book/intro.md``)."""
    for suffix in (".md", ".ipynb"):
        if (path := ROOT / f"{page}{suffix}").is_file():
            return path
    raise FileNotFoundError(f"_toc.yml lists {page}, but neither {page}.md nor .ipynb exists")


PAGES = toc_files()
CHAPTERS = [page for page in PAGES if page.startswith("notebooks/")]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


# --- helpers for the built site ---------------------------------------------------


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def page_html(build, page: str) -> Path:
    return build.html / f"{page}.html"


# --- the sources -----------------------------------------------------------------


def test_config_builds_from_stored_outputs_with_local_math():
    assert CONFIG["execute"]["execute_notebooks"] == "off", "the book must not run the notebooks"
    sphinx = CONFIG["sphinx"]["config"]
    mathjax = sphinx["mathjax_path"]
    assert "://" not in mathjax, "MathJax must come with the site, not from a CDN"
    static = [ROOT / folder for folder in sphinx["html_static_path"]]
    assert any((folder / mathjax).is_file() for folder in static), f"{mathjax} is missing"


def test_toc_lists_every_chapter_and_every_page_exists():
    for page in PAGES:
        source_of(page)
    listed = {ROOT / f"{page}.ipynb" for page in CHAPTERS}
    unlisted = [path.name for path in NOTEBOOKS if path not in listed]
    assert not unlisted, f"notebooks missing from _toc.yml: {unlisted}"


def repo_references(text: str):
    """``(owner/repo, branch or None, matched text)`` for every repository named in ``text``."""
    for pattern in REPO_PATTERNS:
        for match in pattern.finditer(text):
            repo = match["repo"].rstrip(".").removesuffix(".git")
            yield repo, match["branch"], match.group(0)


def files_naming_the_repository() -> dict[Path, str]:
    texts = {
        ROOT / name: (ROOT / name).read_text(encoding="utf-8")
        for name in ("README.md", "pyproject.toml", "CONTRIBUTING.md", "requirements.txt")
    }
    for path in sorted((ROOT / "book").glob("*.md")):
        texts[path] = path.read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        texts[path] = "\n".join(cell.source for cell in read_notebook(path).cells)
    return texts


def test_every_copy_of_the_repository_url_agrees_with_config():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPO_URL), REPO_URL
    problems = []
    for path, text in files_naming_the_repository().items():
        for repo, branch, found in repo_references(text):
            if repo == OWNER_REPO:
                if branch is not None and branch != BRANCH:
                    problems.append(f"{path.relative_to(ROOT)}: {found} (branch is {BRANCH})")
            elif repo not in THIRD_PARTY:
                problems.append(
                    f"{path.relative_to(ROOT)}: {found} is not {OWNER_REPO} "
                    "(add it to THIRD_PARTY if it is another project)"
                )
    assert not problems, "repository URL disagrees with _config.yml:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md", "pyproject.toml"])
def test_file_names_the_repository(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    assert any(repo == OWNER_REPO for repo, _, _ in repo_references(text)), (
        f"{name} lacks {REPO_URL}"
    )


def test_pyproject_urls_name_the_repository():
    tomllib = pytest.importorskip("tomllib")
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert REPO_URL in [url.rstrip("/") for url in urls.values()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_bootstrap_cell_installs_from_the_repository_and_is_hidden(path):
    cells = read_notebook(path).cells
    bootstrap = [cell for cell in cells if "%pip install" in cell.source]
    assert len(bootstrap) == 1, f"{path.name}: expected one bootstrap cell"
    (cell,) = bootstrap
    assert cell is next(c for c in cells if c.cell_type == "code"), "it must be the first code cell"
    assert "remove-cell" in tags(cell), (
        f"{path.name}: the bootstrap cell must be tagged remove-cell"
    )
    assert 'find_spec("mnist_helpers") is None' in cell.source, "install only when missing"
    urls = [match["url"] for match in BOOTSTRAP_PIP.finditer(cell.source)]
    assert urls == [f"{REPO_URL}"], f"{path.name}: installs from {urls}, not git+{REPO_URL}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_widget_outputs(path):
    """Widget outputs (tqdm.auto bars, ipywidgets) render blank in the book."""
    for cell in read_notebook(path).cells:
        for output in cell.get("outputs", []):
            widget = "application/vnd.jupyter.widget-view+json" in output.get("data", {})
            assert not widget, f"{path.name}: a widget output renders blank in the book"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_exercise_has_a_collapsed_solution_of_tagged_cells(path):
    cells = read_notebook(path).cells
    exercises = re.findall(
        r"```\{exercise\}[^\n]*\n:label: *(\S+)", "\n".join(c.source for c in cells)
    )
    starts = [
        re.match(r"```\{solution-start\} *(\S+)\n(.*?)```", cell.source, re.S)
        for cell in cells
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source
    ]
    assert all(starts), f"{path.name}: a solution-start cell is not in the CONTRIBUTING format"
    assert [start[1] for start in starts] == exercises, "one solution per exercise, in order"
    assert all(":class: dropdown" in start[2] for start in starts), "solutions must be collapsed"
    inside = False
    for cell in cells:
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            assert not inside, f"{path.name}: a solution starts before the last one ended"
            inside = True
        elif cell.cell_type == "markdown" and "{solution-end}" in cell.source:
            assert inside, f"{path.name}: a solution-end without its solution-start"
            inside = False
        elif cell.cell_type == "code" and "solution-check" in tags(cell):
            assert "remove-cell" in tags(cell), (
                f"{path.name}: a solution-check cell must be hidden (remove-cell) too"
            )
        elif cell.cell_type == "code":
            assert ("solution" in tags(cell)) == inside, (
                f"{path.name}: code cells between solution-start and solution-end (other "
                f"than hidden solution-check cells), and only those, are tagged "
                f"solution:\n{cell.source[:200]}"
            )
    assert not inside, f"{path.name}: the last solution has no solution-end"


# --- the chapters' conventions (CONTRIBUTING.md) ---------------------------------

#: Code cells allowed past the limits, by notebook and the cell's first line, each
#: with the reason. Keep it short: split the cell instead where you can.
LONG_CELL_EXEMPTIONS: dict[tuple[str, str], str] = {}
MAX_CELL_LINES, MAX_CELL_COLUMNS = 15, 79


def markdown_sections(path: Path) -> dict[str, str]:
    """The Markdown of each ``##`` section of a notebook, by heading, in order."""
    sections: dict[str, list[str]] = {}
    current = None
    for cell in read_notebook(path).cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if heading := re.match(r"^## +(.+?)\s*$", line):
                current = heading[1]
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
    return {heading: "\n".join(lines) for heading, lines in sections.items()}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_chapter_ends_with_summary_questionnaire_and_exercises(path):
    headings = list(markdown_sections(path))
    ending = ["Summary", "Questionnaire", "Exercises"]
    missing = [heading for heading in ending if heading not in headings]
    assert not missing, f"{path.name} has no ## {', ## '.join(missing)}"
    assert headings[-3:] == ending, (
        f"{path.name}: the last sections must be {ending}, in that order; found {headings[-3:]}"
    )


def questions(questionnaire: str) -> list[str]:
    """The numbered questions of a questionnaire, each with its text up to the next."""
    starts = [match.start() for match in re.finditer(r"^\d+\. ", questionnaire, re.M)]
    return [questionnaire[a:b] for a, b in zip(starts, [*starts[1:], len(questionnaire)])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_questionnaire_has_8_to_10_questions_with_folded_answers(path):
    questionnaire = markdown_sections(path).get("Questionnaire")
    assert questionnaire is not None, f"{path.name} has no ## Questionnaire"
    found = questions(questionnaire)
    assert 8 <= len(found) <= 10, f"{path.name}: {len(found)} questions, not 8 to 10"
    for question in found:
        first = question.splitlines()[0]
        folded = re.search(
            r"<details>\s*<summary>[^<]+</summary>\s*\S.*?</details>", question, re.S
        )
        assert folded, f"{path.name}: no folded <details> answer after {first!r}"
        asked = question[: question.index("<details>")]
        assert "?" in asked or asked.rstrip().endswith("."), f"not a question: {first!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_two_to_four_exercises(path):
    cells = read_notebook(path).cells
    text = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    exercises_at = re.search(r"^## +Exercises\s*$", text, re.M)
    assert exercises_at, f"{path.name} has no ## Exercises"
    count = len(re.findall(r"^```+\{exercise\}", text[exercises_at.end() :], re.M))
    assert 2 <= count <= 4, f"{path.name}: {count} exercises under ## Exercises, not 2 to 4"


#: The most words a chapter's main path may have: the Markdown a reader reads, outside
#: folded boxes (``<details>``: questionnaire answers, "going deeper" boxes) and
#: exercise solutions. Chapter 1 comes before the first network, so it is shorter.
MAIN_PATH_WORDS = {"01_data": 3000}
MAIN_PATH_DEFAULT = 3500


def main_path_words(path: Path) -> int:
    words, in_solution = 0, False
    for cell in read_notebook(path).cells:
        if cell.cell_type != "markdown" or cell.get("id") == "provenance":
            continue  # the refresh's last line says where the outputs come from
        if "{solution-start}" in cell.source:
            in_solution = True
        elif "{solution-end}" in cell.source:
            in_solution = False
        elif not in_solution:
            shown = re.sub(r"<details>.*?</details>", "", cell.source, flags=re.S)
            words += len(shown.split())
    return words


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_main_path_is_short(path):
    """What is true and useful but not on a chapter's path goes in a folded box or to
    the page where it belongs: each paragraph is one more claim to keep true."""
    limit = MAIN_PATH_WORDS.get(path.stem, MAIN_PATH_DEFAULT)
    assert main_path_words(path) <= limit, (
        f"{path.name}: {main_path_words(path)} words on the main path, over {limit}"
    )


#: Why a cell's output may go uncompared (CONTRIBUTING.md, "Comparing outputs").
IGNORE_REASONS = ("timing", "hardware", "address", "varies in words", "chaotic")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_uncompared_output_says_why(path):
    """A cell is left out of nbval's comparison only for a stated reason; numbers
    that depend on float rounding are compared within a tolerance instead."""
    unexplained = []
    for index, cell in enumerate(read_notebook(path).cells):
        reason = cell.metadata.get("nbval_ignore_reason", "")
        ignored = "nbval-ignore-output" in tags(cell)
        if ignored != bool(reason) or (reason and not reason.startswith(IGNORE_REASONS)):
            unexplained.append(f"cell {index}: {reason or 'no reason'}")
        if "nbval-tolerance" in tags(cell) and not cell.metadata.get("tolerance"):
            unexplained.append(f"cell {index}: nbval-tolerance without a tolerance")
    assert not unexplained, f"{path.name}: " + "; ".join(unexplained)


def long_cells(path: Path) -> list[str]:
    problems = []
    for cell in read_notebook(path).cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        lines = cell.source.splitlines()
        if (path.name, lines[0]) in LONG_CELL_EXEMPTIONS:
            continue
        if len(lines) > MAX_CELL_LINES:
            problems.append(f"{len(lines)} lines: {lines[0]!r}")
        problems += [
            f"{len(line)} columns: {line!r}" for line in lines if len(line) > MAX_CELL_COLUMNS
        ]
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_code_cells_are_short_and_narrow(path):
    """At most 15 lines and 79 columns: the book shows about 80 columns before a
    code block scrolls sideways, and a short cell is one idea."""
    problems = long_cells(path)
    assert not problems, (
        f"{path.name}: code cells over {MAX_CELL_LINES} lines or {MAX_CELL_COLUMNS} "
        "columns:\n" + "\n".join(problems)
    )


def test_cell_exemptions_name_existing_cells():
    for (name, first_line), reason in LONG_CELL_EXEMPTIONS.items():
        assert reason.strip(), f"exemption of {name} without a reason"
        cells = read_notebook(ROOT / "notebooks" / name).cells
        assert any(c.source.splitlines()[:1] == [first_line] for c in cells), (
            f"stale exemption: {name} has no cell starting {first_line!r}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_notebook_looks_up_globals(path):
    """A check that needs an exercise's solution is tagged ``solution-check`` (the
    student edition drops it) instead of testing ``globals()`` for a name."""
    for cell in read_notebook(path).cells:
        if cell.cell_type == "code":
            assert not re.search(r"\b(globals|locals)\(\)", cell.source), (
                f"{path.name}: a cell uses globals()/locals(): {cell.source[:120]!r}"
            )


def colab_url(page: str) -> str:
    return f"https://colab.research.google.com/github/{OWNER_REPO}/blob/{BRANCH}/{page}.ipynb"


@pytest.mark.parametrize("name", ["README.md", "book/intro.md"])
def test_every_chapter_has_a_colab_link(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    missing = [page for page in CHAPTERS if colab_url(page) not in text]
    assert not missing, f"{name} has no Colab link for {missing}"


def glossary_terms() -> set[str]:
    """The terms of ``book/glossary.md``'s ``{glossary}`` directive, lowercased
    (Sphinx matches terms without regard to case)."""
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    block = re.search(r"^(```+)\{glossary\}[^\n]*\n(.*?)^\1\s*$", text, re.M | re.S)
    assert block, "book/glossary.md has no ```{glossary} directive"
    return {
        line.strip().lower()
        for line in block[2].splitlines()
        if line.strip() and not line[0].isspace() and not line.startswith(":")
    }


#: Terms the chapters rely on.
REQUIRED_TERMS = (
    "logit", "epoch", "batch", "tensor", "dtype", "loss", "gradient", "learning rate",
    "optimizer", "parameter", "ReLU", "softmax", "cross-entropy", "dropout",
    "overfitting", "validation set", "test set", "normalisation", "augmentation",
    "state_dict", "checkpoint", "leaf tensor", "autograd", "device", "pinned memory",
    "PIL", "one-cycle schedule", "weight decay", "regularisation", "DataLoader",
    "transform", "throughput",
)  # fmt: skip
TERM_ROLE = re.compile(r"\{term\}`(?P<text>[^`<]*?)(?:\s*<(?P<target>[^`>]+)>)?`")


def book_texts() -> dict[str, str]:
    """The Markdown of every page and notebook of the book, by file name."""
    texts = {
        path.name: "\n".join(c.source for c in read_notebook(path).cells) for path in NOTEBOOKS
    }
    for path in sorted((ROOT / "book").glob("*.md")):
        texts[f"book/{path.name}"] = path.read_text(encoding="utf-8")
    return texts


def test_every_term_used_is_in_the_glossary():
    terms = glossary_terms()
    missing = sorted(term for term in REQUIRED_TERMS if term.lower() not in terms)
    assert not missing, f"book/glossary.md lacks {missing}"
    unknown = sorted(
        f"{name}: {match['target'] or match['text']}"
        for name, text in book_texts().items()
        for match in TERM_ROLE.finditer(text)
        if (match["target"] or match["text"]).strip().lower() not in terms
    )
    assert not unknown, "{term} roles without a glossary entry:\n" + "\n".join(unknown)


def test_glossary_entries_link_to_a_chapter():
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    block = text.split("{glossary}", 1)[1].rsplit("```", 1)[0]
    entries = [entry.strip() for entry in re.split(r"\n\s*\n(?=\S)", block)]
    unlinked = [
        entry.splitlines()[0]
        for entry in entries
        if entry
        and not entry.startswith(":")
        and "../notebooks/" not in entry
        and "(draw.md)" not in entry
    ]
    assert not unlinked, f"glossary entries without a link to a chapter: {unlinked}"


def stored_output_text(path: Path) -> str:
    """Everything the notebook's stored outputs show as text."""
    texts = []
    for cell in read_notebook(path).cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.mark.parametrize("name", ["README.md", "book/intro.md"])
def test_headline_figures_are_the_books_own(name):
    """A precise percentage on the front pages ("98.83% test accuracy") is one that a
    chapter's stored outputs show."""
    outputs = "\n".join(stored_output_text(path) for path in NOTEBOOKS)
    text = (ROOT / name).read_text(encoding="utf-8")
    figures = re.findall(r"\b\d{2}\.\d{2}%", text)  # measured, not targets (98.5%)
    unseen = [figure for figure in figures if figure not in outputs]
    assert not unseen, f"{name} quotes {unseen}, which no chapter's outputs show"


def test_every_reference_is_cited():
    """Each paper on the references page is cited ("LeCun et al.", "Glorot and
    Bengio") by a chapter or another page."""
    text = (ROOT / "book" / "references.md").read_text(encoding="utf-8")
    surnames = re.findall(
        r"^\(ref-([a-z]+)\d{4}\)=\n\*\*[^*]+\*\* *(?:[A-Z]\.[ -]?)+ *([A-Z][\w'-]+)", text, re.M
    )
    assert len(surnames) == text.count("(ref-"), "an entry is not in the format"
    others = "\n".join(t for name, t in book_texts().items() if name != "book/references.md")
    uncited = [
        surname
        for _, surname in surnames
        if not re.search(rf"\b{surname}\s+(et\s+al\b|and\s)", others)
    ]
    assert not uncited, f"references no page cites: {uncited}"


#: A notebook's name in a link or a path: ``03_training.ipynb``, ``notebooks/03_training``.
NOTEBOOK_NAME = re.compile(r"\b(\d\d_[a-z][a-z0-9_]*)(?:\.ipynb\b|(?=[#)\s`'\"]))")
#: A link whose text names a chapter number: ``[chapter 4](04_faster.ipynb#...)``.
CHAPTER_LINK = re.compile(
    r"\[[^\]]*?\b[Cc]hapters? (?P<number>\d+)[^\]]*\]\((?:\.\./notebooks/)?"
    r"(?P<file>\d\d)_[a-z0-9_]+\.ipynb"
)


def project_texts() -> dict[str, str]:
    """Every source a reader or a maintainer reads, by path."""
    texts = {name: text for name, text in book_texts().items()}
    for pattern in (
        "*.md",
        "_toc.yml",
        "mnist_helpers/*.py",
        "scripts/*.py",
        "tests/*.py",
        "benchmarks/*.py",
    ):
        for path in sorted(ROOT.glob(pattern)):
            texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return texts


def test_no_stale_notebook_names():
    """After the chapters were renumbered, every notebook name anywhere is a chapter
    that exists."""
    existing = {path.stem for path in NOTEBOOKS}
    stale = sorted(
        {
            f"{name}: {match[1]}"
            for name, text in project_texts().items()
            for match in NOTEBOOK_NAME.finditer(text)
            if match[1] not in existing
        }
    )
    assert not stale, "names of notebooks that do not exist:\n" + "\n".join(stale)


def test_chapter_links_name_the_chapter_they_point_to():
    """``[chapter 4](04_faster.ipynb)``: the number in the text is the file's."""
    wrong = sorted(
        f"{name}: {match[0]}"
        for name, text in book_texts().items()
        for match in CHAPTER_LINK.finditer(text)
        if int(match["number"]) != int(match["file"])
    )
    assert not wrong, "links whose chapter number is not the file's:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_title_carries_the_chapter_number(path):
    first = read_notebook(path).cells[0]
    title = re.match(r"# +(\d+)\. ", first.source)
    assert first.cell_type == "markdown" and title, f"{path.name}: no '# N. Title' first"
    assert int(title[1]) == int(path.name[:2]), f"{path.name} is titled {first.source[:40]!r}"


def test_helpers_page_documents_every_public_name(built_book):
    ids = {tag.get("id") for tag in soup(page_html(built_book, "book/helpers")).find_all(id=True)}
    missing = [name for name in mnist_helpers.__all__ if f"mnist_helpers.{name}" not in ids]
    assert not missing, f"book/helpers.md does not document {missing}"


# --- the built site --------------------------------------------------------------


def test_book_builds_without_a_warning(built_book):
    print(f"book built in {built_book.seconds:.1f} s")
    warnings = [
        line for line in built_book.log.splitlines() if "WARNING" in line or "ERROR" in line
    ]
    assert built_book.returncode == 0 and not warnings, (
        "\n".join(warnings) or built_book.log[-3000:]
    )


@pytest.mark.parametrize("page", CHAPTERS)
def test_hidden_cells_stay_hidden(built_book, page):
    text = soup(page_html(built_book, page)).get_text()
    assert "find_spec" not in text, "the bootstrap cell shows: tag it remove-cell"
    assert "assert " not in text, "an assertion cell shows: tag it remove-cell"


@pytest.mark.parametrize("page", CHAPTERS)
def test_launch_buttons_open_this_notebook_in_this_repository(built_book, page):
    links = {a["href"] for a in soup(page_html(built_book, page)).find_all("a", href=True)}
    notebook = f"{page}.ipynb"
    assert (ROOT / notebook).is_file()
    colab = f"https://colab.research.google.com/github/{OWNER_REPO}/blob/{BRANCH}/{notebook}"
    binder = f"https://mybinder.org/v2/gh/{OWNER_REPO}/{BRANCH}?urlpath=lab/tree/{notebook}"
    assert colab in links, f"no Colab button to {colab}"
    assert binder in links, f"no Binder button to {binder}"
    assert REPO_URL in links, "no repository button"
    others = [link for link in links if "colab.research" in link or "mybinder" in link]
    assert sorted(others) == sorted([colab, binder]), others


@pytest.mark.parametrize("page", CHAPTERS)
def test_exercises_render_with_collapsed_solutions(built_book, page):
    html = soup(page_html(built_book, page))
    labels = re.findall(
        r":label: *(\S+)",
        "\n".join(
            cell.source
            for cell in read_notebook(ROOT / f"{page}.ipynb").cells
            if "{exercise}" in cell.source
        ),
    )
    for label in labels:
        exercise = html.find(id=label)
        assert exercise is not None and "exercise" in exercise["class"], f"exercise {label} missing"
    solutions = html.select("div.solution")
    assert len(solutions) == len(labels)
    for solution in solutions:
        assert "dropdown" in solution["class"], "solutions must be collapsed"
    tagged = html.select("div.tag_solution")
    assert all(cell.find_parent("div", class_="solution") for cell in tagged)
    assert "{solution" not in html.get_text() and "{exercise}" not in html.get_text()


def local_target(page: Path, url: str, html_root: Path) -> tuple[Path, str] | None:
    """The file and fragment a local ``href``/``src`` points at; None for other URLs."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("data:", "mailto:", "javascript:")):
        return None
    path = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if path.is_dir():
        path = path / "index.html"
    return path, parts.fragment


def test_no_broken_local_links_or_images_and_nothing_from_the_network(built_book):
    """Every local href/src of every page names a file that exists (and an id that
    exists, for links into a page), and no page loads anything from the network."""
    html_root = built_book.html.resolve()
    pages = [
        page
        for page in sorted(html_root.rglob("*.html"))
        if page.relative_to(html_root).parts[0] not in ("_static", "_sources")  # theme templates
    ]
    ids = {}
    problems = []
    for page in pages:
        document = soup(page)
        ids[page] = {tag["id"] for tag in document.find_all(id=True)}
    for page in pages:
        document = soup(page)
        name = page.relative_to(html_root)
        for tag in document.find_all(["a", "img", "link", "script", "source", "iframe"]):
            for attribute in ("href", "src"):
                url = tag.get(attribute)
                if not url:
                    continue
                remote = urlsplit(url).scheme in ("http", "https") or url.startswith("//")
                if remote and tag.name != "a":
                    problems.append(
                        f"{name}: <{tag.name} {attribute}={url}> loads from the network"
                    )
                target = local_target(page, url, html_root)
                if target is None:
                    continue
                path, fragment = target
                if not path.is_file():
                    problems.append(f"{name}: {url} -> missing file")
                elif (
                    fragment
                    and path.suffix == ".html"
                    and path in ids
                    and fragment not in ids[path]
                ):
                    problems.append(f"{name}: {url} -> no id {fragment!r}")
    assert not problems, "\n".join(problems)


def test_local_mathjax_on_pages_with_math(built_book):
    for page in PAGES:
        document = soup(page_html(built_book, page))
        if document.select(".math"):
            scripts = [script.get("src", "") for script in document.find_all("script")]
            assert any("_static/mathjax/tex-mml-chtml.js" in src for src in scripts), page


#: Words of a hidden check that compares timings: the speed of a reader's machine
#: varies with what else runs on it, so timings are printed, never asserted.
TIMING_WORDS = re.compile(r"seconds|perf_counter|time\.|\b\w*_rate\b|per_second|elapsed")


def timing_asserts(source: str) -> list[str]:
    """The ``assert`` lines of a cell that mention a timing."""
    return [
        line.strip()
        for line in source.splitlines()
        if line.strip().startswith("assert") and TIMING_WORDS.search(line)
    ]


def test_timing_asserts_are_recognised():
    assert timing_asserts("assert speed_seconds < 20") == ["assert speed_seconds < 20"]
    assert timing_asserts("assert _rate < 0.8 * ceiling")
    assert not timing_asserts("assert speed_acc >= 0.985, speed_acc")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_hidden_check_asserts_a_timing(path):
    found = [
        line
        for cell in read_notebook(path).cells
        if cell.cell_type == "code" and "remove-cell" in cell.metadata.get("tags", [])
        for line in timing_asserts(cell.source)
    ]
    assert not found, f"{path.name}: hidden checks that assert timings: {found}"
