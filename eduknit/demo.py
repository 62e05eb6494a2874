"""Demo data: a realistic sample produced into a running stack through Kafka.

A catalog of courses and students in several time zones learning over the last
N days: enrollments, lessons with time spent and completions, quizzes with
retakes, a few unenrollments. Event ids derive from the seed, so running the demo
twice counts nothing twice. It waits until the pipeline applied the sample (by
reading the API), then prints the dashboard page's URL (signed in with a student's
token in its fragment), the token and curl lines.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer

from infra.settings import Settings
from infra.tokens import make_token
from schemas import catalog as catalog_schema
from schemas import events as events_schema

TITLES = [
    "Knitting 101", "Crochet Basics", "Colorwork Patterns", "Socks From Scratch",
    "Lace Knitting", "Sweater Design", "Natural Dyeing", "Spinning Yarn",
    "Amigurumi Toys", "Brioche Stitch", "Weaving Fundamentals", "Embroidery Essentials",
]  # fmt: skip
ZONES = [
    "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles",
    "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo", "Africa/Nairobi",
]  # fmt: skip


def catalog(courses: int) -> list[dict[str, Any]]:
    """The demo catalog."""
    rng = random.Random(courses)
    return [
        {"courseId": f"course-{i + 1:02d}", "title": TITLES[i % len(TITLES)],
         "totalLessons": rng.choice([8, 12, 16, 20, 24, 30])}
        for i in range(courses)
    ]  # fmt: skip


def student_events(
    rng: random.Random, student: str, courses: list[dict[str, Any]], days: int, now: dt.datetime
) -> Iterator[dict[str, Any]]:
    """One student's events in occurredAt order."""
    zone = rng.choice(ZONES)
    diligence = rng.uniform(0.1, 0.6)
    chosen = rng.sample(courses, rng.randint(1, min(4, len(courses))))
    serial = 0

    def event(kind: str, course: str, at: dt.datetime, **fields: Any) -> dict[str, Any]:
        nonlocal serial
        serial += 1
        return {
            "eventId": f"demo-{student}-{serial}", "type": kind, "studentId": student,
            "courseId": course, "occurredAt": at.isoformat().replace("+00:00", "Z"),
            "timezone": zone, **fields,
        }  # fmt: skip

    start = now - dt.timedelta(days=days)
    progress = {c["courseId"]: 0 for c in chosen}
    for course in chosen:
        yield event("enrolled", course["courseId"], start + dt.timedelta(hours=rng.randint(0, 72)))
    for day in range(days):
        if rng.random() > diligence:
            continue
        base = start + dt.timedelta(days=day, hours=rng.randint(4, 20), minutes=rng.randint(0, 59))
        if base > now - dt.timedelta(minutes=5):
            break
        course = rng.choice(chosen)
        cid, total = course["courseId"], course["totalLessons"]
        for step in range(rng.choice([1, 1, 1, 2])):
            at = base + dt.timedelta(minutes=25 * step)
            lesson = min(progress[cid] + 1, total)
            done = rng.random() < 0.7
            yield event(
                "lesson_progress", cid, at, lessonId=f"lesson-{lesson:02d}",
                moduleId=f"module-{(lesson - 1) // 4 + 1}", completed=done,
                timeSpent=rng.randint(5, 45),
            )  # fmt: skip
            if done:
                progress[cid] = lesson
                if lesson % 4 == 0:
                    quiz = f"quiz-{lesson // 4}"
                    for attempt in range(rng.choice([1, 1, 2])):
                        yield event(
                            "quiz_completed", cid, at + dt.timedelta(minutes=10 + attempt),
                            quizId=quiz, score=rng.randint(45 + 15 * attempt, 100), timeSpent=10,
                        )  # fmt: skip
    if len(chosen) > 1 and rng.random() < 0.05:
        yield event("unenrolled", chosen[-1]["courseId"], now - dt.timedelta(hours=1))


def produce(
    settings: Settings, students: int, courses: int, days: int, seed: int
) -> tuple[int, dict[str, str]]:
    """Produce the sample; return the count and each student's newest event id."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 20})
    entries = catalog(courses)
    for entry in entries:
        key = entry["courseId"].encode()
        producer.produce(catalog_schema.TOPIC, key=key, value=orjson.dumps(entry))
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    produced, newest = 0, {}
    for n in range(students):
        student = f"student-{n + 1:04d}"
        for ev in student_events(rng, student, entries, days, now):
            producer.produce(events_schema.TOPIC, key=student.encode(), value=orjson.dumps(ev))
            newest[student] = ev["eventId"]
            produced += 1
            if produced % 10_000 == 0:
                producer.flush()
    left = producer.flush(30)
    if left:
        raise RuntimeError(f"{left} demo messages not delivered to {settings.bootstrap_servers}")
    return produced, newest


def wait_applied(settings: Settings, newest: dict[str, str], timeout: float = 180) -> bool:
    """Wait until the newest event of a few students shows in their dashboard."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    admin = make_token(settings.jwt_secret, "demo-admin", role="admin", ttl_seconds=600)
    sample = list(newest.items())[-5:]
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as http:
        for student, event_id in sample:
            while True:
                try:
                    body = http.get("/api/dashboard/realtime", params={"studentId": student}).json()
                    if any(item["eventId"] == event_id for item in body.get("recentActivity", [])):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.5)
    return True


def run_demo(settings: Settings, students: int, courses: int, days: int, seed: int) -> int:
    """Produce the sample, wait for it, print how to look at it."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.monotonic()
    try:
        produced, newest = produce(settings, students, courses, days, seed)
    except Exception as exc:
        print(
            f"could not produce to Kafka at {settings.bootstrap_servers}: {exc}\n"
            "Is the stack running? Start it with `make run` in another terminal.",
            file=sys.stderr,
        )
        return 1
    print(
        f"produced {courses} courses and {produced} events for {students} students over "
        f"{days} days in {time.monotonic() - started:.1f} s; waiting for the pipeline..."
    )
    if not wait_applied(settings, newest):
        print("the pipeline has not applied the sample yet: is `make run` up?", file=sys.stderr)
        return 1
    student = "student-0001"
    token = make_token(settings.jwt_secret, student, ttl_seconds=7 * 86400)
    base = f"http://{settings.api_host}:{settings.api_port}"
    print(f"applied in {time.monotonic() - started:.1f} s. Dashboard of {student}:\n")
    print(f"open {base}/#token={token}\n")  # the page (the fragment never reaches the server)
    print(f"export TOKEN={token}")
    print(f'curl -s -H "Authorization: Bearer $TOKEN" {base}/api/dashboard/realtime')
    print(f'curl -s -H "Authorization: Bearer $TOKEN" "{base}/api/dashboard/statistics?days=30"')
    print(f"\nAPI docs: {base}/docs")
    return 0
