"""The page "Draw a digit" (book/draw.md) in headless Chromium, opened from the
built book as a file (no server).

The mouse draws a 1 and a 7 and the page must read them; the page's JavaScript
preparation and forward pass must agree with Python's (``prepare_digit`` and
PyTorch with the same exported weights) on 1,000 MNIST test images; the notebook
widget (``DigitCanvas``), whose module is the same ``draw.js``, must send a drawing
to the kernel and show the answer that comes back; and the exported weights must be
compact and lose almost no accuracy. Skipped like
``test_browser.py`` when Chromium or chromedriver is missing.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_helpers import MLP, normalize
from mnist_helpers.canvas import DigitCanvas
from mnist_helpers.digits import prepare_digit

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_JS = ROOT / "book" / "_static" / "draw" / "weights.js"
COUNT = 1000  # MNIST test images classified in the browser

_spec = importlib.util.spec_from_file_location(
    "export_weights", ROOT / "scripts" / "export_weights.py"
)
export_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_weights)

#: Strokes on the 280x280 canvas, as lists of (x, y) points.
ONE = [[(145, 35), (142, 140), (138, 245)]]
SEVEN = [[(70, 50), (140, 48), (215, 50), (180, 120), (150, 180), (125, 245)]]


@pytest.fixture(scope="module")
def exported_model():
    """PyTorch's MLP with the page's (dequantised) weights, and the file's data."""
    layers, data = export_weights.read_weights(WEIGHTS_JS)
    return export_weights.load_into(MLP(), layers), data


@pytest.fixture(scope="module")
def page(driver, site):
    driver.get((site / "book" / "draw.html").as_uri())
    ready = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const wait = () => window.drawDigit ? done(true) : setTimeout(wait, 50);"
        "wait();"
    )
    assert ready
    return driver


def draw(browser, strokes) -> None:
    """Draw ``strokes`` with the mouse, point to point in small steps."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = browser.find_element(By.CSS_SELECTOR, ".draw-canvas")
    width = canvas.size["width"]
    for stroke in strokes:
        actions = ActionChains(browser, duration=10)
        x, y = stroke[0]
        # Offsets are from the element's centre; the canvas shows 280 px at 280 px.
        actions.move_to_element_with_offset(canvas, x - width // 2, y - width // 2)
        actions.click_and_hold()
        for next_x, next_y in stroke[1:]:
            for _ in range(5):
                step_x, step_y = round((next_x - x) / 5), round((next_y - y) / 5)
                actions.move_by_offset(step_x, step_y)
                x, y = x + step_x, y + step_y
        actions.release().perform()


def shown(browser) -> tuple[str, str]:
    """The digit the page shows ("" for none) and its answer text."""
    return tuple(
        browser.execute_script(
            "const answer = document.querySelector('.draw-answer');"
            "return [answer.dataset.digit, answer.textContent];"
        )
    )


def click(browser, name: str) -> None:
    browser.execute_script(f"document.querySelector('.draw-{name}').click();")


@pytest.mark.parametrize("digit, strokes", [(1, ONE), (7, SEVEN)], ids=["one", "seven"])
def test_drawing_with_the_mouse_shows_the_digit(page, digit, strokes):
    click(page, "clear")
    assert shown(page) == ("", "Draw a digit in the box.")
    draw(page, strokes)
    shown_digit, text = shown(page)
    assert shown_digit == str(digit), text
    assert text.startswith(f"The network reads {digit}, probability")
    click(page, "predict")  # the button gives the same answer
    assert shown(page)[0] == str(digit)
    lit = page.execute_script(
        "const c = document.querySelector('.draw-preview');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let lit = 0; for (let i = 0; i < d.length; i += 4) lit += d[i] > 128;"
        "return lit / (d.length / 4);"
    )
    assert 0.02 < lit < 0.5, "the preview shows the prepared digit"
    heights = page.execute_script(
        "return Array.from(document.querySelectorAll('.draw-bar-fill'),"
        " f => parseFloat(f.style.height));"
    )
    assert len(heights) == 10 and max(heights) == heights[digit]


def test_predict_on_an_empty_canvas_asks_for_a_digit(page):
    click(page, "clear")
    click(page, "predict")
    assert shown(page) == ("", "Draw a digit in the box.")


#: The widget's module, imported as anywidget imports it, rendered with a stand-in
#: for anywidget's model (get, set, on, off, save_changes) that records what is sent.
RENDER_WIDGET = """
const done = arguments[arguments.length - 1];
import("data:text/javascript;base64," + arguments[0]).then((module) => {
  const state = { request: 0, unsure: 0.9, answered: 0 }, handlers = {};
  const model = {
    get: (key) => state[key], set: (key, value) => { state[key] = value; },
    on: (event, handler) => { handlers[event] = handler; }, off: () => {},
    save_changes: () => { window.widgetSent = { ...state }; },
  };
  window.widget = { state, handlers };
  const el = document.createElement("div");
  el.id = "widget";
  document.body.appendChild(el);
  module.default.render({ model, el });
  done(el.querySelector(".draw-answer").textContent);
}).catch((error) => done(String(error)));
"""


def test_the_notebook_widget_is_the_same_canvas(page, exported_model):
    """DigitCanvas's module (draw.js and an export) in the browser: a 7 drawn on its
    canvas goes to the kernel as a PNG, and the kernel's answer is shown."""
    model, _ = exported_model
    esm = base64.b64encode(DigitCanvas._esm.encode()).decode("ascii")
    assert page.execute_async_script(RENDER_WIDGET, esm) == "Draw a digit in the box."
    points = ", ".join(f"[{x}, {y}]" for x, y in SEVEN[0])
    answer = page.execute_script(
        "const root = document.getElementById('widget');"
        "const context = root.querySelector('.draw-canvas').getContext('2d');"
        f"const points = [{points}];"
        "context.beginPath(); context.moveTo(...points[0]);"
        "points.slice(1).forEach((p) => context.lineTo(...p)); context.stroke();"
        "root.querySelector('.draw-predict').click();"
        "return root.querySelector('.draw-answer').textContent;"
    )
    assert answer == "Asking the network..."
    sent = page.execute_script("return window.widgetSent;")
    assert sent["request"] == 1 and sent["drawing"].startswith("data:image/png;base64,")
    canvas = DigitCanvas(model)  # the kernel's side
    canvas.drawing = sent["drawing"]
    canvas.request += 1
    assert canvas.digit == 7 and canvas.error == ""
    shown_text = page.execute_script(
        "Object.assign(window.widget.state, arguments[0]);"
        "window.widget.handlers['change:answered']();"
        "return document.querySelector('#widget .draw-answer').textContent;",
        {
            "digit": canvas.digit,
            "probabilities": canvas.probabilities,
            "prepared": canvas.prepared,
            "error": canvas.error,
            "answered": canvas.answered,
        },
    )
    assert shown_text.startswith("The network reads 7, probability")


def test_the_page_states_the_accuracy_of_its_weights(page, exported_model):
    _, data = exported_model
    text = page.execute_script("return document.querySelector('.draw-accuracy').textContent;")
    assert text == f"{100 * data['accuracy']:.1f}%"


def test_javascript_agrees_with_pytorch_on_1000_test_images(page, real_test, exported_model):
    """Measured: the same digit on all 1,000, probabilities within 1e-6."""
    model, _ = exported_model
    images, labels = real_test[0][:COUNT].numpy(), real_test[1][:COUNT].numpy()
    result = page.execute_script(
        "return drawDigit.classifyImages(arguments[0], arguments[1]);",
        base64.b64encode(images.tobytes()).decode("ascii"),
        COUNT,
    )
    js_digits = np.array(result["digits"])
    js_probabilities = np.array(result["probabilities"]).reshape(COUNT, 10)
    X = torch.cat([prepare_digit(image) for image in images])
    with torch.no_grad():
        probabilities = torch.softmax(model(X), dim=1).numpy()
    difference = np.abs(js_probabilities - probabilities).max()
    print(
        f"agreement {np.mean(js_digits == probabilities.argmax(1)):.1%}, "
        f"largest probability difference {difference:.2e}"
    )
    assert (js_digits == probabilities.argmax(1)).all()
    assert difference < 1e-4
    assert (js_digits == labels).mean() >= 0.98


def test_exported_weights_are_compact_and_lose_little_accuracy(real_test, exported_model):
    """8-bit weights with a scale per row: under 1 MB as base64 in JavaScript, and
    the accuracy on the 10,000 test images within 0.2 points of the float model."""
    model, data = exported_model
    images, labels = real_test
    with torch.no_grad():
        accuracy = (model(normalize(images)).argmax(dim=1) == labels).float().mean().item()
    assert accuracy == pytest.approx(data["accuracy"], abs=1e-4)
    assert data["float_accuracy"] - accuracy < 0.002
    assert accuracy > 0.985
    assert WEIGHTS_JS.stat().st_size < 1_000_000


def test_quantization_round_trip():
    """Each row is stored as integers -127..127 times a scale: dequantising is off by
    at most half a step."""
    weight = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    q, scales = export_weights.quantize(weight)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.abs(q * scales[:, None] - weight).max() <= scales.max() / 2 + 1e-7


def test_the_page_carries_the_model_chapter_4_stored():
    """The weights on the page are those of the model whose test accuracy chapter 4's
    stored run reports (re-export with ``scripts/export_weights.py`` after a refresh)."""
    import json
    import re

    chapter = json.loads((ROOT / "notebooks" / "04_faster.ipynb").read_text())
    stored = [
        float(found) / 100
        for cell in chapter["cells"] if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
        for found in re.findall(r"test accuracy (\d+\.\d+)%", "".join(output.get("text", "")))
    ]
    _, data = export_weights.read_weights(WEIGHTS_JS)
    assert stored, "chapter 4 stores no test accuracy"
    assert data["float_accuracy"] == pytest.approx(stored[-1], abs=5e-5), (data, stored)
