"""Dependency aliases, so a handler's signature reads like a sentence."""

from typing import Annotated

from fastapi import Depends, Request

from pumpwatch.api.auth.guard import current_user
from pumpwatch.api.auth.users import User
from pumpwatch.api.context import ApiContext


def get_context(request: Request) -> ApiContext:
    return request.app.state.ctx


Ctx = Annotated[ApiContext, Depends(get_context)]
CurrentUser = Annotated[User, Depends(current_user)]
