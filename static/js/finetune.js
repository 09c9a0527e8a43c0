// The fine-tune monitor: a hand-written SVG loss chart, ETA bar, log and checkpoints, all live over the run's socket.
import { liveSocket } from "./app.js";

const root = document.getElementById("ft-run");
const SVG = "http://www.w3.org/2000/svg";
const state = { train: [], test: [], best: null, checkpoints: new Map() };

function el(name, attributes, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function draw() {
  const svg = document.getElementById("ft-chart");
  svg.replaceChildren();
  const width = 720, height = 260, left = 48, right = 12, top = 12, bottom = 28;
  const points = [...state.train, ...state.test];
  if (!points.length) {
    el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "muted" }, svg).textContent = "Waiting for the first step…";
    return;
  }
  const maxStep = Math.max(1, ...points.map((p) => p.step));
  const losses = points.map((p) => p.loss);
  let low = Math.min(...losses), high = Math.max(...losses);
  if (high - low < 1e-6) { high += 0.5; low -= 0.5; }
  const x = (step) => left + (step / maxStep) * (width - left - right);
  const y = (loss) => top + (1 - (loss - low) / (high - low)) * (height - top - bottom);
  // Enough decimals that the five grid labels differ, however close the losses are.
  const digits = Math.min(6, Math.max(2, Math.ceil(-Math.log10((high - low) / 4)) + 1));
  for (let i = 0; i <= 4; i++) {
    const value = low + ((high - low) * i) / 4;
    el("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }, svg);
    el("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", class: "axis" }, svg).textContent = value.toFixed(digits);
  }
  el("text", { x: width - right, y: height - 8, "text-anchor": "end", class: "axis" }, svg).textContent = `step ${maxStep}`;
  const line = (series, cls) => {
    if (!series.length) return;
    el("polyline", { points: series.map((p) => `${x(p.step)},${y(p.loss)}`).join(" "), class: cls }, svg);
    // A line through one point draws nothing: mark points as dots while there are few of them.
    const dots = series.length === 1 || (cls === "test" && series.length < 60);
    for (const p of dots ? series : []) el("circle", { cx: x(p.step), cy: y(p.loss), r: 2.5, class: cls }, svg);
  };
  line(state.train, "train");
  line(state.test, "test");
  const best = state.best && state.checkpoints.get(state.best);
  if (best) {
    el("circle", { cx: x(best.step), cy: y(best.test_loss), r: 6, class: "best" }, svg);
    el("text", { x: x(best.step), y: y(best.test_loss) - 10, "text-anchor": "middle", class: "axis" }, svg).textContent = "best";
  }
  svg.dataset.points = String(points.length);
}

function addMetric(m) {
  if (m.train_loss !== null && m.train_loss !== undefined && !state.train.some((p) => p.step === m.step)) state.train.push({ step: m.step, loss: m.train_loss });
  if (m.test_loss !== null && m.test_loss !== undefined && !state.test.some((p) => p.step === m.step)) state.test.push({ step: m.step, loss: m.test_loss });
}

function field(name) { return root.querySelector(`[data-field="${name}"]`); }

function setStatus(e) {
  field("status").textContent = e.status;
  field("status").className = `badge ft-${e.status}`;
  const percent = Math.round(e.progress || 0);
  root.querySelector(".ft-eta-fill").style.width = `${percent}%`;
  root.querySelector(".ft-eta").setAttribute("aria-valuenow", String(percent));
  field("steps").textContent = `step ${e.steps_done}/${e.total_steps}`;
  field("eta").textContent = e.eta_seconds ? `ETA ${formatSeconds(e.eta_seconds)}` : "ETA –";
  field("error").hidden = !e.error;
  field("error").textContent = e.error || "";
  // Cancel while the run works, delete once it has stopped: the buttons follow the status live.
  const finished = ["completed", "failed", "cancelled", "interrupted"].includes(e.status);
  root.querySelector("[data-action=cancel]").disabled = finished;
  root.querySelector("[data-action=delete]").disabled = !finished;
  if (["completed", "failed", "cancelled", "interrupted"].includes(e.status) && root.dataset.finished !== "1") {
    root.dataset.finished = "1";
    if (e.status === "completed") setTimeout(() => location.reload(), 1500); // the evaluation report is server-rendered
  }
}

function formatSeconds(seconds) {
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
}

function addCheckpoint(c, best) {
  state.checkpoints.set(c.name, c);
  state.best = best || state.best;
  const body = document.getElementById("ft-checkpoints");
  body.querySelector("tr.empty")?.remove();
  if (!body.querySelector(`tr[data-name="${CSS.escape(c.name)}"]`)) {
    const row = document.createElement("tr");
    row.dataset.name = c.name;
    for (const text of [c.name, c.step, "", c.test_loss.toFixed(3), ""]) row.insertCell().textContent = text;
    const link = document.createElement("a");
    link.href = `/api/finetune/runs/${root.dataset.run}/checkpoints/${encodeURIComponent(c.name)}/download/`;
    link.textContent = "Download";
    row.insertCell().appendChild(link);
    body.appendChild(row);
  }
  for (const row of body.querySelectorAll("tr[data-name]")) row.classList.toggle("best", row.dataset.name === state.best);
  field("best").textContent = state.best || "–";
}

function onEvent(e) {
  if (e.type === "snapshot") {
    state.train = []; state.test = [];
    e.metrics.forEach(addMetric);
    e.checkpoints.forEach((c) => state.checkpoints.set(c.name, c));
    state.best = e.best;
    setStatus(e);
    draw();
  } else if (e.type === "metric") {
    addMetric(e);
    draw();
  } else if (e.type === "status") {
    setStatus(e);
  } else if (e.type === "checkpoint") {
    addCheckpoint(e, e.best);
    draw();
  } else if (e.type === "log") {
    const log = document.getElementById("ft-log");
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(`${new Date(e.time).toTimeString().slice(0, 8)} ${e.text}\n`);
    if (stick) log.scrollTop = log.scrollHeight;
  } else if (e.type === "renamed") {
    field("name").textContent = e.name;
  }
}

// Tabs: arrow keys move between them, as in the WAI-ARIA pattern.
const tabs = [...root.querySelectorAll('[role="tab"]')];
function select(tab) {
  for (const other of tabs) {
    other.setAttribute("aria-selected", String(other === tab));
    other.tabIndex = other === tab ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = other !== tab;
  }
  tab.focus();
}
tabs.forEach((tab, index) => {
  tab.tabIndex = index === 0 ? 0 : -1;
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight") select(tabs[(index + 1) % tabs.length]);
    if (event.key === "ArrowLeft") select(tabs[(index - 1 + tabs.length) % tabs.length]);
  });
});

draw();
liveSocket(root.dataset.socket, onEvent);
