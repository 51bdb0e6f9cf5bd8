// Reference-vs-current distribution charts, one per column, as the monitor page and the run report page draw them:
// bars of the share of rows per bin (numeric) or per category, reference and current overlaid, with axis titles
// and the numbers in a "Show data" table (charts.js). `features` items: {column, drifted, distribution: {edges |
// categories, reference, current}}.
window.distributions = (function () {
  function draw(box, features) {
    const cfg = {displayModeBar: false, responsive: true};
    const figures = charts.smallMultiples(box,
      features.filter(f => f.distribution && (f.distribution.edges || f.distribution.categories)),
      {idPrefix: "dist-", height: "240px", caption: f => f.column + (f.drifted ? " (drift)" : ""),
       data: f => ({column: f.column})});
    figures.forEach(function ([f, chart]) {
      const d = f.distribution;
      const x = d.categories || d.edges.slice(0, -1).map((v, k) => (v + d.edges[k + 1]) / 2);
      Plotly.newPlot(chart.id, [{type: "bar", name: "reference", x: x, y: d.reference, opacity: 0.6},
                                {type: "bar", name: "current", x: x, y: d.current, opacity: 0.6}],
        {barmode: "overlay", margin: {t: 10, r: 10, b: 10, l: 10}, legend: {orientation: "h", y: 1.2},
         xaxis: charts.axis(d.categories ? f.column : f.column + " (bin centre)", {nticks: 6, tickformat: d.categories ? "" : ".3~s"}),
         yaxis: charts.axis("share of rows", {tickformat: ".0%"})}, cfg);
      const head = d.categories ? [f.column] : ["bin from", "bin to"];
      const rows = x.map((v, k) => [...(d.categories ? [v] : [d.edges[k], d.edges[k + 1]]), d.reference[k], d.current[k]]);
      charts.showData(chart.id, [...head, "reference share", "current share"], rows, {title: f.column + " distribution"});
    });
  }
  return {draw};
})();
