// A <select data-autosubmit> submits its form when changed. A listener, not an inline onchange="":
// the Content-Security-Policy refuses inline event handlers.
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) {
    event.target.form.submit();
  }
});
