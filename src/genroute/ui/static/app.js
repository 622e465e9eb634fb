// genroute admin UI: the few behaviours a server-rendered page cannot have on its own.
// Served from the gateway (the CSP allows no inline script); no data leaves the page.
"use strict";

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-open], [data-close], [data-copy]");
  if (!target) return;
  if (target.dataset.open) {
    document.getElementById(target.dataset.open)?.showModal();
  } else if (target.dataset.close) {
    document.getElementById(target.dataset.close)?.close();
  } else if (target.dataset.copy) {
    copy(document.getElementById(target.dataset.copy), target);
  }
});

// Copy a secret: the Clipboard API where the page is a secure context (HTTPS, localhost),
// else select the text so that the user can copy it.
async function copy(source, button) {
  if (!source) return;
  const text = source.textContent.trim();
  const status = button.parentElement.querySelector(".copied");
  try {
    await navigator.clipboard.writeText(text);
    if (status) status.textContent = "Copied";
  } catch (error) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (status) status.textContent = "Selected: press Ctrl+C to copy";
  }
}

// Ask before deleting.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// A form the server sent back with an error opens as the modal it was.
document.addEventListener("DOMContentLoaded", () => {
  for (const dialog of document.querySelectorAll("dialog[open]")) {
    dialog.close();
    dialog.showModal();
  }
});
