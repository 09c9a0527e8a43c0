// Users page: copy the API key shown once.
const status = document.querySelector("[data-copy-status]");

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const input = document.querySelector(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(input.value);
      if (status) status.textContent = "Copied to the clipboard.";
    } catch {
      // No clipboard access (plain HTTP): select it so Ctrl+C copies it.
      input.focus();
      input.select();
      if (status) status.textContent = "Selected: press Ctrl+C (Cmd+C) to copy.";
    }
  });
}

const dialog = document.getElementById("new-key");
if (dialog) dialog.querySelector("[data-copy]").focus();
