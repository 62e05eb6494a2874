"""Signed JWTs for users of the API (demo, tests, operators).

Tokens are HS256 with ``sub`` = student id, ``role`` and ``exp``, exactly what
the API accepts (docs/api.md).
"""

from __future__ import annotations

import time

import jwt


def make_token(
    secret: str, student_id: str, role: str = "student", ttl_seconds: float = 86400
) -> str:
    """A token for ``student_id`` with ``role``, valid for ``ttl_seconds``."""
    claims = {"sub": student_id, "role": role, "exp": int(time.time() + ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")
