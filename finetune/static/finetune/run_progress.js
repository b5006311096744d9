// A training run's admin page: poll its JSON progress every second and update the bar.
(function () {
  var box = document.getElementById("run-progress");
  if (box.dataset.finished === "1") { return; }
  var set = function (id, text) { document.getElementById(id).textContent = text; };
  var timer = setInterval(function () {
    fetch(box.dataset.url, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (p) {
        set("run-status", p.status_display);
        set("run-stage", p.stage || "waiting for a worker");
        set("run-percent", Math.round(p.percent));
        set("run-eta", p.eta_display);
        set("run-error", p.error);
        document.getElementById("run-bar").style.width = p.percent + "%";
        var log = document.getElementById("run-log");
        if (log && p.log_tail) { log.textContent = p.log_tail; }
        // Finished: reload once so metrics, log and the version link show in full.
        if (p.finished) { clearInterval(timer); window.location.reload(); }
      })
      .catch(function () {});
  }, 1000);
})();
