"""Bearer tokens and who may read or write whose data (docs/api.md), without FastAPI.

Tokens are JWTs signed with HS256 and ``EDUKNIT_JWT_SECRET``; no other
algorithm is accepted (``none`` included). ``sub`` (the studentId, 1-128 chars)
is required, ``exp`` is enforced when present (``nbf`` too), ``role`` is
``student`` (default), ``service`` or ``admin``.

Access rules (the contract's, plus the choices where it is silent):

- reading: a student reads their own data; passing their own id as
  ``studentId`` is fine, another id is 403. ``admin`` and ``service`` may read
  anyone's with ``studentId``; without it they read the data of their own ``sub``.
- writing: a student writes for themselves only. ``service`` may write for
  anyone and must say for whom with ``studentId`` (422 when missing: a
  service's ``sub`` is not a learner). ``admin`` writes only for its own ``sub``
  (the contract grants admins reading, not writing, for others).
- a token with an unknown ``role`` is authentic but grants nothing: 403.

``AuthError`` carries the HTTP status (401 or 403) and a message safe to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jwt

ALGORITHM = "HS256"
ROLES = ("student", "service", "admin")
MAX_ID_LENGTH = 128

Role = Literal["student", "service", "admin"]


class AuthError(Exception):
    """Authentication (401) or authorization (403) failed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MissingStudentId(ValueError):
    """A service token wrote without saying for which student."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject and role."""

    subject: str
    role: Role


def decode_token(token: str, secret: str) -> Principal:
    """Verify a bearer token and return its principal; ``AuthError`` when it is not valid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError(401, "malformed bearer token") from exc
    if header.get("alg") != ALGORITHM:
        raise AuthError(401, f"token must be signed with {ALGORITHM}")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError(401, "token has expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthError(401, "token signature is invalid") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(401, "token has no 'sub' claim") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(401, f"invalid token: {exc}") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_ID_LENGTH:
        raise AuthError(401, "token 'sub' must be a student id of 1-128 characters")
    role = claims.get("role", "student")
    if role not in ROLES:
        raise AuthError(403, f"token role {role!r} is not one of {', '.join(ROLES)}")
    return Principal(subject=subject, role=role)


def student_to_read(principal: Principal, requested: str | None) -> str:
    """Whose data the caller reads; ``AuthError(403)`` when it may not."""
    if requested is None or requested == principal.subject:
        return principal.subject
    if principal.role in ("admin", "service"):
        return requested
    raise AuthError(403, "a student may only read their own dashboard")


def student_to_write(principal: Principal, requested: str | None) -> str:
    """For whom the caller writes; ``AuthError(403)`` or ``MissingStudentId`` when not allowed."""
    if principal.role == "service":
        if requested is None:
            raise MissingStudentId("studentId is required when a service writes events")
        return requested
    if requested is None or requested == principal.subject:
        return principal.subject
    raise AuthError(403, "only a service may write events for another student")
