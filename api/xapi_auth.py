"""Who may post xAPI statements (docs/ingest.md), without FastAPI.

Either a bearer token (``api.auth.decode_token``) whose role is ``service``, or
HTTP Basic with the key and secret of ``EDUKNIT_XAPI_KEY`` /
``EDUKNIT_XAPI_SECRET`` — what an LMS such as Open edX is given for its LRS.

- no ``Authorization`` header, another scheme, a Basic pair that is not the
  configured one, or any Basic header while no key and secret are configured
  -> ``AuthError(401)``; the route offers both challenges (``WWW-Authenticate``);
- an invalid or expired bearer token -> 401, a valid one of another role -> 403.

The key and the secret are both compared, always, in constant time
(``hmac.compare_digest``), so the answer's timing tells neither which part
was wrong nor how much of it was right.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from api.auth import AuthError, decode_token
from infra.settings import Settings

CHALLENGE = 'Basic realm="xAPI", Bearer'


def xapi_caller(authorization: str | None, settings: Settings) -> str:
    """Who is posting (``basic:<key>`` or ``service:<sub>``); ``AuthError`` otherwise."""
    if not authorization:
        raise AuthError(401, "credentials required: HTTP Basic (LRS key and secret) or Bearer")
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        principal = decode_token(credentials, settings.jwt_secret)
        if principal.role != "service":
            raise AuthError(403, "only a token with the role 'service' may post statements")
        return f"service:{principal.subject}"
    if scheme == "basic":
        return _basic(credentials, settings)
    raise AuthError(401, "the Authorization scheme must be Basic or Bearer")


def _basic(credentials: str, settings: Settings) -> str:
    if not settings.xapi_key or not settings.xapi_secret:
        raise AuthError(401, "HTTP Basic is not enabled (EDUKNIT_XAPI_KEY/SECRET are not set)")
    try:
        key, colon, secret = base64.b64decode(credentials, validate=True).partition(b":")
    except (binascii.Error, ValueError):
        raise AuthError(401, "malformed Basic credentials") from None
    key_ok = hmac.compare_digest(key, settings.xapi_key.encode())
    secret_ok = hmac.compare_digest(secret, settings.xapi_secret.encode())
    if not (colon and key_ok & secret_ok):
        raise AuthError(401, "wrong LRS key or secret")
    return f"basic:{settings.xapi_key}"
