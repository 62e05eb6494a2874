"""Trust at the edge, installed on the app in one call (docs/api.md § What a student can
and cannot claim): request body limits (``api.limits``), CORS and offline docs
(``api.browser``), and the state of the student POST's admission rules
(``api.admission``). ``create_app`` calls ``install`` after adding the fast path and
before the metrics middleware, so the limits and CORS wrap the fast path and every
route, and their answers are counted.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.admission import Admission
from api.browser import install_cors, install_docs
from api.limits import BodyLimits
from infra.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Body limits and CORS around what is installed so far, the docs, the admission state."""
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.max_body_bytes,
        max_batch_bytes=settings.max_batch_body_bytes,
        max_depth=settings.max_json_depth,
    )
    install_cors(app, settings.cors_origin_list)  # outside the limits: a 413 carries CORS too
    install_docs(app)
    app.state.admission = Admission(settings.student_posts_per_minute)
