"""Route dependencies as `Annotated` aliases: the service, its settings, the model a request runs on, the API key.

All are `async def`: FastAPI runs a plain `def` dependency on its thread pool, a hop that cost more than
the model call. `ModelDep` is read once per request, when it starts; that snapshot is what makes a reload safe for the
requests in flight (service.py). The API key is checked by app.RequestGuard before the body is read;
`require_api_key` declares the two ways to send it in the OpenAPI document (`X-API-Key: KEY` or
`Authorization: Bearer KEY`) and checks again, in constant time (`hmac.compare_digest`), on the raw header
bytes as the guard does; with no key configured it lets all through. The health routes are mounted
without it.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from clickintent.serve.model import ServingModel
from clickintent.serve.service import Service
from clickintent.serve.settings import Settings


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_settings(service: ServiceDep) -> Settings:
    return service.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_model(service: ServiceDep) -> ServingModel:
    if service.model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded yet")
    return service.model


ModelDep = Annotated[ServingModel, Depends(get_model)]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The CLICKINTENT_API_KEY of the service.")
_bearer = HTTPBearer(auto_error=False, description="The CLICKINTENT_API_KEY as a bearer token.")


async def require_api_key(
    settings: SettingsDep,
    key: Annotated[str | None, Security(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    given = key if key is not None else (bearer.credentials if bearer is not None else None)
    # headers arrive as latin-1 text: encoding back gives their bytes exactly, as the guard compares them
    if given is None or not hmac.compare_digest(given.encode("latin-1", "replace"), expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong API key (send X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )


ApiKey = Depends(require_api_key)


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header value, as fastapi's HTTPBearer reads it."""
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None
