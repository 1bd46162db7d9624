// The page's behaviour: read the form, POST /api/generate, poll /api/progress meanwhile, draw the rows.
// Everything is built with DOM calls (never innerHTML), so a caption cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function mode() { return document.querySelector("input[name=mode]:checked").value; }

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    info = await response.json();
  } catch (err) {
    showMessage("Cannot reach the server: " + err);
    return;
  }
  $("about").textContent = `generator ${info.netG} (${info.image_size}×${info.image_size}, mask stages `
    + `${info.stage_sizes.join(", ")}) · text encoder ${info.text_encoder} · vocabulary ${info.vocabulary_size} `
    + `words, at most ${info.words_num} per caption · ${info.device}`;
  $("n").max = info.max_images;
  $("n").value = info.default_images;
  $("seed").value = info.seed;
  for (const example of info.examples) $("examples").append(el("option", {value: example, text: example}));
  document.body.dataset.ready = "1";
}

function useExample(text) {
  if (mode() === "single") { $("caption").value = text; return; }
  const boxes = [...document.querySelectorAll(".compare-caption")];
  (boxes.find((box) => !box.value.trim()) || boxes[boxes.length - 1]).value = text;
}

function captions() {
  if (mode() === "single") return [$("caption").value];
  return [...document.querySelectorAll(".compare-caption")].map((box) => box.value).filter((t) => t.trim());
}

function readAs(row) {
  const line = el("p", {class: "read-as"}, el("span", {class: "label", text: "model read:"}));
  row.words.forEach((w, i) => {
    if (i) line.append(" ");
    if (w.cut) {
      line.append(el("del", {class: "cut", title: `beyond the ${row.limit} words the model reads: left out`, text: w.word}));
    } else {
      line.append(w.known ? el("span", {class: "word", text: w.word})
                          : el("del", {class: "dropped", title: "not in the vocabulary: left out", text: w.word}));
    }
  });
  if (row.dropped.length) {
    line.append(el("span", {class: "dropped-note", text: `(dropped: ${row.dropped.join(", ")})`}));
  }
  if (row.cut && row.cut.length) {
    line.append(el("span", {class: "dropped-note", text: `(cut after ${row.limit} words: ${row.cut.join(" ")})`}));
  }
  return line;
}

function sample(row, j, stageSizes) {
  const stages = el("div", {class: "stages"});
  row.masks[j].forEach((mask, i) => {
    stages.append(el("div", {class: "stage", "data-stage": i, title: `stage ${i + 1}: ${stageSizes[i]}×${stageSizes[i]} mask`},
      el("img", {class: "under", src: row.images[j], alt: ""}),
      el("img", {class: "mask", src: mask, alt: `mask of stage ${i + 1}`}),
      el("span", {class: "label", text: String(stageSizes[i])})));
  });
  return el("figure", {class: "sample", "data-noise": j},
    el("img", {class: "image", src: row.images[j], alt: `image ${j + 1}: ${row.read_as}`}),
    stages, el("figcaption", {text: `noise ${j + 1}`}));
}

function render(data) {
  const results = $("results");
  results.replaceChildren();
  data.rows.forEach((row, r) => {
    const samples = el("div", {class: "samples"});
    row.images.forEach((_, j) => samples.append(sample(row, j, data.stage_sizes)));
    results.append(el("div", {class: "row", "data-row": r}, readAs(row), samples));
  });
  $("download").href = data.grid;
  $("timing").textContent = `${data.rows.length * data.n} images in ${data.seconds.toFixed(2)} s (seed ${data.seed})`;
  $("output").hidden = false;
}

async function pollProgress(started, stop) {
  while (!stop.done) {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    let text = `generating… ${seconds} s`;
    try {
      const p = await (await fetch("/api/progress")).json();
      if (p.total) {
        $("progress-bar").max = p.total;
        $("progress-bar").value = p.done;
        text = `generating ${p.done}/${p.total} images… ${seconds} s`;
      }
    } catch (err) { /* the answer itself will report a dead server */ }
    if (!stop.done) $("progress-text").textContent = text;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function generate(event) {
  event.preventDefault();
  const texts = captions();
  if (mode() === "compare" && texts.length === 1) {
    showMessage("Compare mode needs 2 to 4 captions: fill at least two boxes.");
    return;
  }
  document.body.dataset.state = "busy";  // tests wait for "idle"
  showMessage("");
  $("generate").disabled = true;
  $("progress-bar").removeAttribute("value");
  $("progress").hidden = false;
  const stop = {done: false};
  const polling = pollProgress(performance.now(), stop);
  try {
    const response = await fetch("/api/generate", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({captions: texts, n: Number($("n").value), seed: Number($("seed").value)}),
    });
    const data = await response.json();
    if (!response.ok) showMessage(data.error || `the server answered ${response.status}`);
    else render(data);
  } catch (err) {
    showMessage("The request failed: " + err);
  } finally {
    stop.done = true;
    await polling;
    $("progress").hidden = true;
    $("generate").disabled = false;
    document.body.dataset.state = "idle";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.body.dataset.state = "idle";
  loadInfo();
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => {
      $("single").hidden = mode() !== "single";
      $("compare").hidden = mode() !== "compare";
    });
  }
  for (const radio of document.querySelectorAll("input[name=view]")) {
    radio.addEventListener("change", () => {
      $("results").className = "view-" + document.querySelector("input[name=view]:checked").value;
    });
  }
  $("examples").addEventListener("change", () => {
    if ($("examples").value) useExample($("examples").value);
    $("examples").value = "";
  });
  $("dice").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 2147483647); });
  $("form").addEventListener("submit", generate);
});
