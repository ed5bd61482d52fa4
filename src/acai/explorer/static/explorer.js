// The explorer page: plain JavaScript against the JSON API (no build step, nothing from the network).
"use strict";

const $ = (id) => document.getElementById(id);
let runs = [];
let steps = 11;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// One call to the API; a non-2xx answer throws its {"error": ...} message, which the page shows.
async function api(method, url, body, type) {
  const init = { method };
  if (body !== undefined) {
    init.body = body;
    init.headers = { "Content-Type": type || "application/octet-stream" };
  }
  const response = await fetch(url, init);
  let data;
  try {
    data = await response.json();
  } catch (e) {
    throw new Error(`HTTP ${response.status} from ${url}`);
  }
  if (!response.ok) {
    throw new Error(data.error || data.detail || `HTTP ${response.status}`);
  }
  return data;
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs || {});
  node.append(...children);
  return node;
}

function critic(value) {
  return value === null || value === undefined ? "" : `critic α̂ = ${value.toFixed(3)}`;
}

function showRuns(data) {
  runs = data.runs;
  $("runs").replaceChildren(...runs.map((r) => el("li", {},
    `${r.name} `, el("code", {}, r.run_id), ` (${r.regularizer}${r.critic ? ", critic" : ""})`)));
  $("frames").replaceChildren(...runs.map((r, i) => el("figure", { className: "frame" },
    el("div", { className: "name" }, r.name),
    el("img", { id: `frame-${i}`, alt: `${r.name} at α` }),
    el("div", { className: "critic", id: `critic-${i}` }))));
}

function showPair(pair) {
  for (const slot of ["a", "b"]) {
    const end = pair[slot];
    $(`end-${slot}`).src = end ? end.image : "";
    $(`source-${slot}`).textContent = end ? end.source : `no image ${slot.toUpperCase()}`;
    if (end && end.index !== null) $(`index-${slot}`).value = end.index;
  }
}

// The slider asks for one frame at a time: while a request is out, only the latest α waits for it.
let inFlight = false;
let pending = false;
async function updateFrame() {
  if (inFlight) {
    pending = true;
    return;
  }
  inFlight = true;
  try {
    const alpha = $("alpha").value;
    $("alpha-value").textContent = Number(alpha).toFixed(2);
    const data = await api("GET", `/api/frame?alpha=${alpha}&mode=${mode()}`);
    data.frames.forEach((f, i) => {
      $(`frame-${i}`).src = f.image;
      $(`critic-${i}`).textContent = critic(f.critic);
    });
    markCurrent(data.alpha);
  } catch (e) {
    showError(e.message);
  } finally {
    inFlight = false;
    if (pending) {
      pending = false;
      updateFrame();
    }
  }
}

function markCurrent(alpha) {
  const nearest = Math.round(alpha * (steps - 1));
  document.querySelectorAll(".strip .cell").forEach((cell) => {
    cell.classList.toggle("current", Number(cell.dataset.k) === nearest);
  });
}

async function updatePath() {
  const data = await api("GET", `/api/path?steps=${steps}&mode=${mode()}`);
  $("strips").replaceChildren(...data.runs.map((r, i) => el("div", { className: "strip", id: `strip-${i}` },
    el("div", { className: "name" }, `${runs[i].name}: ${data.mode}`),
    el("div", { className: "cells" }, ...r.frames.map((src, k) => {
      const cell = el("div", { className: "cell" },
        el("img", { src, alt: `α = ${data.alphas[k].toFixed(2)}` }),
        `α ${data.alphas[k].toFixed(2)}`,
        el("br"), r.critic ? `α̂ ${r.critic[k].toFixed(2)}` : "");
      cell.dataset.k = k;
      return cell;
    })))));
  markCurrent(Number($("alpha").value));
}

async function refresh() {
  await updatePath();
  await updateFrame();
}

// Runs an action from a control: the last message is cleared, and the action's error, if any, shown.
async function act(action) {
  showError("");
  try {
    await action();
  } catch (e) {
    showError(e.message);
  }
}

async function upload(slot, input) {
  const file = input.files[0];
  if (!file) return;
  const url = `/api/upload?slot=${slot}&name=${encodeURIComponent(file.name)}`;
  await act(async () => {
    try {
      showPair(await api("POST", url, file, file.type || "application/octet-stream"));
    } finally {
      input.value = "";
    }
    await refresh();
  });
}

async function start() {
  $("alpha").addEventListener("input", updateFrame);
  document.querySelectorAll('input[name="mode"]').forEach((r) => r.addEventListener("change", () => act(refresh)));
  $("upload-a").addEventListener("change", (e) => upload("a", e.target));
  $("upload-b").addEventListener("change", (e) => upload("b", e.target));
  $("pick").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const a = encodeURIComponent($("index-a").value), b = encodeURIComponent($("index-b").value);
      showPair(await api("POST", `/api/pair?a=${a}&b=${b}`));
      await refresh();
    });
  });
  $("random-pair").addEventListener("click", () => act(async () => {
    const seed = Math.floor(Math.random() * 1e9);
    showPair(await api("POST", `/api/pair?seed=${seed}`));
    await refresh();
  }));
  $("add-run").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      showRuns(await api("POST", `/api/runs?run_id=${encodeURIComponent($("run-id").value)}`));
      await refresh();
    });
  });
  await act(async () => {
    showRuns(await api("GET", "/api/runs"));
    const pair = await api("GET", "/api/pair");
    showPair(pair);
    if (pair.a && pair.b) await refresh();
  });
  document.body.dataset.ready = "true";
}

start();
