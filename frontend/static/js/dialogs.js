// A <button data-opens-dialog="ID"> opens <dialog id="ID"> as a modal: the confirmation step of a dangerous
// action (the dialog's form posts it; its Cancel button uses formmethod="dialog" and only closes it).
// A listener, not an inline onclick="": the Content-Security-Policy refuses inline event handlers.
document.addEventListener("click", (event) => {
  const opener = event.target.closest("button[data-opens-dialog]");
  if (opener) {
    document.getElementById(opener.dataset.opensDialog).showModal();
  }
});
