from fastapi import APIRouter

from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import TenantPublic, TenantsPublic

router = APIRouter(prefix="/tenants", tags=["tenants"])


@router.get("", response_model=TenantsPublic)
async def list_tenants(ctx: Ctx, user: CurrentUser) -> TenantsPublic:
    data = [
        TenantPublic(id=t.id, name=t.name, timezone=t.timezone)
        for t in ctx.fleet.tenants.values()
        if t.id in user.tenants
    ]
    return TenantsPublic(data=data, count=len(data))
