// The drawing canvas of the book, in one file for both of its homes:
//
// - the page "Draw a digit" (book/draw.md) loads it with a <script> tag after
//   weights.js, and runs the network here, in the browser, with no server;
// - the notebook widget mnist_helpers.canvas.DigitCanvas (chapter 10) loads it as
//   its module (anywidget) and sends each drawing to the model in the kernel.
//
// prepare() makes a drawing look like an MNIST digit, exactly as
// mnist_helpers.prepare_digit does in Python (chapter 10); forward() is the
// network of chapter 2 (784-512-512-10, ReLU) with the weights exported by
// scripts/export_weights.py into weights.js. The file ships with the helpers as
// package data (mnist_helpers/static/draw/).
const drawDigit = (function () {
  "use strict";

  const MEAN = 0.1307, STD = 0.3081;
  const INK_THRESHOLD = 0.1, MIN_CONTRAST = 0.05;
  const DIGIT_SIZE = 20, FIELD_SIZE = 28, CENTRE = 14.0;

  class BlankImageError extends Error {}

  // --- the preparation (mnist_helpers/digits.py, step by step) ------------

  // gray and alpha: Float64Arrays of 0..1 values, alpha null when opaque.
  function composite(gray, alpha) {
    if (alpha === null) return gray;
    let min = 1, max = 0, ink = 0, total = 0;
    for (let i = 0; i < alpha.length; i++) {
      min = Math.min(min, alpha[i]);
      max = Math.max(max, alpha[i]);
      ink += gray[i] * alpha[i];
      total += alpha[i];
    }
    if (min === 1) return gray;
    if (max === 0) throw new BlankImageError("Nothing is drawn yet.");
    const background = ink / total < 0.5 ? 1 : 0;
    return gray.map((g, i) => g * alpha[i] + background * (1 - alpha[i]));
  }

  function median(values) {
    const sorted = Float64Array.from(values).sort();
    const middle = sorted.length >> 1;
    return sorted.length % 2 ? sorted[middle]
      : (sorted[middle - 1] + sorted[middle]) / 2;
  }

  function removeBackground(gray, width, height) {
    const border = [];
    for (let x = 0; x < width; x++) border.push(gray[x]);
    for (let x = 0; x < width; x++) border.push(gray[(height - 1) * width + x]);
    for (let y = 0; y < height; y++) border.push(gray[y * width]);
    for (let y = 0; y < height; y++) border.push(gray[y * width + width - 1]);
    let background = median(border);
    let values = gray;
    if (background > 0.5) {
      values = gray.map((g) => 1 - g);
      background = 1 - background;
    }
    let max = -Infinity;
    for (const v of values) max = Math.max(max, v);
    const contrast = max - background;
    if (contrast < MIN_CONTRAST) throw new BlankImageError("Nothing is drawn yet.");
    return values.map((v) => Math.min(Math.max((v - background) / contrast, 0), 1));
  }

  function crop(ink, width, height) {
    let top = height, bottom = -1, left = width, right = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (ink[y * width + x] >= INK_THRESHOLD) {
          top = Math.min(top, y); bottom = Math.max(bottom, y);
          left = Math.min(left, x); right = Math.max(right, x);
        }
      }
    }
    const w = right - left + 1, h = bottom - top + 1;
    const out = new Float64Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out[y * w + x] = ink[(y + top) * width + x + left];
    }
    return { data: out, width: w, height: h };
  }

  // How much of each old pixel each new pixel covers (area averaging).
  function areaWeights(size, newSize) {
    const weights = [];
    for (let i = 0; i < newSize; i++) {
      const start = (i * size) / newSize, end = ((i + 1) * size) / newSize;
      const row = new Float64Array(size);
      for (let j = 0; j < size; j++) {
        row[j] = Math.max(Math.min(end, j + 1) - Math.max(start, j), 0) / (size / newSize);
      }
      weights.push(row);
    }
    return weights;
  }

  function scale(digit) {
    const { data, width, height } = digit;
    const factor = DIGIT_SIZE / Math.max(height, width);
    const newHeight = Math.max(1, Math.min(DIGIT_SIZE, Math.floor(height * factor + 0.5)));
    const newWidth = Math.max(1, Math.min(DIGIT_SIZE, Math.floor(width * factor + 0.5)));
    const rowWeights = areaWeights(height, newHeight);
    const colWeights = areaWeights(width, newWidth);
    const rows = new Float64Array(newHeight * width);  // rows resampled first
    for (let i = 0; i < newHeight; i++) {
      for (let x = 0; x < width; x++) {
        let sum = 0;
        for (let y = 0; y < height; y++) sum += rowWeights[i][y] * data[y * width + x];
        rows[i * width + x] = sum;
      }
    }
    const out = new Float64Array(newHeight * newWidth);
    for (let i = 0; i < newHeight; i++) {
      for (let j = 0; j < newWidth; j++) {
        let sum = 0;
        for (let x = 0; x < width; x++) sum += colWeights[j][x] * rows[i * width + x];
        out[i * newWidth + j] = Math.min(Math.max(sum, 0), 1);
      }
    }
    return { data: out, width: newWidth, height: newHeight };
  }

  function centre(digit) {
    const { data, width, height } = digit;
    let mass = 0, row = 0, col = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        mass += data[y * width + x];
        row += y * data[y * width + x];
        col += x * data[y * width + x];
      }
    }
    const clamp = (v, size) => Math.min(Math.max(v, 0), FIELD_SIZE - size);
    const top = clamp(Math.floor(CENTRE - row / mass + 0.5), height);
    const left = clamp(Math.floor(CENTRE - col / mass + 0.5), width);
    const field = new Float64Array(FIELD_SIZE * FIELD_SIZE);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        field[(y + top) * FIELD_SIZE + x + left] = data[y * width + x];
      }
    }
    return field;
  }

  // RGBA bytes (a canvas's ImageData) to gray and alpha, as in Python.
  function grayAlpha(rgba) {
    const n = rgba.length / 4, gray = new Float64Array(n), alpha = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const [r, g, b] = [rgba[4 * i] / 255, rgba[4 * i + 1] / 255, rgba[4 * i + 2] / 255];
      gray[i] = r * 0.299 + g * 0.587 + b * 0.114;
      alpha[i] = rgba[4 * i + 3] / 255;
    }
    return { gray, alpha };
  }

  // The network's input (784 normalised values) and the 0..1 image it shows.
  function prepare(gray, alpha, width, height) {
    const ink = removeBackground(composite(gray, alpha), width, height);
    const field = centre(scale(crop(ink, width, height)));
    return { image: field, input: field.map((v) => (v - MEAN) / STD) };
  }

  // --- the network --------------------------------------------------------

  function decode(base64, Type) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return new Type(bytes.buffer);
  }

  // The weights of weights.js, decoded once, when first needed (the notebook
  // widget has none: its network runs in the kernel).
  let layers = null;
  function network() {
    layers = layers || window.MNIST_MLP.layers.map((layer) => {
      const q = decode(layer.weights, Int8Array);
      const scales = decode(layer.scales, Float32Array);
      const weight = new Float32Array(q.length);
      for (let i = 0; i < q.length; i++) {
        weight[i] = q[i] * scales[Math.floor(i / layer.inputs)];
      }
      return { weight, bias: decode(layer.bias, Float32Array), inputs: layer.inputs,
               outputs: layer.outputs };
    });
    return layers;
  }

  function forward(input) {
    let x = input;
    const layers = network();
    layers.forEach((layer, index) => {
      const out = new Float64Array(layer.outputs);
      for (let o = 0; o < layer.outputs; o++) {
        let sum = layer.bias[o];
        const offset = o * layer.inputs;
        for (let i = 0; i < layer.inputs; i++) sum += layer.weight[offset + i] * x[i];
        out[o] = index < layers.length - 1 ? Math.max(sum, 0) : sum;  // ReLU
      }
      x = out;
    });
    const top = Math.max(...x), exps = x.map((v) => Math.exp(v - top));
    const total = exps.reduce((a, b) => a + b, 0);
    return Array.from(exps, (e) => e / total);  // softmax: the ten probabilities
  }

  function argmax(values) {
    return values.indexOf(Math.max(...values));
  }

  // For the tests: prepare and classify N grayscale images (base64 of N x 28 x 28
  // bytes, white digit on black as in MNIST).
  function classifyImages(base64, count) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const size = bytes.length / count, side = Math.round(Math.sqrt(size));
    const digits = [], probabilities = [];
    for (let n = 0; n < count; n++) {
      const gray = Float64Array.from(bytes.subarray(n * size, (n + 1) * size), (v) => v / 255);
      const p = forward(prepare(gray, null, side, side).input);
      digits.push(argmax(p));
      probabilities.push(...p);
    }
    return { digits, probabilities };
  }

  // --- the canvas, on the page and in the notebook --------------------------

  const UNSURE = 0.9;  // below this top probability the answer says it is unsure
  const PROMPT = "Draw a digit in the box.";

  const MARKUP = `
    <div>
      <canvas class="draw-canvas" width="280" height="280"
              aria-label="Drawing area: draw one digit"></canvas>
      <div class="draw-buttons">
        <button type="button" class="draw-predict">Predict</button>
        <button type="button" class="draw-clear">Clear</button>
      </div>
    </div>
    <div>
      <p class="draw-answer" aria-live="polite"></p>
      <p>What the network sees:</p>
      <canvas class="draw-preview" width="112" height="112"
              aria-label="The prepared 28 by 28 image"></canvas>
      <p>The ten probabilities:</p>
      <div class="draw-bars"></div>
    </div>`;

  // Fill root (a <div class="draw-digit">) with the canvas, the buttons, the
  // answer, the preview and the bars. ask(canvas, show) is called when the
  // reader lets go or presses Predict, with a drawing on the canvas; it calls
  // show({ digit, probabilities, image }) with the answer (image: the 784
  // prepared values, 0..1), or show({ error }) with a message.
  function mount(root, ask, unsure = UNSURE) {
    root.innerHTML = MARKUP;
    const canvas = root.querySelector(".draw-canvas");
    const preview = root.querySelector(".draw-preview");
    const answer = root.querySelector(".draw-answer");
    const bars = root.querySelector(".draw-bars");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    for (let d = 0; d < 10; d++) {
      const bar = document.createElement("div");
      bar.className = "draw-bar";
      bar.innerHTML = '<span class="draw-bar-fill"></span>' +
        `<span class="draw-bar-label">${d}</span>`;
      bars.appendChild(bar);
    }

    function say(text, digit = "") {
      answer.textContent = text;
      answer.dataset.digit = String(digit);
    }

    function clear() {
      context.fillStyle = "white";
      context.fillRect(0, 0, canvas.width, canvas.height);
      preview.getContext("2d").clearRect(0, 0, preview.width, preview.height);
      bars.querySelectorAll(".draw-bar-fill").forEach((f) => { f.style.height = "0%"; });
      say(PROMPT);
    }

    function showPreview(image) {
      const small = preview.getContext("2d");
      const pixels = small.createImageData(FIELD_SIZE, FIELD_SIZE);
      image.forEach((v, i) => {
        pixels.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i);
      });
      const tile = document.createElement("canvas");
      tile.width = tile.height = FIELD_SIZE;
      tile.getContext("2d").putImageData(pixels, 0, 0);
      small.imageSmoothingEnabled = false;
      small.drawImage(tile, 0, 0, preview.width, preview.height);
    }

    function show(result) {
      if (result.error) {
        clear();
        say(result.error);
        return;
      }
      const { digit, probabilities: p, image } = result;
      showPreview(image);
      const sure = p[digit] >= unsure ? "" : " (not sure: is it a digit?)";
      say(`The network reads ${digit}, ` +
          `probability ${(100 * p[digit]).toFixed(0)}%${sure}.`, digit);
      bars.querySelectorAll(".draw-bar-fill").forEach((fill, d) => {
        fill.style.height = `${(100 * p[d]).toFixed(1)}%`;
        fill.classList.toggle("draw-bar-best", d === digit);
      });
    }

    function predict() {
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const { gray, alpha } = grayAlpha(pixels);
      try {
        prepare(gray, alpha, canvas.width, canvas.height);
      } catch (error) {
        if (!(error instanceof BlankImageError)) throw error;
        clear();  // nothing drawn: nothing to ask
        return;
      }
      ask(canvas, show);
    }

    let drawing = false;
    function point(event) {
      const box = canvas.getBoundingClientRect();
      return [(event.clientX - box.left) * (canvas.width / box.width),
              (event.clientY - box.top) * (canvas.height / box.height)];
    }
    canvas.addEventListener("pointerdown", (event) => {
      drawing = true;
      canvas.setPointerCapture(event.pointerId);
      context.beginPath();
      context.moveTo(...point(event));
      context.lineTo(...point(event));
      context.stroke();
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      context.lineTo(...point(event));
      context.stroke();
    });
    const stop = () => {
      if (!drawing) return;
      drawing = false;
      predict();
    };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    root.querySelector(".draw-predict").addEventListener("click", predict);
    root.querySelector(".draw-clear").addEventListener("click", clear);

    context.lineWidth = 20;
    context.lineCap = context.lineJoin = "round";
    context.strokeStyle = "black";
    clear();
    return { show, say, clear };
  }

  // The page: the network runs here, on the weights of weights.js.
  function askHere(canvas, show) {
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const { gray, alpha } = grayAlpha(pixels);
    const prepared = prepare(gray, alpha, canvas.width, canvas.height);
    const p = forward(prepared.input);
    show({ digit: argmax(p), probabilities: p, image: prepared.image });
  }

  // The notebook widget (anywidget): the drawing goes to the kernel as a PNG,
  // where DigitCanvas prepares it and asks the reader's model; the answer comes
  // back in the widget's traits.
  function render({ model, el }) {
    const root = document.createElement("div");
    root.className = "draw-digit";
    el.appendChild(root);
    let view = null;
    const ask = (canvas) => {
      view.say("Asking the network...");
      model.set("drawing", canvas.toDataURL("image/png"));
      model.set("request", model.get("request") + 1);
      model.save_changes();
    };
    view = mount(root, ask, model.get("unsure"));
    const answered = () => {
      const error = model.get("error");
      view.show(error ? { error } : {
        digit: model.get("digit"),
        probabilities: model.get("probabilities"),
        image: model.get("prepared"),
      });
    };
    model.on("change:answered", answered);
    return () => model.off("change:answered", answered);
  }

  return { prepare, forward, classifyImages, BlankImageError, mount, askHere,
           render };
})();

window.drawDigit = drawDigit;
if (window.MNIST_MLP) {  // on the page, after weights.js
  document.querySelectorAll(".draw-digit").forEach((root) => {
    drawDigit.mount(root, drawDigit.askHere);
    const accuracy = document.querySelector(".draw-accuracy");
    if (accuracy) {
      accuracy.textContent = (100 * window.MNIST_MLP.accuracy).toFixed(1) + "%";
    }
  });
}
