// Draws the partner page's charts from the JSON the server embedded (no inline script: CSP).
(function () {
  "use strict";
  function draw() {
    var data = document.getElementById("series");
    if (!data || !window.uPlot) { return; }
    var s = JSON.parse(data.textContent);
    function chart(id, series) {
      var target = document.getElementById(id);
      if (!target) { return; }
      var opts = {
        width: Math.max(320, target.clientWidth || 600), height: 220,
        series: [{}].concat(series.map(function (x) {
          return { label: x[0], stroke: x[1], width: 2, points: { show: true } };
        })),
        axes: [{}, {}],
      };
      var columns = [s.starts].concat(series.map(function (x) { return s[x[2]]; }));
      target.uPlot = new uPlot(opts, columns, target);
    }
    chart("chart-requests", [["requests", "#2563eb", "requests"], ["denied", "#dc2626", "denials"],
                             ["429", "#d97706", "limited"]]);
    chart("chart-rows", [["rows", "#059669", "rows"]]);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
