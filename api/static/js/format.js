// Small helpers the views share: building elements and writing numbers and times.

// An element: el("li", {class: "card", "data-testid": "x"}, child, "text", ...).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// A number as the API's JSON writes it: floats keep their ".0" (40.0, not 40), so the
// page shows exactly the text of /realtime (the API writes floats with Python's repr).
export function floatText(value) {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

// The text of every [data-testid=name] inside root.
export function setText(root, testid, text) {
  for (const node of root.querySelectorAll(`[data-testid="${testid}"]`)) {
    node.textContent = String(text);
  }
}

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const day = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", timeZone: "UTC" });

// A <time> of an RFC 3339 instant, shown in the browser's zone.
export function timeOf(iso) {
  return el("time", { datetime: iso }, when.format(new Date(iso)));
}

// "Fri, Nov 20" for a local date "2026-11-20" (a date, so no zone moves it).
export function dayText(isoDate) {
  return day.format(new Date(`${isoDate}T00:00:00Z`));
}

const short = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

// "Nov 20" for a local date "2026-11-20".
export function shortDay(isoDate) {
  return short.format(new Date(`${isoDate}T00:00:00Z`));
}

export function hoursText(minutes) {
  const hours = minutes / 60;
  return `${hours >= 10 ? hours.toFixed(0) : hours.toFixed(1)} h`;
}
