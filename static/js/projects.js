// Projects page: upload progress, live scan progress, small conveniences. No inline scripts (CSP).
import { csrfToken, liveSocket } from "./app.js";

for (const box of document.querySelectorAll("input[data-autosubmit]")) {
  box.addEventListener("change", () => box.form.submit());
}

// Upload through the API so the browser can report progress; the plain form still works without JS.
const uploadForm = document.getElementById("upload-form");
const sources = document.getElementById("sources");
if (uploadForm && sources) {
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData();
    const file = uploadForm.querySelector("input[type=file]").files[0];
    if (!file) return;
    data.append("file", file);
    data.append("is_test", uploadForm.querySelector("input[name=is_test]").checked ? "true" : "false");
    const request = new XMLHttpRequest();
    request.open("POST", sources.dataset.uploadUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    bar.hidden = false;
    bar.value = 0;
    status.textContent = `Uploading ${file.name}…`;
    request.upload.addEventListener("progress", (progress) => {
      if (progress.lengthComputable) bar.value = Math.round((100 * progress.loaded) / progress.total);
    });
    request.addEventListener("load", () => {
      if (request.status === 201) {
        status.textContent = `${file.name} uploaded.`;
        window.location.reload();
        return;
      }
      let message = `Upload failed (${request.status}).`;
      try { message = JSON.parse(request.responseText).detail || message; } catch { /* not JSON */ }
      status.textContent = message;
      status.classList.add("error");
      bar.hidden = true;
    });
    request.addEventListener("error", () => { status.textContent = "Upload failed: the connection was lost."; });
    request.send(data);
  });
}

// Live scan progress pushed by the server.
const scanCard = document.getElementById("scan");
if (scanCard) {
  const bar = document.getElementById("scan-progress");
  const status = document.getElementById("scan-status");
  // A page rendered while a scan was unfinished reloads when it finishes, even if it finished
  // before this socket connected (the first message is the current state).
  let sawRunning = ["queued", "running"].includes(scanCard.dataset.status);
  liveSocket(scanCard.dataset.socket, (event) => {
    if (event.type !== "scan") return;
    const scan = event.scan;
    if (scan.status === "queued" || scan.status === "running") {
      sawRunning = true;
      bar.hidden = false;
      bar.value = scan.progress;
      const rate = Math.round(scan.files_per_second);
      status.textContent = scan.status === "queued"
        ? "Waiting for a worker…"
        : `Scanning: ${Math.round(scan.progress)}% (${scan.files_done}/${scan.files_total} files, ${rate} files/s)`;
    } else if (sawRunning) {
      // Finished while we watched: reload for the new counts, sources' states and the filter.
      window.location.reload();
    }
  });
}
