// Assay dashboard: the live parts only. Everything else works without this script.
(function () {
  "use strict";

  // Filter log lines as you type (the form still filters on the server without JavaScript).
  function applyFilter() {
    var input = document.getElementById("log-filter");
    if (!input) return;
    var needle = input.value.toLowerCase();
    document.querySelectorAll("#logs .line").forEach(function (line) {
      line.hidden = needle !== "" && line.textContent.toLowerCase().indexOf(needle) < 0;
    });
  }

  function section(ref) {
    var pre = document.querySelector('#logs pre[data-step="' + CSS.escape(ref) + '"]');
    if (pre) return pre;
    var details = document.createElement("details");
    details.className = "log";
    details.id = "log-" + ref;
    details.open = true;
    var summary = document.createElement("summary");
    var link = document.querySelector('a[href="#log-' + CSS.escape(ref) + '"]');
    summary.textContent = link ? link.textContent : ref;
    pre = document.createElement("pre");
    pre.dataset.step = ref;
    details.appendChild(summary);
    details.appendChild(pre);
    document.getElementById("logs").appendChild(details);
    var none = document.getElementById("no-logs");
    if (none) none.remove();
    return pre;
  }

  function setStatus(el, status) {
    el.textContent = status;
    el.className = "badge s-" + status;
  }

  var TERMINAL = ["passed", "failed", "aborted", "canceled"];

  // ANSI colours of a live log line as spans with classes (the server renders stored lines the
  // same way): text only through textContent, classes from a fixed set, other sequences dropped.
  function ansiLine(line, text) {
    var style = {};
    var re = /\u001b\[([0-9;:]*)([\u0040-\u007e])|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b.?|[\u0000-\u0008\u000b-\u001f\u007f]/g;
    var last = 0, m;
    function put(part) {
      if (!part) return;
      var classes = [];
      if (style.fg !== undefined) classes.push("ansi-fg-" + style.fg);
      if (style.bg !== undefined) classes.push("ansi-bg-" + style.bg);
      ["bold", "dim", "italic", "underline"].forEach(function (k) { if (style[k]) classes.push("ansi-" + k); });
      if (classes.length === 0) { line.appendChild(document.createTextNode(part)); return; }
      var span = document.createElement("span");
      span.className = classes.join(" ");
      span.textContent = part;
      line.appendChild(span);
    }
    function sgr(params) {
      var codes = params.split(/[;:]/).map(function (p) { return p === "" ? 0 : parseInt(p, 10); });
      for (var i = 0; i < codes.length; i++) {
        var c = codes[i];
        if (c === 0) style = {};
        else if (c === 1) style.bold = true;
        else if (c === 2) style.dim = true;
        else if (c === 3) style.italic = true;
        else if (c === 4) style.underline = true;
        else if (c === 22) { style.bold = false; style.dim = false; }
        else if (c === 23) style.italic = false;
        else if (c === 24) style.underline = false;
        else if (c >= 30 && c <= 37) style.fg = c - 30;
        else if (c === 39) delete style.fg;
        else if (c >= 40 && c <= 47) style.bg = c - 40;
        else if (c === 49) delete style.bg;
        else if (c >= 90 && c <= 97) style.fg = c - 82;
        else if (c >= 100 && c <= 107) style.bg = c - 92;
        else if (c === 38 || c === 48) {
          var key = c === 38 ? "fg" : "bg", colour;
          if (codes[i + 1] === 5) { colour = codes[i + 2]; i += 2; }
          else if (codes[i + 1] === 2) { i += 4; }
          if (colour !== undefined && colour < 16) style[key] = colour; else delete style[key];
        }
      }
    }
    while ((m = re.exec(text)) !== null) {
      put(text.slice(last, m.index));
      last = re.lastIndex;
      if (m[2] === "m") sgr(m[1]);
    }
    put(text.slice(last));
  }

  function follow(head) {
    var id = head.dataset.id;
    var filter = document.getElementById("log-filter");
    // The stream replays the whole log: start from empty sections to avoid doubles.
    document.querySelectorAll("#logs pre").forEach(function (pre) { pre.textContent = ""; });
    var source = new EventSource("/v1/test-workflow-executions/" + encodeURIComponent(id) + "/notifications");
    source.addEventListener("log", function (event) {
      var data = JSON.parse(event.data);
      var pre = section(data.ref || "");
      var line = document.createElement("span");
      line.className = "line";
      ansiLine(line, (data.log || "").replace(/\r?\n$/, ""));
      if (filter && filter.value && line.textContent.toLowerCase().indexOf(filter.value.toLowerCase()) < 0) {
        line.hidden = true;
      }
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(line);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("result", function (event) {
      var result = JSON.parse(event.data).result || {};
      var status = result.status;
      if (status) setStatus(document.getElementById("exec-status"), status);
      var steps = result.steps || {};
      Object.keys(steps).forEach(function (ref) {
        var badge = document.querySelector('[data-step-status="' + CSS.escape(ref) + '"]');
        if (badge && steps[ref].status) setStatus(badge, steps[ref].status);
      });
      if (status && TERMINAL.indexOf(status) >= 0) {
        source.close();
        head.dataset.ended = "true";
        // Durations, artifacts and test results are on the server-rendered page.
        setTimeout(function () { window.location.reload(); }, 800);
      }
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) head.dataset.streamError = "true";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var filter = document.getElementById("log-filter");
    if (filter) filter.addEventListener("input", applyFilter);
    var head = document.getElementById("execution");
    if (head && head.dataset.live === "true" && window.EventSource) follow(head);
  });
})();
