// A card per enrolled course (newest activity first, as /realtime sorts them), each
// with a <progress> bar and the progress number (data-testid course-progress).
import { el, floatText, timeOf } from "./format.js";

export function renderCourses(root, courses) {
  const list = root.querySelector("#courses");
  list.replaceChildren(...courses.map(card));
  root.querySelector("#courses-empty").hidden = courses.length > 0;
}

function card(course) {
  const name = course.title ?? course.courseId;
  const progress = floatText(course.progress);
  const lessons = course.totalLessons === null
    ? `${course.completedLessons} lessons completed`
    : `${course.completedLessons} of ${course.totalLessons} lessons`;
  const status = course.status === "completed" ? "Completed" : "In progress";
  return el("li", { class: "card", "data-testid": `course-${course.courseId}` },
    el("h3", {}, name),
    el("p", {}, el("span", { class: `badge ${course.status}` }, status)),
    el("progress", { max: "100", value: String(course.progress), "aria-label": `${name}: ${progress} % complete` }),
    el("p", {}, el("span", { class: "pct" }, el("span", { "data-testid": "course-progress" }, progress), " %"),
      ` · ${lessons} · ${Math.round(course.timeSpentMinutes)} min`),
    course.lastActivityAt ? el("p", {}, "Last activity ", timeOf(course.lastActivityAt)) : null,
  );
}
