// Video player: J/K/L shuttle, ← → frame step when paused, storyboard scrub previews
// from the sprite + WebVTT the transcoder made, and a hh:mm:ss.ff timecode.
(function () {
  "use strict";
  var video = document.getElementById("player");
  if (!video) return;
  var box = video.closest(".player");
  var fps = parseFloat(video.dataset.fps) || 25;
  var timecode = document.getElementById("timecode");

  function pad(n, w) { return String(n).padStart(w || 2, "0"); }
  function format(t) {
    var frames = Math.floor((t % 1) * fps);
    var s = Math.floor(t);
    return pad(Math.floor(s / 3600)) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60) + "." + pad(frames);
  }
  window.mamTimecode = { format: format, fps: fps };
  video.addEventListener("timeupdate", function () { if (timecode) timecode.textContent = format(video.currentTime); });

  var rate = 0;
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (/INPUT|TEXTAREA|SELECT/.test(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
    var key = e.key.toLowerCase();
    if (key === "k") { e.preventDefault(); rate = 0; if (video.paused) video.play(); else video.pause(); }
    else if (key === "l") { e.preventDefault(); rate = rate > 0 ? Math.min(rate * 2, 8) : 1; video.playbackRate = rate; video.play(); }
    else if (key === "j") { e.preventDefault(); rate = 0; video.pause(); video.currentTime = Math.max(0, video.currentTime - 5); }
    else if ((e.key === "ArrowRight" || e.key === "ArrowLeft") && video.paused && e.target !== video) {
      e.preventDefault();
      video.currentTime = Math.max(0, video.currentTime + (e.key === "ArrowRight" ? 1 : -1) / fps);
    }
  });

  // Storyboard: cues "start --> end" then "storyboard.jpg#xywh=x,y,w,h".
  var vttUrl = box && box.dataset.storyboard, spriteUrl = box && box.dataset.sprite;
  if (!vttUrl || !spriteUrl) return;
  var cues = [];
  function seconds(text) {
    var p = text.trim().split(":").map(parseFloat);
    return p.length === 3 ? p[0] * 3600 + p[1] * 60 + p[2] : p[0] * 60 + p[1];
  }
  fetch(vttUrl, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : ""; }).then(function (text) {
    var lines = text.split(/\r?\n/);
    for (var i = 0; i < lines.length; i++) {
      if (lines[i].indexOf("-->") > 0 && lines[i + 1]) {
        var span = lines[i].split("-->"), frag = lines[i + 1].split("#xywh=")[1];
        if (frag) {
          var r = frag.split(",").map(Number);
          cues.push({ start: seconds(span[0]), end: seconds(span[1]), x: r[0], y: r[1], w: r[2], h: r[3] });
        }
      }
    }
  });
  var scrub = box.querySelector(".scrub"), thumb = box.querySelector(".scrub-thumb"), label = box.querySelector(".scrub-time");
  video.addEventListener("mousemove", function (e) {
    var rect = video.getBoundingClientRect();
    // Only over the control bar, where the timeline is.
    if (!cues.length || !video.duration || e.clientY < rect.bottom - 40) { scrub.hidden = true; return; }
    var at = Math.max(0, Math.min(1, (e.clientX - rect.left) / rect.width)) * video.duration;
    var cue = cues.find(function (c) { return at >= c.start && at < c.end; }) || cues[cues.length - 1];
    thumb.style.width = cue.w + "px"; thumb.style.height = cue.h + "px";
    thumb.style.backgroundImage = "url(" + spriteUrl + ")";
    thumb.style.backgroundPosition = -cue.x + "px " + -cue.y + "px";
    label.textContent = format(at);
    scrub.style.left = Math.max(0, Math.min(rect.width - cue.w, e.clientX - rect.left - cue.w / 2)) + "px";
    scrub.hidden = false;
  });
  video.addEventListener("mouseleave", function () { scrub.hidden = true; });
})();
