// A bar chart drawn in SVG (no library): one <g> per bar, holding the bar, its
// label and a <title> (the tooltip). Screen readers get the figure's caption; the
// numbers themselves are in a <table> beside each chart.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 200; // drawn in CSS pixels: as wide as the figure, always this high
const TOP = 22; // room for the values above the bars
const BOTTOM = 26; // room for the labels below
const LABEL_WIDTH = 56; // a label every this many pixels at most (a week: every day)
const VALUE_WIDTH = 34; // values above the bars only when bars are this far apart

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

// Draw `bars` ([{label, value, title, valueText}]) into `figure`, replacing what it
// held. `barTestid` marks each bar's <g>; labels and values are thinned out when the
// bars are narrow; `minScale` keeps a few small values from filling the height.
export function drawBars(figure, bars, { caption, barTestid = null, minScale = 1 }) {
  const WIDTH = Math.max(280, Math.round(figure.clientWidth || 700));
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": caption });
  const scale = Math.max(minScale, ...bars.map((bar) => bar.value));
  const plot = HEIGHT - TOP - BOTTOM;
  const step = WIDTH / Math.max(bars.length, 1);
  const width = Math.max(1, Math.min(56, step * (step < 8 ? 0.9 : 0.6)));
  const labelEvery = bars.length <= 7 ? 1 : Math.max(1, Math.ceil(LABEL_WIDTH / step));
  const showValues = step >= VALUE_WIDTH;
  chart.append(svg("line", { class: "axis", x1: 0, x2: WIDTH, y1: TOP + plot, y2: TOP + plot }));
  bars.forEach((bar, i) => {
    const group = svg("g", barTestid ? { "data-testid": barTestid } : {});
    const height = bar.value > 0 ? Math.max(2, (bar.value / scale) * plot) : 2;
    const x = i * step + (step - width) / 2;
    group.append(
      svg("title", {}, bar.title),
      svg("rect", { class: bar.value > 0 ? "bar" : "bar zero", x, width, y: TOP + plot - height, height, rx: Math.min(4, width / 3) }),
    );
    if (showValues && bar.value > 0) {
      group.append(svg("text", { class: "value", x: x + width / 2, y: TOP + plot - height - 6, "text-anchor": "middle" }, bar.valueText));
    }
    const last = i === bars.length - 1;
    if (labelEvery === 1 || last || (i % labelEvery === 0 && i < bars.length - labelEvery)) {
      const anchor = labelEvery === 1 ? "middle" : i === 0 ? "start" : last ? "end" : "middle";
      const at = anchor === "start" ? x : anchor === "end" ? x + width : x + width / 2;
      group.append(svg("text", { x: at, y: HEIGHT - 8, "text-anchor": anchor }, bar.label));
    }
    chart.append(group);
  });
  const legend = document.createElement("figcaption");
  legend.textContent = caption;
  figure.replaceChildren(chart, legend);
}

// Fill `table` with a caption, a header row and rows of cells ({text, num}).
export function fillTable(table, caption, headers, rows) {
  const head = document.createElement("tr");
  for (const header of headers) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = header.text;
    if (header.num) th.className = "num";
    head.append(th);
  }
  const body = document.createElement("tbody");
  for (const row of rows) {
    const tr = document.createElement("tr");
    row.forEach((cell, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      td.textContent = String(cell);
      if (headers[i].num) td.className = "num";
      tr.append(td);
    });
    body.append(tr);
  }
  const title = document.createElement("caption");
  title.textContent = caption;
  const thead = document.createElement("thead");
  thead.append(head);
  table.replaceChildren(title, thead, body);
}
