// EduKnit Learn — the leaderboard panel (docs/api.md § Leaderboards).
//
// A self-contained ES module: no imports, nothing from another host, plain DOM
// (every text from the API goes in with textContent). Mount it in an empty
// <section aria-labelledby="…"> the page owns; it writes the heading the
// section is labelled by, then the panel:
//
//   <section id="leaderboard" class="panel" aria-labelledby="leaderboard-title"></section>
//
//   import { mountLeaderboard } from "/static/js/leaderboard.js";
//   const board = mountLeaderboard(document.getElementById("leaderboard"), {
//     fetchJson: (path) => getJson(path),            // GET with the page's token: parsed JSON, or throws
//     putJson: (path, body) => putJson(path, body),  // PUT a JSON body likewise
//     tz: Intl.DateTimeFormat().resolvedOptions().timeZone,  // "today" is the browser's
//   });
//   board.refresh();   // optional, e.g. when the live stream shows new points
//   board.destroy();   // on sign-out: stops its timer and empties the section
//
// It reads GET /api/dashboard/realtime (the learner's courses, for the course
// selector), GET /api/leaderboard and GET/PUT /api/leaderboard/me, and reads
// the leaderboard again every 30 s while the tab is visible (the live stream
// carries no ranks). Period tabs are a radio group (arrow keys move between
// them); class names follow the page's stylesheet (periods, hint, empty,
// error, num). Test ids: leaderboard, leaderboard-entry, my-rank,
// my-percentile, leaderboard-visible.

const PERIODS = [
  ["week", "This week"],
  ["month", "Last 30 days"],
  ["all", "All time"],
];
const PERIOD_TEXT = { week: "this week", month: "the last 30 days", all: "all time" };
const LIMIT = 10;
const REFRESH_MS = 30_000;
const MAX_NAME = 40;
let mounted = 0;

// An element: make("p", {class: "hint"}, child, "text", …); null attributes are skipped.
function make(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// A number as the API's JSON writes it (a float keeps its ".0": 40.0).
function floatText(value) {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

function problem(error) {
  return error && error.message ? error.message : "the server could not be reached";
}

export function mountLeaderboard(section, { fetchJson, putJson, tz }) {
  mounted += 1;
  const id = (name) => `lb${mounted}-${name}`;
  let titleId = section.getAttribute("aria-labelledby");
  if (!titleId) {
    titleId = id("title");
    section.setAttribute("aria-labelledby", titleId);
  }
  if (!section.hasAttribute("data-testid")) section.setAttribute("data-testid", "leaderboard");
  const state = { period: "week", courseId: "", asked: 0, timer: null, courses: new Map() };

  // ---------------------------------------------------------------- controls
  const periods = make("fieldset", { class: "periods" }, make("legend", {}, "Period"));
  for (const [value, text] of PERIODS) {
    const input = make("input", {
      type: "radio", name: id("period"), value, checked: value === state.period ? "" : null,
    });
    input.addEventListener("change", () => {
      state.period = value;
      load();
    });
    periods.append(make("label", {}, input, ` ${text}`));
  }
  const courseSelect = make("select", { id: id("course") },
    make("option", { value: "" }, "All courses"));
  courseSelect.addEventListener("change", () => {
    state.courseId = courseSelect.value;
    load();
  });
  const courseField = make("p", {},
    make("label", { for: id("course") }, "Course "), courseSelect);

  // -------------------------------------------------------------- standings
  const myRank = make("strong", { "data-testid": "my-rank" }, "–");
  const myPercentile = make("strong", { "data-testid": "my-percentile" }, "–");
  const ranked = make("span", {}, "–");
  const myPoints = make("span", {}, "–");
  const standing = make("p", { "aria-live": "polite" },
    "Your rank: ", myRank, " of ", ranked, " · ", myPoints, " points · ahead of ",
    myPercentile, " % of ranked learners");
  const unrankedHint = make("p", { class: "hint", hidden: "" },
    "Earn points in this period to be ranked.");
  const caption = make("caption", {}, "Top learners");
  const body = make("tbody");
  const table = make("table", {}, caption, make("thead", {}, make("tr", {},
    make("th", { scope: "col", class: "num" }, "Rank"),
    make("th", { scope: "col" }, "Learner"),
    make("th", { scope: "col", class: "num" }, "Points"))), body);
  const empty = make("p", { class: "empty", hidden: "" },
    "Nobody has earned points in this period yet.");
  const status = make("p", { class: "error", role: "alert" });

  // ------------------------------------------------------------- visibility
  const visible = make("input", {
    type: "checkbox", role: "switch", id: id("visible"), "data-testid": "leaderboard-visible",
    "aria-describedby": id("privacy"),
  });
  const nameField = make("input", {
    type: "text", id: id("name"), maxlength: String(MAX_NAME), autocomplete: "nickname",
    spellcheck: "false",
  });
  const save = make("button", { type: "submit" }, "Save");
  const saved = make("p", { class: "hint", role: "status" });
  const form = make("form", {},
    make("fieldset", {},
      make("legend", {}, "Your visibility"),
      make("p", {}, visible, make("label", { for: id("visible") }, " Show me on leaderboards")),
      make("p", {}, make("label", { for: id("name") }, "Name to show "), nameField),
      make("p", { class: "hint", id: id("privacy") },
        "Unless you choose to show a name, other learners see you as “Learner <rank>”. " +
        `Names are 1–${MAX_NAME} characters.`),
      save, saved));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    storeSetting();
  });

  section.replaceChildren(
    make("h2", { id: titleId }, "Leaderboard"),
    periods, courseField, standing, unrankedHint, table, empty, status, form);

  // ------------------------------------------------------------------ reads
  function path() {
    const query = new URLSearchParams({ period: state.period, limit: String(LIMIT) });
    if (tz) query.set("tz", tz);
    if (state.courseId) query.set("courseId", state.courseId);
    return `/api/leaderboard?${query}`;
  }

  function render(answer) {
    const scope = answer.courseId
      ? state.courses.get(answer.courseId) || answer.courseId
      : "all courses";
    const dates = answer.from ? ` (${answer.from} to ${answer.to})` : "";
    caption.textContent = `Top learners, ${PERIOD_TEXT[answer.period]}, ${scope}${dates}`;
    body.replaceChildren(...answer.entries.map((entry) => make("tr", {
      "data-testid": "leaderboard-entry", "aria-current": entry.isMe ? "true" : null,
    },
    make("td", { class: "num" }, String(entry.rank)),
    make("td", {}, entry.isMe ? `${entry.name} (you)` : entry.name),
    make("td", { class: "num" }, String(entry.points)))));
    table.hidden = answer.entries.length === 0;
    empty.hidden = answer.entries.length !== 0;
    const me = answer.me;
    myRank.textContent = me.rank === null ? "–" : String(me.rank);
    myPercentile.textContent = floatText(me.percentile);
    ranked.textContent = String(answer.ranked);
    myPoints.textContent = String(me.points);
    unrankedHint.hidden = me.rank !== null;
  }

  async function load() {
    const asked = ++state.asked;
    try {
      const answer = await fetchJson(path());
      if (asked !== state.asked) return; // a newer choice was made meanwhile
      render(answer);
      status.textContent = "";
    } catch (error) {
      if (asked === state.asked) status.textContent = `Leaderboard unavailable: ${problem(error)}`;
    }
  }

  async function loadCourses() {
    try {
      const query = tz ? `?${new URLSearchParams({ tz })}` : "";
      const realtime = await fetchJson(`/api/dashboard/realtime${query}`);
      for (const course of realtime.courses || []) {
        state.courses.set(course.courseId, course.title || course.courseId);
        courseSelect.append(make("option", { value: course.courseId },
          course.title || course.courseId));
      }
    } catch (error) {
      status.textContent = `Courses unavailable: ${problem(error)}`;
    }
  }

  async function loadSetting() {
    try {
      const setting = await fetchJson("/api/leaderboard/me");
      visible.checked = Boolean(setting.visible);
      nameField.value = setting.name || "";
    } catch (error) {
      saved.textContent = `Your setting could not be read: ${problem(error)}`;
    }
  }

  async function storeSetting() {
    const name = nameField.value.trim();
    if (visible.checked && !name) {
      saved.textContent = "Choose a name to show.";
      nameField.focus();
      return;
    }
    if (name.length > MAX_NAME) {
      saved.textContent = `A name has at most ${MAX_NAME} characters.`;
      nameField.focus();
      return;
    }
    save.disabled = true;
    try {
      // No name while hidden removes the stored one.
      const setting = await putJson("/api/leaderboard/me",
        { visible: visible.checked, name: name || null });
      visible.checked = Boolean(setting.visible);
      nameField.value = setting.name || "";
      saved.textContent = setting.visible
        ? `Saved: others see you as “${setting.name}”.`
        : "Saved: others see you as “Learner <rank>”.";
      load();
    } catch (error) {
      saved.textContent = `Not saved: ${problem(error)}`;
    } finally {
      save.disabled = false;
    }
  }

  function tick() {
    if (!document.hidden) load();
  }

  state.timer = setInterval(tick, REFRESH_MS);
  loadCourses();
  loadSetting();
  load();

  return {
    refresh: load,
    destroy() {
      clearInterval(state.timer);
      state.asked += 1;
      section.replaceChildren();
    },
  };
}
