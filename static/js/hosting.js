// Model Hosting page: the Add Model dialog, the LoRA mode fields, copy buttons, live server states.

const dialog = document.getElementById("add-model");
const openButton = document.getElementById("add-model-open");
if (dialog && openButton) {
  openButton.addEventListener("click", () => dialog.showModal());
  document.getElementById("add-model-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("change", (event) => {
    const radio = event.target;
    if (radio.name !== "model") return;
    const context = dialog.querySelector("input[name=n_ctx]");
    context.placeholder = `model default (${radio.dataset.nCtx})`;
    context.max = radio.dataset.nCtx;
  });
}

for (const select of document.querySelectorAll("[data-role=lora-mode]")) {
  const specific = select.closest("form").querySelector(".lora-specific");
  const sync = () => { specific.hidden = select.value !== "specific"; };
  select.addEventListener("change", sync);
  sync();
}

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const text = document.querySelector(button.dataset.copy).textContent;
    try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; } catch { /* no clipboard */ }
  });
}

// The published LoRA names, as the server renders them (a new run's best checkpoint changes them).
const renderLoras = (cell, a) => {
  const parts = [];
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    node.className = className;
    node.textContent = text;
    return node;
  };
  if (a.published_loras.length) {
    for (const name of a.published_loras) parts.push(element("code", "lora-name", name), " ");
  } else {
    parts.push(element("span", "muted", "off: the base model alone"));
  }
  for (const problem of a.lora_problems) parts.push(" ", element("span", "badge warn", problem));
  cell.replaceChildren(...parts);
};

// Server states change as the supervisor starts models, and LoRA names as runs complete: refresh
// both without reloading the page.
const rows = document.querySelectorAll("tr[data-model]:not(.finetune-row)");
if (rows.length) {
  const refresh = async () => {
    try {
      const response = await fetch("/api/hosting/assignments/", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const byModel = new Map((await response.json()).map((a) => [a.model, a]));
      for (const row of rows) {
        const a = byModel.get(row.dataset.model);
        if (!a) continue;
        const badge = row.querySelector("[data-role=state]");
        badge.textContent = a.state;
        badge.className = "badge " + (a.state === "ready" ? "ok" : a.state === "failed" ? "bad" : "warn");
        row.querySelector("[data-role=reason]").textContent = a.reason;
        const loras = document.querySelector(`tr.finetune-row[data-model="${CSS.escape(a.model)}"] [data-role=loras]`);
        const key = JSON.stringify([a.published_loras, a.lora_problems]);
        if (loras && loras.dataset.shown !== key) {
          renderLoras(loras, a);
          loras.dataset.shown = key;
        }
      }
    } catch { /* offline for a moment: try again later */ }
  };
  setInterval(refresh, 4000);
}
