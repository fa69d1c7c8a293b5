// Calls to /api/v1 with the session cookie. A 401 anywhere means "sign in again": listeners show the form.
export class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const unauthorized = new Set();
export function onUnauthorized(fn) { unauthorized.add(fn); }

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, credentials: "same-origin", cache: "no-store", signal, headers: {} };
  // Every change carries the anti-CSRF header: another origin cannot add it (api/csrf.py).
  if (method !== "GET" && method !== "HEAD") init.headers["X-Pumpwatch-CSRF"] = "1";
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(`/api/v1${path}`, init);
  if (r.status === 401 && !path.startsWith("/auth/")) unauthorized.forEach(fn => fn());
  if (!r.ok) {
    let detail = "";
    try {
      const j = await r.json();
      detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
    } catch { /* not JSON */ }
    throw new ApiError(r.status, detail, r.headers.get("Retry-After"));
  }
  return r.status === 204 ? null : r.json();
}
