// Small behaviours every page shares. htmx does the partial updates.
(function () {
  "use strict";
  // After htmx swaps in new results, move focus to the summary so screen readers hear the count.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "results") {
      var summary = document.getElementById("hits-title");
      if (summary && document.activeElement && document.activeElement.id !== "q") {
        summary.setAttribute("tabindex", "-1");
        summary.focus();
      }
    }
  });
  // A facet is a toggle button for assistive technology: Space activates it like a click.
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === " " && target && target.classList && target.classList.contains("facet-value")) {
      event.preventDefault();
      target.click();
    }
  });
})();
