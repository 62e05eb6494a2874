// The weekly activity: hours per local day over the last 7 days, oldest first, as a
// bar chart (7 bars, data-testid "day") and a table of the same numbers.
import { drawBars, fillTable } from "./chart.js";
import { dayText } from "./format.js";

export function renderWeekly(root, week) {
  const total = week.reduce((sum, day) => sum + day.hours, 0);
  drawBars(root.querySelector("#weekly-chart"), week.map((day) => ({
    label: day.day,
    value: day.hours,
    valueText: `${day.hours} h`,
    title: `${dayText(day.date)}: ${day.hours} h, ${day.lessonsCompleted} lessons completed`,
  })), {
    caption: `Hours of learning per day, last 7 days (${Math.round(total * 100) / 100} h in all)`,
    barTestid: "day",
    minScale: 0.5,
  });
  fillTable(root.querySelector("#weekly-table"), "Hours and lessons per day",
    [{ text: "Day" }, { text: "Hours", num: true }, { text: "Minutes", num: true }, { text: "Lessons completed", num: true }],
    week.map((day) => [dayText(day.date), day.hours, day.minutes, day.lessonsCompleted]));
}
