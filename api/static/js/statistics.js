// The statistics view: a period selector (7, 30, 90, 365 days), the period's totals,
// a daily chart of minutes, and tables of the numbers (per day, per course).
// `load(days)` fetches /api/dashboard/statistics; `refresh()` loads the current period
// again (main.js calls it when the live stream says the dashboard changed).
import { drawBars, fillTable } from "./chart.js";
import { dayText, el, floatText, hoursText, shortDay } from "./format.js";

export function statisticsView(root, load, titles) {
  const periods = root.querySelector("#periods");
  const error = root.querySelector("#statistics-error");
  let asked = 0; // answers to an older request are dropped

  async function refresh() {
    const days = Number(periods.querySelector("input:checked").value);
    const mine = ++asked;
    try {
      const body = await load(days);
      if (mine !== asked) return;
      error.textContent = "";
      render(root, body, titles());
    } catch (problem) {
      if (mine === asked) error.textContent = `Statistics unavailable: ${problem.message}`;
    }
  }

  periods.addEventListener("change", refresh);
  return { refresh };
}

function render(root, body, titles) {
  const totals = body.totals;
  const tiles = [
    ["Time learning", hoursText(totals.minutes)],
    ["Lessons completed", totals.lessonsCompleted],
    ["Quizzes taken", totals.quizzesCompleted],
    ["Average quiz score", totals.averageQuizScore === null ? "–" : `${floatText(totals.averageQuizScore)} %`],
    ["Active days", `${totals.activeDays} of ${body.days}`],
    ["Points earned", totals.pointsEarned],
  ];
  root.querySelector("#statistics-totals").replaceChildren(...tiles.map(([label, value]) =>
    el("div", { class: "tile" }, el("dt", {}, label), el("dd", { class: "big" }, String(value)))));

  drawBars(root.querySelector("#daily-chart"), body.daily.map((day) => ({
    label: shortDay(day.date),
    value: day.minutes,
    valueText: `${Math.round(day.minutes)}`,
    title: `${dayText(day.date)}: ${day.minutes} min, ${day.lessonsCompleted} lessons, ${day.quizzesCompleted} quizzes, ${day.points} points`,
  })), {
    caption: `Minutes of learning per day, ${body.from} to ${body.to}`,
    minScale: 30,
  });
  fillTable(root.querySelector("#daily-table"), "Day by day",
    [{ text: "Day" }, { text: "Minutes", num: true }, { text: "Lessons", num: true }, { text: "Quizzes", num: true }, { text: "Points", num: true }],
    body.daily.map((day) => [day.date, day.minutes, day.lessonsCompleted, day.quizzesCompleted, day.points]));
  fillTable(root.querySelector("#course-statistics"), "Per course",
    [{ text: "Course" }, { text: "Minutes", num: true }, { text: "Lessons", num: true }, { text: "Progress %", num: true }],
    body.courses.map((course) => [titles.get(course.courseId) ?? course.courseId, course.minutes, course.lessonsCompleted, floatText(course.progress)]));
}
