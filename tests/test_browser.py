"""Every page of the built book, opened in headless Chromium.

Each page must show its title, its figures (every image loaded), its math rendered
by the local MathJax (no raw TeX left), its solutions collapsed, and load nothing
that is missing; and no code block or output may scroll sideways at the theme's
default width (a 1280-pixel window). A screenshot of each page goes to
``_build/screenshots/``. The site is the ``built_book`` of conftest.py.

Needs ``chromium`` and ``chromedriver`` (Debian: ``apt-get install chromium
chromium-driver``). Without them the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"
def toc_pages(entries=None) -> list[str]:
    """Every page of ``_toc.yml`` in reading order, the root first."""
    if entries is None:
        toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
        return [toc["root"], *toc_pages(toc.get("parts", [])), *toc_pages(toc.get("chapters", []))]
    pages = []
    for entry in entries:
        if "file" in entry:
            pages.append(entry["file"])
        for key in ("chapters", "sections"):
            pages += toc_pages(entry.get(key, []))
    return pages


PAGES = toc_pages()
CHAPTERS = [page for page in PAGES if page.startswith("notebooks/")]


def source_of(page: str) -> Path:
    """The source file of a ``_toc.yml`` entry (``book/intro`` -> ``book/intro.md``)."""
    for suffix in (".md", ".ipynb"):
        if (path := ROOT / f"{page}{suffix}").is_file():
            return path
    raise FileNotFoundError(f"_toc.yml lists {page}, but neither {page}.md nor .ipynb exists")


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


#: Console errors of the book's theme and extensions that do not affect the page:
#: sphinx-thebe declares its settings twice (Thebe is not used), and the theme
#: reports an unset light/dark preference on a fresh profile.
HARMLESS_CONSOLE_ERRORS = [
    re.compile(r"Identifier 'THEBE_JS_URL' has already been declared"),
    re.compile(r"Got invalid theme mode"),
]

#: Wait for the page and, when it loads MathJax, for MathJax to finish typesetting
#: and its fonts to load.
WAIT_FOR_PAGE = """
const done = arguments[arguments.length - 1];
const ready = () => {
    if (document.readyState !== "complete") return setTimeout(ready, 50);
    if (!document.querySelector("script[src*='mathjax']")) return done("no math");
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        return MathJax.startup.promise.then(
            () => document.fonts.ready.then(() => done("typeset")),  // its fonts loaded too
            (e) => done("error " + e),
        );
    }
    setTimeout(ready, 50);
};
ready();
"""


def expected_title(page: str) -> str:
    """The first heading of the page's source, as text."""
    path = source_of(page)
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in read_notebook(path).cells if c.cell_type == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    heading = re.search(r"^# +(.+)$", text, re.M)[1]
    return re.sub(r"[`*]", "", heading).strip()


def unnumbered(title: str) -> str:
    """``title`` without a leading chapter number ("7. Autograd" -> "Autograd")."""
    return re.sub(r"^\d+(\.\d+)*\.? +", "", title)


def visible_images(page: str) -> int:
    """How many image outputs a chapter shows (cells removed from the book excluded)."""
    if page not in CHAPTERS:
        return 0
    count = 0
    for cell in read_notebook(source_of(page)).cells:
        if {"remove-cell", "remove-output"} & set(tags(cell)):
            continue
        for output in cell.get("outputs", []):
            count += any(mime.startswith("image/") for mime in output.get("data", {}))
    return count


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(driver, site, page):
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get((site / f"{page}.html").as_uri())
    state = driver.execute_async_script(WAIT_FOR_PAGE)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{page.replace('/', '_')}.png"))

    # The title: in the tab and as the visible heading.
    title = expected_title(page)
    heading = driver.execute_script(
        "const h = document.querySelector('article h1');"
        "return h && h.offsetHeight > 0 ? h.innerText.replace(/#$/, '').trim() : null;"
    )
    assert heading is not None, "the page shows no title"
    assert unnumbered(heading) == unnumbered(title), f"the page shows {heading!r}, not {title!r}"
    assert unnumbered(driver.title).startswith(unnumbered(heading)), driver.title

    # The figures: every image loaded, and at least those the notebook shows.
    images = driver.execute_script(
        "return Array.from(document.images, i => [i.src, i.complete && i.naturalWidth > 0]);"
    )
    broken = [src for src, ok in images if not ok]
    assert not broken, f"images that did not load: {broken}"
    assert len(images) >= visible_images(page), "figures of the notebook are missing"

    # The math: typeset by the local MathJax, no raw TeX left, no TeX errors.
    math = driver.execute_script(
        "return [document.querySelectorAll('.math').length,"
        " document.querySelectorAll('mjx-container').length,"
        " document.querySelectorAll('mjx-merror').length,"
        " document.querySelector('article').innerText];"
    )
    count, typeset, errors, text = math
    if count:
        assert state == "typeset", f"MathJax did not run: {state}"
        assert typeset >= count, f"{count} formulas, {typeset} typeset"
        assert errors == 0, "MathJax shows TeX errors"
    raw = re.findall(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\(?:frac|mathrm|sum|begin)\b", text)
    assert not raw, f"raw TeX on the page: {raw[:5]}"

    # Solutions are collapsed until clicked.
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.solution section'),"
        " s => s.offsetHeight > 0).filter(Boolean).length;"
    )
    assert shown == 0, f"{shown} solutions are open"

    # Nothing failed to load, no script failed.
    problems = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
        and not any(p.search(entry["message"]) for p in HARMLESS_CONSOLE_ERRORS)
    ]
    assert not problems, "\n".join(problems)


#: Every code block and every cell output that scrolls sideways: its width, the
#: width it is shown in, and its first line.
SIDEWAYS = """
const selectors = ["div.highlight pre", ".output pre", ".cell_output"];
const found = [];
for (const element of document.querySelectorAll(selectors.join(","))) {
    // Not laid out at all (display: none): nothing to measure. Folded solutions and
    // folded figure code are laid out, and scroll once the reader unfolds them.
    if (element.offsetParent === null) continue;
    if (element.scrollWidth > element.clientWidth + 1) {
        const line = element.textContent.split("\\n").find(l => l.trim()) || "";
        found.push([element.scrollWidth, element.clientWidth, line.slice(0, 100)]);
    }
}
return found;
"""


@pytest.mark.parametrize("page", PAGES)
def test_nothing_scrolls_sideways(driver, site, page):
    """At the default width no code cell and no output needs a horizontal scroll bar:
    code cells stay within 79 columns, and printed output within the same width."""
    driver.get((site / f"{page}.html").as_uri())
    driver.execute_async_script(WAIT_FOR_PAGE)
    width = driver.execute_script("return window.innerWidth;")
    assert width >= 1200, f"the window is {width} px wide, not the theme's default"
    wide = driver.execute_script(SIDEWAYS)
    assert not wide, f"{page}: blocks that scroll sideways at {width} px:\n" + "\n".join(
        f"  {scroll} px in {client} px: {line!r}" for scroll, client, line in wide
    )
