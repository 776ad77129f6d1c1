// Bulk edit on the search page: how many hits are ticked, and "choose every asset on this
// page". Listeners sit on the document, so they outlive htmx swapping the results in.
(function () {
  "use strict";
  function picks() {
    return Array.prototype.slice.call(document.querySelectorAll("input.pick[form='bulk-form']"));
  }
  function update() {
    var count = document.getElementById("bulk-count");
    var all = document.getElementById("bulk-all");
    var ticked = picks().filter(function (box) { return box.checked; }).length;
    if (count) { count.textContent = String(ticked); }
    if (all) { all.checked = ticked > 0 && ticked === picks().length; }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target || !target.matches) { return; }
    if (target.id === "bulk-all") {
      picks().forEach(function (box) { box.checked = target.checked; });
    }
    if (target.id === "bulk-all" || target.matches("input.pick")) { update(); }
  });
  document.addEventListener("htmx:afterSwap", update);
})();
