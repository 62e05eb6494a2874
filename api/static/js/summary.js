// The summary tiles: points, level (and the points to the next), streaks, courses,
// average progress. Each number is the text /realtime's JSON has for it.
import { floatText, setText } from "./format.js";

export function renderSummary(root, summary) {
  setText(root, "total-points", summary.totalPoints);
  setText(root, "level", summary.level);
  setText(root, "current-streak", summary.currentStreak);
  setText(root, "longest-streak", summary.longestStreak);
  setText(root, "enrolled-courses", summary.enrolledCourses);
  setText(root, "average-progress", floatText(summary.averageProgress));
  const progress = root.querySelector("#level-progress");
  progress.value = 100 - summary.pointsToNextLevel;
  progress.setAttribute("aria-label", `Progress to level ${summary.level + 1}`);
  root.querySelector("#level-next").textContent =
    `${summary.pointsToNextLevel} points to level ${summary.level + 1}`;
}
