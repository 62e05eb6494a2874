// The page's entry point: sign-in, the parameters every request carries, the live
// stream feeding the views, the statistics view, and the local-midnight refresh.
//
// The token comes from the sign-in field or the URL fragment (#token=..., removed from
// the address bar at once; a fragment never reaches the server) and is kept for the
// tab in sessionStorage. It is sent only in the Authorization header. Every request
// carries tz (the browser's zone decides "today") and, when the page's URL has one,
// studentId (a teacher or admin token reads that student's dashboard).
import { renderActivity } from "./activity.js";
import { renderCourses } from "./courses.js";
import { mountLeaderboard } from "./leaderboard.js";
import { renderNotifications } from "./notifications.js";
import { statisticsView } from "./statistics.js";
import { followStream, problemOf } from "./stream.js";
import { renderSummary } from "./summary.js";
import { renderWeekly } from "./weekly.js";

const TOKEN_KEY = "eduknit.token";
const STATUS = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", failed: "Not connected", "signed-out": "Signed out" };

const page = document.querySelector("main");
const status = document.querySelector("#live-status");
const signOutButton = document.querySelector("#sign-out");
const viewed = new URLSearchParams(location.search).get("studentId");
let zone = Intl.DateTimeFormat().resolvedOptions().timeZone || null;
let session = null; // {token, controller, midnight}
let titles = new Map(); // courseId -> title, from the latest dashboard

function query(extra = {}) {
  const params = new URLSearchParams(extra);
  if (zone) params.set("tz", zone);
  if (viewed) params.set("studentId", viewed);
  return params.toString();
}

async function getJson(path, extra = {}) {
  const response = await fetch(`${path}?${query(extra)}`, {
    headers: { Authorization: `Bearer ${session.token}` }, cache: "no-store",
  });
  if (!response.ok) throw await problemOf(response);
  return response.json();
}

// The leaderboard panel's own requests: the path carries its query; "me" is the token's.
async function authJson(path, method = "GET", body = undefined) {
  const response = await fetch(path, {
    method, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
    headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
  });
  if (!response.ok) throw await problemOf(response);
  return response.json();
}
let board = null;

const statistics = statisticsView(page, (days) => getJson("/api/dashboard/statistics", { days }), () => titles);
let statisticsDue = null;

function render(body) {
  titles = new Map(body.courses.map((course) => [course.courseId, course.title ?? course.courseId]));
  renderSummary(page, body.summary);
  renderCourses(page, body.courses);
  renderWeekly(page, body.weeklyActivity);
  renderActivity(page, body.recentActivity, titles);
  renderNotifications(page, body.notifications);
  clearTimeout(statisticsDue); // one statistics read for a burst of changes
  statisticsDue = setTimeout(statistics.refresh, 200);
}

function showStatus(state, detail = null) {
  status.dataset.state = state;
  let text = STATUS[state];
  if (state === "reconnecting" && detail) text = `Reconnecting in ${Math.ceil(detail.retryInMs / 1000)} s: ${detail.reason}`;
  if (state === "failed" && detail) text = `Not connected: ${detail.message}`;
  status.textContent = text;
}

function onRefused(problem) {
  if (problem.status === 422 && problem.field === "tz" && zone) {
    zone = null; // the API does not know this browser's zone: let it decide "today"
    follow();
  } else if (problem.status === 401) {
    signOut(`The token was refused: ${problem.message}`);
  } else {
    showStatus("failed", problem);
  }
}

// (Re)start following the stream from the current state (no Last-Event-ID).
function follow() {
  session.controller?.abort();
  const controller = new AbortController();
  session.controller = controller;
  followStream(`/api/dashboard/stream?${query()}`, {
    token: session.token,
    signal: controller.signal,
    onEvent: render,
    onStatus: (state, detail) => (state === "failed" ? onRefused(detail) : showStatus(state, detail)),
  });
  clearTimeout(session.midnight);
  session.midnight = setTimeout(follow, msToLocalMidnight() + 1000); // a new "today"
}

function msToLocalMidnight() {
  const now = new Date();
  return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1) - now;
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  session = { token, controller: null, midnight: null };
  const who = claims(token);
  const student = viewed ?? who.sub ?? "?";
  document.querySelector("#who").textContent =
    viewed && viewed !== who.sub ? `${who.sub} (${who.role}) viewing ${student}` : `Signed in as ${student}`;
  document.querySelector("#title").textContent = viewed ? `Dashboard of ${student}` : "Your dashboard";
  document.querySelector("#sign-in").hidden = true;
  document.querySelector("#dashboard").hidden = false;
  signOutButton.hidden = false;
  follow();
  board?.destroy();
  board = viewed ? null : mountLeaderboard(document.querySelector("#leaderboard"), {
    fetchJson: (path) => authJson(path),
    putJson: (path, body) => authJson(path, "PUT", body),
    tz: zone,
  });
  document.querySelector("#leaderboard").hidden = board === null; // "me" is the token's
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  if (session) {
    session.controller?.abort();
    clearTimeout(session.midnight);
  }
  session = null;
  board?.destroy();
  board = null;
  showStatus("signed-out");
  document.querySelector("#who").textContent = "";
  document.querySelector("#dashboard").hidden = true;
  document.querySelector("#sign-in").hidden = false;
  document.querySelector("#sign-in-error").textContent = message;
  signOutButton.hidden = true;
  document.querySelector("#token-field").focus();
}

function tokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (!token) return null;
  fragment.delete("token"); // out of the address bar, the history and any bookmark
  const rest = fragment.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return token;
}

document.querySelector("#sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = document.querySelector("#token-field");
  const token = field.value.trim();
  field.value = "";
  if (token) signIn(token);
});
signOutButton.addEventListener("click", () => signOut());

const token = tokenFromFragment() ?? sessionStorage.getItem(TOKEN_KEY);
if (token) signIn(token);
else signOut();
