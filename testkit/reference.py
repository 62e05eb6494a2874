"""An independent, naive reference of docs/api.md: dashboards straight from events.

It shares no code with the pipeline: it deduplicates by ``eventId``, sorts the
whole history by ``occurredAt`` and replays the rules literally. Integration and
fault tests compare every field the API returns with what this computes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _zone(label: str) -> dt.tzinfo:
    if label[:1] in "+-":
        sign = -1 if label[0] == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(label[1:3]), minutes=int(label[4:6])))
    return ZoneInfo(label)


def _local_date(event: dict[str, Any]) -> dt.date:
    at = _parse(event["occurredAt"])
    return at.astimezone(ZoneInfo(event["timezone"])).date() if event.get("timezone") else at.date()


def _zone_label(event: dict[str, Any]) -> str:
    if event.get("timezone"):
        return str(event["timezone"])
    offset = _parse(event["occurredAt"]).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _iso(at: dt.datetime) -> str:
    at = at.astimezone(dt.UTC)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    ms = at.microsecond // 1000
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


class Reference:
    """Replays one student's events in occurredAt order.

    ``catalog``: course -> (title, totalLessons) or (title, totalLessons, lessons),
    ``lessons`` the ids the entry lists (None: no list). The lesson rules of
    docs/api.md § What a student can and cannot claim, literally: taken in
    (occurredAt, eventId) order, a first completion counts when the course's entry
    lists its lesson (or lists none) and fewer than totalLessons of the course's
    first completions counted before it; only those earn 10 points and count as
    completed lessons, on their local date.
    """

    def __init__(self, events: list[dict[str, Any]], catalog: dict[str, tuple[Any, ...]]) -> None:
        unique: dict[str, dict[str, Any]] = {}
        for event in events:
            unique.setdefault(event["eventId"], event)
        self.events = sorted(unique.values(), key=lambda e: (_parse(e["occurredAt"]), e["eventId"]))
        self.catalog = {course: (entry[0], entry[1]) for course, entry in catalog.items()}
        self.lists = {
            course: set(entry[2])
            for course, entry in catalog.items()
            if len(entry) > 2 and entry[2] is not None
        }
        self.counted_first: dict[str, int] = defaultdict(int)  # course -> first completions counted
        self.points_of: dict[str, int] = {}
        self.course_day_points: dict[tuple[dt.date, str], int] = defaultdict(int)
        # Minutes and scores are summed as exact decimals (then shown as floats).
        self.day: dict[dt.date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        self.day_course: dict[tuple[dt.date, str], dict[str, Decimal]] = defaultdict(
            lambda: defaultdict(Decimal)
        )
        self.active: set[dt.date] = set()
        self.first_done: dict[tuple[str, str], dt.datetime] = {}
        self.best: dict[tuple[str, str], float] = {}
        self.enroll: dict[str, dt.datetime] = {}
        self.unenroll: dict[str, dt.datetime] = {}
        self.reported: dict[str, float] = {}
        self.reported_at: dict[str, dt.datetime] = {}
        self.first_of_day: dict[dt.date, dt.datetime] = {}
        self.minutes: dict[str, Decimal] = defaultdict(Decimal)
        self.last_activity: dict[str, dt.datetime] = {}
        for event in self.events:
            self._apply(event)

    def _apply(self, e: dict[str, Any]) -> None:
        at, date, course = _parse(e["occurredAt"]), _local_date(e), e["courseId"]
        kind, points = e["type"], 0
        if kind == "unenrolled":
            self.unenroll[course] = at
        else:
            self.enroll[course] = at
        if e.get("progress") is not None:
            self.reported[course] = e["progress"]
            self.reported_at[course] = at
        if kind in ("lesson_progress", "quiz_completed"):
            minutes = Decimal(str(e.get("timeSpent", 0)))
            self.minutes[course] += minutes
            self.day[date]["minutes"] += minutes
            self.day_course[(date, course)]["minutes"] += minutes
            self.last_activity[course] = at
        if kind == "lesson_progress" and e["completed"]:
            self.active.add(date)
            self.first_of_day.setdefault(date, at)  # events come in occurredAt order
            key = (course, e["lessonId"])
            if key not in self.first_done and self._counts(course, e["lessonId"]):
                self.first_done[key] = at
                self.counted_first[course] += 1
                points = 10
                self.day[date]["lessons"] += 1
                self.day_course[(date, course)]["lessons"] += 1
        if kind == "quiz_completed":
            key = (course, e["quizId"])
            previous = self.best.get(key, 0.0)
            best = max(previous, e["score"])
            self.best[key] = best
            points = math.floor(best / 10) - math.floor(previous / 10)
            self.day[date]["quizzes"] += 1
            self.day[date]["scores"] += Decimal(str(e["score"]))
        self.day[date]["points"] += points
        self.course_day_points[(date, course)] += points
        self.points_of[e["eventId"]] = points

    def _counts(self, course: str, lesson: str) -> bool:
        """Whether a first completion of ``lesson`` counts, given those counted before it."""
        if course in self.lists and lesson not in self.lists[course]:
            return False
        return course not in self.catalog or self.counted_first[course] < self.catalog[course][1]

    # ------------------------------------------------------------------ views
    def today(self, now: dt.datetime, tz: str | None = None) -> dt.date:
        if tz:
            return now.astimezone(ZoneInfo(tz)).date()
        if self.events:
            return now.astimezone(_zone(_zone_label(self.events[-1]))).date()
        return now.astimezone(dt.UTC).date()

    def enrolled(self) -> list[str]:
        return [
            c for c, at in self.enroll.items() if c not in self.unenroll or self.unenroll[c] <= at
        ]

    def progress(self, course: str) -> float:
        completed = sum(1 for (c, _) in self.first_done if c == course)
        if course in self.catalog and self.catalog[course][1] > 0:
            return min(100.0, round(100 * completed / self.catalog[course][1], 1))
        return float(self.reported.get(course, 0.0))

    def total_points(self) -> int:
        return sum(self.points_of.values())

    def streaks(self, today: dt.date) -> tuple[int, int]:
        longest, run, previous = 0, 0, None
        for day in sorted(self.active):
            run = run + 1 if previous is not None and day - previous == dt.timedelta(1) else 1
            longest, previous = max(longest, run), day
        end = today if today in self.active else today - dt.timedelta(1)
        current = 0
        while end in self.active:
            current, end = current + 1, end - dt.timedelta(1)
        return current, longest

    def summary(self, today: dt.date) -> dict[str, Any]:
        enrolled = self.enrolled()
        points = self.total_points()
        current, longest = self.streaks(today)
        # The exact mean (a float sum drifts: 33.3 + 18.8 = 52.099999999999994), then round().
        exact = sum(Decimal(str(self.progress(c))) for c in enrolled)
        average = round(float(exact / len(enrolled)), 1) if enrolled else 0
        return {
            "enrolledCourses": len(enrolled), "averageProgress": average,
            "currentStreak": current, "longestStreak": longest, "totalPoints": points,
            "level": points // 100 + 1, "pointsToNextLevel": 100 - points % 100,
        }  # fmt: skip

    def courses(self) -> list[dict[str, Any]]:
        result = []
        for course in self.enrolled():
            title, total = self.catalog.get(course, (None, None))
            progress = self.progress(course)
            last = self.last_activity.get(course)
            result.append({
                "courseId": course, "title": title,
                "completedLessons": sum(1 for (c, _) in self.first_done if c == course),
                "totalLessons": total if course in self.catalog else None, "progress": progress,
                "status": "completed" if progress >= 100 else "active",
                "timeSpentMinutes": float(self.minutes.get(course, 0.0)),
                "lastActivityAt": _iso(last) if last else None,
            })  # fmt: skip
        return result

    def weekly(self, today: dt.date) -> list[dict[str, Any]]:
        days = []
        for back in range(6, -1, -1):
            date = today - dt.timedelta(back)
            minutes = float(self.day[date]["minutes"]) if date in self.day else 0.0
            lessons = int(self.day[date]["lessons"]) if date in self.day else 0
            days.append({
                "date": date.isoformat(), "day": WEEKDAYS[date.weekday()], "minutes": minutes,
                "hours": round(minutes / 60, 2), "lessonsCompleted": lessons,
            })  # fmt: skip
        return days

    def notifications(self) -> list[dict[str, Any]]:
        """The API's notification rules (api/notifications.py), replayed literally."""
        found: list[tuple[dt.datetime, str, str]] = []
        total = 0
        for e in self.events:
            before, total = total, total + self.points_of[e["eventId"]]
            for level in range(before // 100 + 2, total // 100 + 2):
                found.append((_parse(e["occurredAt"]), "level_up", f"Reached level {level}"))
        run, previous = 0, None
        for day in sorted(self.active):
            run = run + 1 if previous is not None and day - previous == dt.timedelta(1) else 1
            if run in (3, 7, 14, 30, 60, 100, 365):
                found.append(
                    (self.first_of_day[day], "streak_milestone", f"{run}-day learning streak")
                )
            previous = day
        for course in self.enrolled():
            if self.progress(course) < 100:
                continue
            title, lessons = self.catalog.get(course, (None, 0))
            done = sorted(at for (c, _), at in self.first_done.items() if c == course)
            if lessons and done:
                at = done[min(lessons, len(done)) - 1]
            else:
                at = self.reported_at.get(course) or self.last_activity[course]
            found.append(
                (at, "course_completed", f'Completed "{title}"' if title else f"Completed {course}")
            )
        found.sort(key=lambda item: (-item[0].timestamp(), item[1], item[2]))
        return [{"kind": k, "message": m, "at": _iso(at)} for at, k, m in found[:10]]

    def recent(self) -> list[dict[str, Any]]:
        return [
            {"eventId": e["eventId"], "type": e["type"], "courseId": e["courseId"],
             "lessonId": e.get("lessonId"), "quizId": e.get("quizId"),
             "occurredAt": _iso(_parse(e["occurredAt"])),
             "pointsAwarded": self.points_of[e["eventId"]]}
            for e in reversed(self.events[-10:])
        ]  # fmt: skip

    def statistics(self, today: dt.date, days: int) -> dict[str, Any]:
        dates = [today - dt.timedelta(back) for back in range(days - 1, -1, -1)]
        daily = []
        for date in dates:
            d = self.day.get(date, {})
            daily.append({
                "date": date.isoformat(), "minutes": float(d.get("minutes", 0.0)),
                "lessonsCompleted": int(d.get("lessons", 0)),
                "quizzesCompleted": int(d.get("quizzes", 0)), "points": int(d.get("points", 0)),
            })  # fmt: skip
        quizzes = sum(int(self.day[d]["quizzes"]) for d in dates if d in self.day)
        scores = float(sum(self.day[d]["scores"] for d in dates if d in self.day))
        minutes = float(sum(self.day[d]["minutes"] for d in dates if d in self.day))
        totals = {
            "minutes": minutes, "hours": round(minutes / 60, 2),
            "lessonsCompleted": sum(x["lessonsCompleted"] for x in daily),
            "quizzesCompleted": quizzes,
            "averageQuizScore": round(scores / quizzes, 1) if quizzes else None,
            "activeDays": sum(1 for d in dates if d in self.active),
            "pointsEarned": sum(x["points"] for x in daily),
        }  # fmt: skip
        per_course: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        period = set(dates)
        for (date, course), values in self.day_course.items():
            if date in period:
                per_course[course]["minutes"] += values["minutes"]
                per_course[course]["lessons"] += values["lessons"]
        courses = sorted(
            ({"courseId": c, "minutes": float(v["minutes"]), "lessonsCompleted": int(v["lessons"]),
              "progress": self.progress(c)} for c, v in per_course.items()),
            key=lambda x: (-x["minutes"], x["courseId"]),
        )  # fmt: skip
        return {
            "days": days, "from": dates[0].isoformat(), "to": dates[-1].isoformat(),
            "totals": totals, "daily": daily, "courses": courses,
        }  # fmt: skip
