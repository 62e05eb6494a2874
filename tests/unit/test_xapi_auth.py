"""Who may post xAPI statements (``api.xapi_auth``): Basic with the LRS key and secret, or a
``service`` bearer token; Basic is refused while no key and secret are configured."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from api.auth import AuthError
from api.xapi_auth import xapi_caller
from infra.settings import Settings
from infra.tokens import make_token

SECRET = "xapi-auth-unit-secret-" + "k" * 32


def settings(key: str = "lms", secret: str = "s3cret:with:colons") -> Settings:
    return Settings(  # type: ignore[call-arg]
        EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_XAPI_KEY=key, EDUKNIT_XAPI_SECRET=secret
    )


def basic(pair: str) -> str:
    return "Basic " + base64.b64encode(pair.encode()).decode()


def status(authorization: str | None, config: Settings) -> int:
    try:
        xapi_caller(authorization, config)
    except AuthError as exc:
        return exc.status
    return 200


def test_basic_with_the_configured_key_and_secret() -> None:
    assert xapi_caller(basic("lms:s3cret:with:colons"), settings()) == "basic:lms"
    assert xapi_caller("basic  " + basic("lms:s3cret:with:colons")[6:], settings()) == "basic:lms"
    utf8 = settings(key="clé", secret="mot-de-passe-é")
    assert xapi_caller(basic("clé:mot-de-passe-é"), utf8) == "basic:clé"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        basic("lms:wrong"),
        basic("other:s3cret:with:colons"),
        basic("lms"),  # no colon
        basic("lms:s3cret:with:colons "),
        basic(":"),
        "Basic %%%",
        "Basic é",
        "Digest username=lms",
        "lms:s3cret:with:colons",
        "Bearer not-a-token",
    ],
)
def test_anything_else_is_401(authorization: str | None) -> None:
    assert status(authorization, settings()) == 401


def test_basic_is_refused_while_no_credentials_are_configured() -> None:
    unset = Settings(EDUKNIT_JWT_SECRET=SECRET)  # type: ignore[call-arg]
    assert status(basic(":"), unset) == 401
    assert status(basic("lms:s3cret:with:colons"), unset) == 401


def test_a_key_without_a_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="EDUKNIT_XAPI_KEY"):
        settings(secret="")
    with pytest.raises(ValidationError, match="EDUKNIT_XAPI_KEY"):
        settings(key="")


@pytest.mark.parametrize(("role", "expected"), [("service", 200), ("student", 403), ("admin", 403)])
def test_bearer_tokens_need_the_service_role(role: str, expected: int) -> None:
    token = make_token(SECRET, "lms-service", role=role)
    assert status(f"Bearer {token}", settings()) == expected
    assert status(f"Bearer {token}", Settings(EDUKNIT_JWT_SECRET=SECRET)) == expected  # type: ignore[call-arg]


def test_a_bearer_token_signed_with_another_secret_is_401() -> None:
    token = make_token("another-secret-" + "z" * 40, "lms-service", role="service")
    assert status(f"Bearer {token}", settings()) == 401
