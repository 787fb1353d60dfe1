"""Request dependencies as ``Annotated`` aliases: ``SessionDep``, ``SettingsDep``, ``CurrentKey``,
``ScopeDep`` (the project a request may see)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from api.db import keys_repo
from api.db.models import ApiKey
from api.errors import Unauthorized
from api.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="an API key from `mar apikey create NAME`")


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def get_db(request: Request) -> Iterator[Session]:
    """One session per request; handlers commit what they change, the rest is rolled back."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]


def get_current_key(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiKey:
    """The API key of ``Authorization: Bearer <key>``; 401 when missing, unknown or revoked."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", param="Authorization")
    key = keys_repo.verify_api_key(session, credentials.credentials)
    session.commit()  # end the read transaction: long streams must not hold a connection
    if key is None:
        raise Unauthorized("unknown or revoked API key", param="Authorization")
    return key


CurrentKey = Annotated[ApiKey, Depends(get_current_key)]


def get_scope(key: CurrentKey) -> str | None:
    """The project a request sees and acts in: the key's, or None (every project) for an admin key."""
    return None if key.admin else key.project


ScopeDep = Annotated[str | None, Depends(get_scope)]
