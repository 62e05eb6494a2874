// Notifications: level-ups, streak milestones and completed courses, newest first.
import { el, timeOf } from "./format.js";

const KINDS = { level_up: "Level up", streak_milestone: "Streak", course_completed: "Course completed" };

export function renderNotifications(root, notifications) {
  const list = root.querySelector("#notifications");
  if (!notifications.length) {
    list.replaceChildren(el("li", { class: "empty" }, "No notification yet."));
    return;
  }
  list.replaceChildren(...notifications.map((note) => el("li", {},
    el("span", {}, el("strong", {}, `${KINDS[note.kind] ?? note.kind}: `), note.message),
    timeOf(note.at))));
}
