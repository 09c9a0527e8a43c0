// Shared helpers for the pages. Each page adds its own module when it needs more.

/** The CSRF token Django put in the page (forms carry it; fetch calls send it as a header). */
export function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** A websocket to this server that reconnects with backoff; onEvent gets each JSON message. */
export function liveSocket(path, onEvent) {
  let delay = 1000;
  let socket;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.onopen = () => { delay = 1000; };
    socket.onmessage = (message) => onEvent(JSON.parse(message.data));
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4404) return; // not allowed: do not retry
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 30000);
    };
  };
  open();
  return { close: () => socket && socket.close() };
}

// Forms that destroy something ask first. A data attribute, not an inline onsubmit: the CSP forbids inline JS.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
