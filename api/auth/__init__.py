"""Accounts, roles, tenants and sessions for the API.

- `users`: create_user, grants, disable, passwords; `User` (the principal: `tenants`, `can(role, tenant)`).
- `sessions`: login (throttled, locked out, audited), authenticate a token, logout, `session_alive`.
- `guard`: the FastAPI dependencies: `authorize` (on the whole /api/v1 router: 401 without a session,
  403 for a viewer on any mutating route) and `current_user`.
- `roles`: viewer < operator < trainer < engineer < admin.
"""
