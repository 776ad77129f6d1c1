// Upload page: drag-and-drop many files, shared details with a title per file,
// progress with speed and time left. Each file is one request through the web
// service to the ingest API (resumable uploads replace this when they land).
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var texts = JSON.parse(document.getElementById("upload-texts").textContent);
  var csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
  var drop = document.getElementById("drop"), input = document.getElementById("files");
  var queue = document.getElementById("queue"), template = document.getElementById("item-template");
  var items = [];
  var number = new Intl.NumberFormat(texts.lang === "en" ? "en-GB" : "vi-VN", { maximumFractionDigits: 1 });

  function add(files) {
    Array.prototype.forEach.call(files, function (file) {
      var node = template.content.firstElementChild.cloneNode(true);
      node.querySelector(".name").textContent = file.name + " (" + number.format(file.size / 1048576) + " MB)";
      var title = node.querySelector(".title");
      title.value = file.name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ");
      title.id = "title-" + items.length;
      node.querySelector(".title-error").id = title.id + "-error";
      node.querySelector(".status").textContent = texts.waiting;
      queue.appendChild(node);
      items.push({ file: file, node: node, done: false });
    });
  }
  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) { e.preventDefault(); drop.classList.remove("over"); add(e.dataTransfer.files); });
  input.addEventListener("change", function () { add(input.files); input.value = ""; });

  function showError(field, message) {
    var err = document.getElementById(field.id + "-error");
    if (message) { field.setAttribute("aria-invalid", "true"); field.setAttribute("aria-describedby", err.id); }
    else { field.removeAttribute("aria-invalid"); }
    err.textContent = message || ""; err.hidden = !message;
  }
  // dd/mm/yyyy → yyyy-mm-dd, or null when it is not a real date.
  function isoDay(text) {
    var m = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(text.trim());
    if (!m) return null;
    var d = new Date(Date.UTC(+m[3], +m[2] - 1, +m[1]));
    if (d.getUTCDate() !== +m[1] || d.getUTCMonth() !== +m[2] - 1) return null;
    return m[3] + "-" + m[2].padStart(2, "0") + "-" + m[1].padStart(2, "0");
  }
  function timeLeft(seconds) {
    if (!isFinite(seconds)) return "";
    var m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return (m ? m + " ph " : "") + s + " s " + texts.left;
  }

  function send(item, shared) {
    return new Promise(function (resolve) {
      var data = new FormData();
      data.append("title", item.node.querySelector(".title").value.trim());
      data.append("activity_type", shared.activity_type);
      if (shared.recorded_at) data.append("recorded_at", shared.recorded_at);
      if (shared.source_org) data.append("source_org", shared.source_org);
      data.append("file", item.file, item.file.name);  // the file part last: metadata is checked first
      var xhr = new XMLHttpRequest(), started = Date.now();
      var bar = item.node.querySelector("progress"), status = item.node.querySelector(".status");
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var elapsed = (Date.now() - started) / 1000, speed = e.loaded / Math.max(elapsed, 0.001);
        bar.value = (100 * e.loaded) / e.total;
        status.textContent = texts.uploading + " · " + number.format(speed / 1048576) + " MB/s · " + timeLeft((e.total - e.loaded) / speed);
      };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
        if (xhr.status === 201 || xhr.status === 200) {
          bar.value = 100; item.done = true;
          status.textContent = xhr.status === 200 ? texts.duplicate : texts.done;
          var link = document.createElement("a"); link.href = "/assets/" + body.asset_id; link.textContent = texts.open;
          status.appendChild(document.createTextNode(" · ")); status.appendChild(link);
        } else {
          var error = body.error || {};
          status.textContent = texts.failed + ": " + (texts.lang === "en" ? error.message_en : error.message) ;
        }
        resolve();
      };
      xhr.onerror = function () { status.textContent = texts.failed; resolve(); };
      xhr.open("POST", "/upload");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.send(data);
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var ok = true, dateField = document.getElementById("shared-recorded_at");
    var day = dateField.value.trim() ? isoDay(dateField.value) : "";
    showError(dateField, day === null ? texts.date_bad : "");
    if (day === null) ok = false;
    items.forEach(function (item) {
      var title = item.node.querySelector(".title");
      var missing = !title.value.trim();
      showError(title, missing ? texts.title_missing : "");
      if (missing) ok = false;
    });
    if (!ok) return;
    var shared = {
      activity_type: document.getElementById("shared-activity_type").value,
      recorded_at: day,
      source_org: document.getElementById("shared-source_org").value.trim()
    };
    items.filter(function (i) { return !i.done; }).reduce(function (chain, item) {
      return chain.then(function () { return send(item, shared); });
    }, Promise.resolve());
  });
})();
