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
      line.textContent = (data.log || "").replace(/\r?\n$/, "");
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
