"""The leaderboards of one API process: kept rankings, visible names and their refresher.

``Leaderboards`` is what the routes of ``api.routes.leaderboard`` use. A read
is answered from a kept ranking and the kept names without I/O when both are
there (``kept_body``), else after building what is missing (``body``,
blocking). A setting is written to ClickHouse and applied to this process's
names at once (``save``); other API processes read it within their refresh
interval. The zone of a requester's latest event ("today" without ``tz``) is
kept while the change feed says nothing of theirs changed. ``start``
subscribes the rankings and zones to the change feed and starts the
refresher; ``stop`` stops it. See ``api.leaderboard_cache`` for freshness and
bounds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from api import leaderboard_store
from api.change_feed import ChangeFeed
from api.leaderboard_cache import ProfileBook, Rankings, RefreshThread, ZoneCache
from api.leaderboard_store import Profile, ProfileRow
from api.ranking import Ranking, RankingKey, answer_body
from infra.settings import Settings


class Leaderboards:
    """Rankings and names of one API process (see the module)."""

    def __init__(self, client: Any, refresh_seconds: float, max_learners: int) -> None:
        self.client = client
        self.rankings = Rankings(
            lambda key: leaderboard_store.read_ranking(client, key),
            refresh_seconds=refresh_seconds,
            max_learners=max_learners,
        )
        self.profiles = ProfileBook(lambda after: leaderboard_store.read_profiles(client, after))
        self.zones = ZoneCache()
        self.interval = max(0.05, refresh_seconds / 4)
        self._thread: RefreshThread | None = None

    @classmethod
    def from_settings(cls, client: Any, settings: Settings) -> Leaderboards:
        return cls(
            client, settings.leaderboard_refresh_seconds, settings.leaderboard_cache_learners
        )

    def start(self, feed: ChangeFeed | None) -> None:
        """Hear of changes from ``feed`` (None: rebuild by age alone) and start refreshing."""
        if feed is not None:
            feed.subscribe(self.rankings)
            feed.subscribe(self.zones)
        self._thread = RefreshThread(self.rankings, self.profiles, self.interval).start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    # ----------------------------------------------------------------- reads
    def _body(
        self, ranking: Ranking, key: RankingKey, today: dt.date, limit: int, requester: str,
        show_ids: bool,
    ) -> bytes:  # fmt: skip
        body = answer_body(
            ranking, key, today, limit, requester,
            show_ids=show_ids, visible_name=self.profiles.visible_name,
        )  # fmt: skip
        return orjson.dumps(body)

    def kept_body(
        self, key: RankingKey, today: dt.date, limit: int, requester: str, show_ids: bool
    ) -> bytes | None:
        """The answer from kept copies only (no I/O), or None when one is missing."""
        if not self.profiles.loaded:
            return None
        ranking = self.rankings.kept(key)
        if ranking is None:
            return None
        return self._body(ranking, key, today, limit, requester, show_ids)

    def body(
        self, key: RankingKey, today: dt.date, limit: int, requester: str, show_ids: bool
    ) -> bytes:
        """The answer, reading what is not kept yet (blocking)."""
        if not self.profiles.loaded:
            self.profiles.refresh()
        ranking = self.rankings.get(key)
        return self._body(ranking, key, today, limit, requester, show_ids)

    def latest_zone(self, student_id: str) -> str:
        """The zone label of the learner's most recent event (blocking unless kept)."""
        label = self.zones.get(student_id)
        if label is None:
            started = self.zones.clock()
            label = leaderboard_store.latest_zone(self.client, student_id)
            self.zones.put(student_id, label, started)
        return label

    # -------------------------------------------------------------- settings
    def setting(self, student_id: str) -> Profile:
        """The learner's stored setting (blocking)."""
        return leaderboard_store.read_profile(self.client, student_id)

    def save(self, student_id: str, profile: Profile, now: dt.datetime) -> Profile:
        """Store a setting and apply it to this process's names at once (blocking)."""
        version = self.profiles.next_version(leaderboard_store.version_now(now))
        leaderboard_store.write_profile(self.client, student_id, profile, version)
        self.profiles.apply(ProfileRow(student_id, profile.visible, profile.name, version))
        return profile
