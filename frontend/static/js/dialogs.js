// A <button data-opens-dialog="ID"> opens <dialog id="ID"> as a modal: the confirmation step of a dangerous
// action (the dialog's form posts it; its Cancel button uses formmethod="dialog" and only closes it).
// A listener, not an inline onclick="": the Content-Security-Policy refuses inline event handlers.
document.addEventListener("click", (event) => {
  const opener = event.target.closest("button[data-opens-dialog]");
  if (opener) {
    document.getElementById(opener.dataset.opensDialog).showModal();
  }
});

// A <button data-confirm="question"> asks before its form is submitted (the browser's confirm; a listener, since
// the Content-Security-Policy refuses inline onclick="return confirm(…)", which then submitted without asking).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});
