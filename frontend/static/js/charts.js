// Every chart's text alternative, the same on every page: the chart is an image named by its heading, and its
// numbers are in a table under a "Show data" disclosure right after it. A page draws a chart with Plotly, then
// calls charts.showData(chartId, headers, rows). Calling it again for the same chart (a chart a live update
// redraws) replaces the rows in place, so an open disclosure stays open.
window.charts = (function () {
  // 1234.5678 → "1234.57", 0.0001234 → "0.000123": no exponents for money, no 17-digit floats.
  const format = (v) => v === null || v === undefined ? "—"
    : (typeof v === "number" ? (Number.isInteger(v) ? String(v) : String(Number(Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3))))
       : String(v));

  // An axis with a title; automargin grows the margin so long tick labels are not clipped.
  const axis = (title, extra) => ({title: {text: title}, automargin: true, ...(extra || {})});

  function showData(id, headers, rows, options) {
    const chart = document.getElementById(id);
    if (!chart) return;
    const title = (options && options.title)
      || chart.closest("figure, section")?.querySelector("figcaption, h2, h3")?.textContent || id;
    chart.setAttribute("role", "img");
    chart.setAttribute("aria-label", title.trim() + " chart; its data is in the table below");
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    headers.forEach(h => { const th = document.createElement("th"); th.scope = "col"; th.textContent = h; head.append(th); });
    const body = table.createTBody();
    rows.forEach(r => { const tr = body.insertRow(); r.forEach(v => { tr.insertCell().textContent = format(v); }); });
    if (!rows.length) {  // an empty chart says so in words too
      const cell = body.insertRow().insertCell();
      cell.colSpan = headers.length; cell.className = "empty"; cell.textContent = "No data yet.";
    }
    const existing = document.querySelector(`details.chart-data[data-chart="${id}"]`);
    if (existing) { existing.querySelector("table").replaceWith(table); return; }
    const details = document.createElement("details");
    details.className = "chart-data"; details.dataset.chart = id;
    const summary = document.createElement("summary"); summary.textContent = "Show data";
    const wrap = document.createElement("div"); wrap.className = "table-scroll";
    wrap.append(table); details.append(summary, wrap);
    // A chart inside its own scroll box (a tall heatmap) gets its table after the box, not inside it.
    (chart.parentElement.classList.contains("chart-scroll") ? chart.parentElement : chart).after(details);
  }

  // Rows of a table from Plotly traces that share an x axis: [x, y of trace 1, y of trace 2, …], one per x value
  // (in order of first appearance, or sorted), null where a trace has no point at that x.
  function rowsByX(traces, sorted) {
    const xs = [...new Set(traces.flatMap(t => t.x))];
    if (sorted) xs.sort();
    return xs.map(x => [x, ...traces.map(t => { const k = t.x.indexOf(x); return k < 0 ? null : t.y[k]; })]);
  }

  // Small multiples: one <figure class="dist"> per item in `box` (a grid), captioned, with a chart box of the given
  // height; returns [[item, chartDiv], …] to draw. Every figure is in the grid before the first chart is drawn:
  // drawn one by one, the first ones were laid out for a row still holding fewer figures and came out clipped.
  function smallMultiples(box, items, {idPrefix, height, caption, data}) {
    return items.map(function (item, i) {
      const figure = document.createElement("figure");
      figure.className = "dist";
      Object.assign(figure.dataset, data(item));
      const title = document.createElement("figcaption");
      title.textContent = caption(item);
      const chart = document.createElement("div");
      chart.id = idPrefix + i; chart.style.height = height;
      figure.append(title, chart); box.append(figure);
      return [item, chart];
    });
  }

  return {axis, format, rowsByX, showData, smallMultiples};
})();
