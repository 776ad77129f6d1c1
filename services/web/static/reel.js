// Reel builder: choose a segment (or a search hit), preview it, set in/out with I/O,
// reorder by dragging or with ↑/↓, add clips from a search. Saving is a plain form post;
// the server checks the timecodes and answers next to the field.
(function () {
  "use strict";
  var list = document.getElementById("segments");
  if (!list) return;
  var video = document.getElementById("player");
  var chosenLabel = document.getElementById("chosen");
  var texts = JSON.parse(document.getElementById("reel-texts").textContent);
  var template = document.getElementById("segment-template");
  var current = null;

  function format(t) { return window.mamTimecode ? window.mamTimecode.format(t) : String(t); }
  function parse(text) {
    var m = /^(\d{1,2}):([0-5]\d):([0-5]\d)(?:[.:](\d{1,2}))?$/.exec((text || "").trim());
    return m ? (+m[1]) * 3600 + (+m[2]) * 60 + (+m[3]) + (+(m[4] || 0)) / 25 : null;
  }
  function renumber() {
    Array.prototype.forEach.call(list.children, function (li, n) {
      li.querySelector(".seg-no").textContent = n + 1;
      ["in", "out", "caption"].forEach(function (name) {
        var input = li.querySelector("input[name=" + name + "]");
        var label = input.parentElement.querySelector("label");
        input.id = name + "-" + n; if (label) label.htmlFor = input.id;
      });
    });
  }
  function choose(li) {
    if (current) current.classList.remove("current");
    current = li; li.classList.add("current");
    var asset = li.dataset.asset;
    var src = "/media/" + asset + "/" + (li.dataset.kind === "audio" ? "audio" : "proxy");
    if (video.getAttribute("src") !== src) { video.setAttribute("src", src); video.setAttribute("poster", "/media/" + asset + "/poster"); }
    var start = parse(li.querySelector("input[name=in]").value);
    video.addEventListener("loadedmetadata", function once() { video.removeEventListener("loadedmetadata", once); if (start !== null) video.currentTime = start; });
    if (video.readyState > 0 && start !== null) video.currentTime = start;
    chosenLabel.textContent = texts.chosen + ": " + li.querySelector(".seg-no").textContent + ". " + li.querySelector(".seg-title").textContent.replace(/^\d+\.\s*/, "");
  }
  function add(asset, kind, title, duration) {
    var li = template.content.firstElementChild.cloneNode(true);
    li.dataset.asset = asset; li.dataset.kind = kind;
    li.querySelector("input[name=asset_id]").value = asset;
    li.querySelector(".name").textContent = title;
    li.querySelector("input[name=in]").value = format(0);
    li.querySelector("input[name=out]").value = format(Math.min(parseFloat(duration) || 5, 10));
    list.appendChild(li); renumber(); choose(li);
  }
  list.addEventListener("click", function (e) {
    var li = e.target.closest(".segment"); if (!li) return;
    if (e.target.classList.contains("up") && li.previousElementSibling) list.insertBefore(li, li.previousElementSibling);
    else if (e.target.classList.contains("down") && li.nextElementSibling) list.insertBefore(li.nextElementSibling, li);
    else if (e.target.classList.contains("remove")) { li.remove(); if (current === li) current = null; }
    else if (e.target.classList.contains("preview")) choose(li);
    else return;
    renumber();
  });
  list.addEventListener("focusin", function (e) { var li = e.target.closest(".segment"); if (li && li !== current) choose(li); });
  // Drag to reorder.
  var dragged = null;
  list.addEventListener("dragstart", function (e) { dragged = e.target.closest(".segment"); e.dataTransfer.effectAllowed = "move"; });
  list.addEventListener("dragover", function (e) {
    e.preventDefault();
    var over = e.target.closest(".segment");
    if (!dragged || !over || over === dragged) return;
    var after = e.clientY > over.getBoundingClientRect().top + over.offsetHeight / 2;
    list.insertBefore(dragged, after ? over.nextSibling : over);
  });
  list.addEventListener("drop", function (e) { e.preventDefault(); dragged = null; renumber(); });
  // Clips found by the search box.
  document.getElementById("clips").addEventListener("click", function (e) {
    var button = e.target.closest(".clip"); if (!button) return;
    add(button.dataset.asset, button.dataset.kind, button.dataset.title, button.dataset.duration);
  });
  // I and O set the chosen segment's in and out points from the player.
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (/INPUT|TEXTAREA|SELECT/.test(tag) || e.ctrlKey || e.metaKey || e.altKey || !current) return;
    var key = e.key.toLowerCase();
    if (key !== "i" && key !== "o") return;
    e.preventDefault();
    current.querySelector("input[name=" + (key === "i" ? "in" : "out") + "]").value = format(video.currentTime);
  });
  if (list.firstElementChild) choose(list.firstElementChild);
})();
