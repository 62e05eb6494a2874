// Recent activity: the last 10 counted events, newest first, with the points each earned.
import { el, timeOf } from "./format.js";

// "Lesson l3", but "lesson-03" as it is (ids are the source platform's)
const named = (kind, id) => (id.toLowerCase().startsWith(kind.toLowerCase()) ? id : `${kind} ${id}`);
const VERBS = {
  lesson_progress: (item) => named("Lesson", item.lessonId),
  quiz_completed: (item) => named("Quiz", item.quizId),
  enrolled: () => "Enrolled",
  unenrolled: () => "Left the course",
};

export function renderActivity(root, items, titles) {
  const list = root.querySelector("#recent");
  if (!items.length) {
    list.replaceChildren(el("li", { class: "empty" }, "Nothing yet."));
    return;
  }
  list.replaceChildren(...items.map((item) => {
    const what = (VERBS[item.type] ?? (() => item.type))(item);
    const course = titles.get(item.courseId) ?? item.courseId;
    const points = item.pointsAwarded > 0 ? el("span", { class: "points" }, ` +${item.pointsAwarded} points`) : null;
    return el("li", {}, el("span", {}, `${what} · ${course}`, points), timeOf(item.occurredAt));
  }));
}
