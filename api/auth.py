"""Bearer tokens and who may read or write whose data (docs/api.md), without FastAPI.

Tokens are JWTs signed with HS256 and ``EDUKNIT_JWT_SECRET``; no other
algorithm is accepted (``none`` included). ``sub`` (the studentId, 1-128 chars
without control characters) is required, ``exp`` is enforced when present
(``nbf`` too) and required in production (``TokenPolicy``, with the clock
leeway of ``EDUKNIT_JWT_LEEWAY_SECONDS``), ``role`` is ``student`` (default),
``service`` or ``admin``.

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

from infra.settings import Settings
from schemas.events import CONTROL_CHARACTERS

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


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """How strictly tokens are checked: ``exp`` required (production) and the clock
    leeway allowed on ``exp`` and ``nbf`` (``EDUKNIT_JWT_LEEWAY_SECONDS``)."""

    require_exp: bool = False
    leeway_seconds: float = 0.0


LENIENT = TokenPolicy()


def token_policy(settings: Settings) -> TokenPolicy:
    """The policy of the settings: ``exp`` required in production, their leeway."""
    return TokenPolicy(settings.require_token_exp, settings.jwt_leeway_seconds)


def decode_token(token: str, secret: str, policy: TokenPolicy = LENIENT) -> Principal:
    """Verify a bearer token and return its principal; ``AuthError`` when it is not valid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError(401, "malformed bearer token") from exc
    if header.get("alg") != ALGORITHM:
        raise AuthError(401, f"token must be signed with {ALGORITHM}")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp"] if policy.require_exp else ["sub"]},
            leeway=policy.leeway_seconds,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError(401, "token has expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthError(401, "token signature is invalid") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(401, f"token has no '{exc.claim}' claim") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(401, f"invalid token: {exc}") from exc
    subject = claims.get("sub")
    if (
        not isinstance(subject, str)
        or not 1 <= len(subject) <= MAX_ID_LENGTH
        or CONTROL_CHARACTERS.search(subject) is not None
    ):
        raise AuthError(
            401, "token 'sub' must be a student id of 1-128 characters without control characters"
        )
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
