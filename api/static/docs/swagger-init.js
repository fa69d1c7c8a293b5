// Swagger UI for this API's spec. /openapi.json needs a login: sign in on the console (/) first.
// Requests tried from here with the session cookie carry the console's CSRF header (see api/csrf.py).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null, // never send the spec to an online validator
  deepLinking: true,
  requestInterceptor: (req) => {
    req.headers["X-Pumpwatch-CSRF"] = "1";
    return req;
  },
});
