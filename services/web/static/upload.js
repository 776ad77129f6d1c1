// Upload page: drag-and-drop many files, shared details with a title per file,
// progress with speed and time left. Each file goes up resumably with tus-js-client
// (node_modules/tus-js-client, served at /vendor/tus) through the web service.
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

  // Resumable (tus): chunks of ``chunkSize`` through /tus; a dropped connection is retried,
  // and after a reload the same file picks up where the server's offset says.
  var chunkSize = parseInt(form.dataset.chunk, 10) || 8 * 1048576;
  function errorText(err) {
    var body = {};
    try { body = JSON.parse(err.originalResponse.getBody()).error || {}; } catch (e) { body = {}; }
    return (texts.lang === "en" ? body.message_en : body.message) || String(err.message || err);
  }
  function settleRow(s) {
    // The page's table of recent uploads lists this one as it was when the page loaded (an
    // upload resumed after a reload): it shows how the upload ended, not "receiving".
    var row = document.querySelector('tr[data-upload-id="' + s.id + '"]');
    if (!row) return;
    var state = row.querySelector(".upload-state");
    state.textContent = s.state === "stored" ? texts.state_stored : texts.state_rejected;
    if (s.error) state.textContent += ": " + (texts.lang === "en" ? s.error.message_en : s.error.message_vi);
    if (s.state === "stored") row.querySelector(".upload-received").textContent = "100%";
    if (s.asset_id) {
      var cell = row.querySelector(".upload-title"), link = document.createElement("a");
      link.href = "/assets/" + s.asset_id; link.textContent = cell.textContent;
      cell.textContent = ""; cell.appendChild(link);
    }
  }
  function finished(item, url, status) {
    // The server verifies and stores the file; its asset id comes with the "stored" state.
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (s) {
      if (s.state === "stored" || s.state === "rejected") settleRow(s);
      if (s.state === "stored") {
        item.done = true;
        status.textContent = s.duplicate ? texts.duplicate : texts.done;
        var link = document.createElement("a"); link.href = "/assets/" + s.asset_id; link.textContent = texts.open;
        status.appendChild(document.createTextNode(" · ")); status.appendChild(link);
      } else if (s.state === "rejected") {
        status.textContent = texts.failed + ": " + (s.error ? (texts.lang === "en" ? s.error.message_en : s.error.message_vi) : "");
      } else {
        status.textContent = texts.verifying;
        setTimeout(function () { finished(item, url, status); }, 1000);
      }
    });
  }

  function send(item, shared) {
    return new Promise(function (resolve) {
      var bar = item.node.querySelector("progress"), status = item.node.querySelector(".status");
      var metadata = { title: item.node.querySelector(".title").value.trim(), activity_type: shared.activity_type,
                       filename: item.file.name, filetype: item.file.type || "application/octet-stream" };
      if (shared.recorded_at) metadata.recorded_at = shared.recorded_at;
      if (shared.source_org) metadata.source_org = shared.source_org;
      var samples = [];  // (time, bytes): speed over the last few seconds
      var upload = new tus.Upload(item.file, {
        endpoint: "/tus",
        chunkSize: chunkSize,
        retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
        headers: { "X-CSRF-Token": csrf },
        metadata: metadata,
        removeFingerprintOnSuccess: true,
        onProgress: function (sent, total) {
          var now = Date.now();
          samples.push([now, sent]);
          while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
          var first = samples[0], speed = (sent - first[1]) / Math.max((now - first[0]) / 1000, 0.001);
          bar.value = (100 * sent) / total;
          status.textContent = texts.uploading + " " + number.format((100 * sent) / total) + "%" +
            (speed > 0 ? " · " + number.format(speed / 1048576) + " MB/s · " + timeLeft((total - sent) / speed) : "");
        },
        onShouldRetry: function () { status.textContent = texts.retrying; return true; },
        onError: function (err) { status.textContent = texts.failed + ": " + errorText(err); resolve(); },
        onSuccess: function () { bar.value = 100; finished(item, upload.url, status); resolve(); }
      });
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) {
          upload.resumeFromPreviousUpload(previous[0]);
          status.textContent = texts.resuming;
        }
        upload.start();
      });
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
