// The "draw a digit" page: no dependencies, no build step. Served by the gateway at / (see gateway/api.py).
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d", { willReadFrequently: true });
const preview = document.getElementById("preview");
const results = document.getElementById("results");
const summary = document.getElementById("summary");
const classifyButton = document.getElementById("classify");
const modelSelect = document.getElementById("model");
const apiKey = document.getElementById("api-key");
const STROKE = 22; // px on the 280x280 pad: about 2.2 px once the digit is scaled into MNIST's 20x20 box
const STACKS = [
  [/^tfserving/, "TF Serving"],
  [/^torchserve/, "TorchServe"],
  [/^embedded/, "Embedded"], // the model runs inside the gateway process
  [/^v2|triton/, "Triton / V2"],
];

// -- drawing -------------------------------------------------------------------------------

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  preview.getContext("2d").clearRect(0, 0, 28, 28);
}

let last = null;

function point(event) {
  const box = pad.getBoundingClientRect(); // the border is outside the drawing area
  return [
    ((event.clientX - box.left - pad.clientLeft) * pad.width) / pad.clientWidth,
    ((event.clientY - box.top - pad.clientTop) * pad.height) / pad.clientHeight,
  ];
}

function line(from, to) {
  ink.strokeStyle = "#fff";
  ink.lineWidth = STROKE;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(from[0], from[1]);
  ink.lineTo(to[0], to[1]);
  ink.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  last = point(event);
  line(last, last);
});
pad.addEventListener("pointermove", (event) => {
  if (last === null) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const next = point(e);
    line(last, next);
    last = next;
  }
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    last = null;
  });
}

// -- MNIST preparation ----------------------------------------------------------------------

/** The pad as MNIST's 28x28 grid of numbers in [0, 1]: the digit's bounding box scaled (area average,
 * aspect kept) so its longer side is 20 px, then placed so its centre of mass is the grid's centre. */
function mnistGrid() {
  const { width, height } = pad;
  const rgba = ink.getImageData(0, 0, width, height).data;
  const value = new Float32Array(width * height);
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const v = (rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 765;
      value[i] = v;
      if (v > 0.05) {
        if (y < top) top = y;
        if (y > bottom) bottom = y;
        if (x < left) left = x;
        if (x > right) right = x;
      }
    }
  }
  if (bottom < 0) return null;
  const boxW = right - left + 1, boxH = bottom - top + 1;
  const scale = 20 / Math.max(boxW, boxH);
  const w = Math.max(1, Math.round(boxW * scale)), h = Math.max(1, Math.round(boxH * scale));
  const sum = new Float32Array(w * h), count = new Float32Array(w * h);
  for (let y = top; y <= bottom; y++) {
    const ty = Math.min(h - 1, Math.floor(((y - top) * h) / boxH));
    for (let x = left; x <= right; x++) {
      const tx = Math.min(w - 1, Math.floor(((x - left) * w) / boxW));
      sum[ty * w + tx] += value[y * width + x];
      count[ty * w + tx] += 1;
    }
  }
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = count[y * w + x] ? sum[y * w + x] / count[y * w + x] : 0;
      sum[y * w + x] = v;
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  const dx = Math.round(14 - mx / mass), dy = Math.round(14 - my / mass);
  const grid = Array.from({ length: 28 }, () => new Array(28).fill(0));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const gx = x + dx, gy = y + dy;
      if (gx >= 0 && gx < 28 && gy >= 0 && gy < 28) grid[gy][gx] = Math.round(sum[y * w + x] * 1e4) / 1e4;
    }
  }
  return grid;
}

function showPreview(grid) {
  const context = preview.getContext("2d");
  const image = context.createImageData(28, 28);
  grid.flat().forEach((v, i) => {
    const level = Math.round(v * 255);
    image.data.set([level, level, level, 255], 4 * i);
  });
  context.putImageData(image, 0, 0);
}

// -- upload ---------------------------------------------------------------------------------

document.getElementById("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = ""; // choosing the same file again still fires "change"
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file);
    clearPad();
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale, h = bitmap.height * scale;
    ink.imageSmoothingEnabled = true;
    ink.imageSmoothingQuality = "high";
    ink.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    const pixels = ink.getImageData(0, 0, pad.width, pad.height);
    const data = pixels.data;
    let total = 0;
    for (let i = 0; i < data.length; i += 4) {
      const gray = (data[i] + data[i + 1] + data[i + 2]) / 3;
      data[i] = data[i + 1] = data[i + 2] = gray;
      total += gray;
    }
    if (total / (data.length / 4) > 127) { // a dark digit on light paper: MNIST digits are light on dark
      for (let i = 0; i < data.length; i += 4) data[i] = data[i + 1] = data[i + 2] = 255 - data[i];
    }
    ink.putImageData(pixels, 0, 0);
    await classify();
  } catch (error) {
    setSummary(`Could not read ${file.name} as an image (${error.message || error}).`, "error");
  }
});

// -- classification ---------------------------------------------------------------------------

function setSummary(text, kind) {
  summary.textContent = text;
  summary.className = kind || "";
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  if (apiKey.value.trim()) all["X-API-Key"] = apiKey.value.trim();
  return all;
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error.message || JSON.stringify(body.error);
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status} ${response.statusText}`;
}

function serverTiming(response) {
  const timing = {};
  for (const part of (response.headers.get("Server-Timing") || "").split(",")) {
    const match = part.trim().match(/^([\w-]+)\s*;\s*dur=([\d.]+)/);
    if (match) timing[match[1]] = Number(match[2]);
  }
  return timing;
}

function stackName(backend) {
  const framework = { tensorflow: "TensorFlow", pytorch: "PyTorch" }[backend.framework] || backend.framework;
  for (const [pattern, name] of STACKS) {
    if (pattern.test(backend.name)) return name === "Embedded" ? `${name} ${framework}` : name;
  }
  return backend.name;
}

async function backendsOf(model) {
  const response = await fetch(`v1/models/${encodeURIComponent(model)}`, { headers: headers() });
  if (!response.ok) throw new Error(await apiError(response));
  return (await response.json()).backends;
}

async function ask(model, backend, body) {
  const started = performance.now();
  try {
    const response = await fetch(`v1/models/${encodeURIComponent(model)}:classify`, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", "X-Gateway-Backend": backend.name }),
      body,
    });
    const client = performance.now() - started;
    if (!response.ok) return { backend, error: await apiError(response), client };
    const answer = await response.json();
    return {
      backend,
      client,
      timing: serverTiming(response),
      version: response.headers.get("X-Model-Version") || answer.version,
      answeredBy: answer.backend,
      prediction: answer.predictions[0],
    };
  } catch (error) {
    return { backend, error: `no answer: ${error.message || error}`, client: performance.now() - started };
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(value) {
  return value === undefined ? "–" : `${value.toFixed(1)} ms`;
}

function card(result, disagrees) {
  const node = element("article", "card");
  node.dataset.backend = result.backend.name;
  node.append(element("h3", "", stackName(result.backend)));
  node.append(element("p", "backend", `${result.backend.name} · ${result.backend.framework}`));
  if (result.error) {
    node.classList.add("failed");
    node.dataset.error = result.error;
    node.append(element("p", "error-message", result.error));
    return node;
  }
  const { digit, probabilities } = result.prediction;
  node.dataset.digit = String(digit);
  const answer = element("div", "answer");
  answer.append(element("span", "digit", String(digit)));
  answer.append(element("span", "confidence", `${(probabilities[digit] * 100).toFixed(1)} %`));
  if (disagrees(digit)) {
    node.classList.add("disagree");
    answer.append(element("span", "tag", "disagrees"));
  }
  node.append(answer);
  const bars = element("div", "bars");
  bars.setAttribute("role", "img");
  bars.setAttribute(
    "aria-label",
    "Probabilities: " + probabilities.map((p, d) => `${d}: ${(p * 100).toFixed(1)} %`).join(", "),
  );
  const labels = element("div", "labels");
  probabilities.forEach((p, d) => {
    const bar = element("div", d === digit ? "bar top" : "bar");
    bar.style.height = `${Math.max(0, Math.min(1, p)) * 100}%`;
    bar.title = `${d}: ${(p * 100).toFixed(2)} %`;
    bars.append(bar);
    labels.append(element("span", "", String(d)));
  });
  labels.setAttribute("aria-hidden", "true");
  node.append(bars, labels);
  const meta = element("dl", "meta");
  const rows = [
    ["version", result.version],
    ["client total", ms(result.client)],
    ["gateway", ms(result.timing.gateway)],
    ["backend", ms(result.timing.backend)],
  ];
  for (const [name, value] of rows) {
    const cell = element("dd", "", value);
    cell.dataset.field = name.split(" ")[0]; // "version", "client", "gateway", "backend"
    meta.append(element("dt", "", name), cell);
  }
  node.append(meta);
  return node;
}

async function classify() {
  const grid = mnistGrid();
  if (grid === null) {
    setSummary("The pad is empty: draw a digit first (or upload an image).", "error");
    return;
  }
  showPreview(grid);
  const model = modelSelect.value || "mnist";
  classifyButton.disabled = true;
  results.dataset.state = "busy";
  setSummary("Asking every stack…");
  try {
    const backends = await backendsOf(model);
    if (!backends.length) throw new Error(`model ${model} has no backends`);
    const body = JSON.stringify({ image: grid });
    const answers = await Promise.all(backends.map((backend) => ask(model, backend, body)));
    const digits = answers.filter((a) => !a.error).map((a) => a.prediction.digit);
    const votes = {};
    for (const d of digits) votes[d] = (votes[d] || 0) + 1;
    const ranked = Object.entries(votes).sort((a, b) => b[1] - a[1]);
    const tie = ranked.length > 1 && ranked[0][1] === ranked[1][1];
    const majority = ranked.length && !tie ? Number(ranked[0][0]) : null;
    // With a majority, the others disagree; with a tie (two stacks, two answers), every one does.
    const disagrees = (d) => ranked.length > 1 && (majority === null || d !== majority);
    results.replaceChildren(...answers.map((a) => card(a, disagrees)));
    const failed = answers.filter((a) => a.error).length;
    const failures = failed ? ` ${failed} of ${answers.length} failed.` : "";
    if (!digits.length) setSummary(`No stack answered.${failures}`, "error");
    else if (ranked.length === 1) {
      const who = digits.length === 1 ? "The stack says" : `All ${digits.length} stacks say`;
      setSummary(`${who} ${digits[0]}.${failures}`, failed ? "error" : "agree");
    } else {
      const split = ranked.map(([d, n]) => `${d} (${n} ${n === 1 ? "stack" : "stacks"})`).join(", ");
      setSummary(`The stacks disagree: ${split}.${failures}`, "disagree");
    }
  } catch (error) {
    results.replaceChildren();
    setSummary(`Error: ${error.message || error}`, "error");
  } finally {
    classifyButton.disabled = false;
    results.dataset.state = "done";
  }
}

async function loadModels() {
  try {
    const response = await fetch("v1/models", { headers: headers() });
    if (!response.ok) return; // e.g. 401 until an API key is entered: "mnist" stays the choice
    const { models } = await response.json();
    if (!models.length) return;
    modelSelect.replaceChildren(...models.map((m) => element("option", "", m)));
    if (models.includes("mnist")) modelSelect.value = "mnist";
  } catch (_) { /* offline or refused: keep the default */ }
}

classifyButton.addEventListener("click", classify);
document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  results.replaceChildren();
  results.dataset.state = "idle";
  setSummary("Draw a digit (or upload one), then press Classify.");
});
apiKey.addEventListener("change", loadModels);
clearPad();
loadModels();
