"""Transport security: trusted proxy hops, the Socket.IO handshake's origins, security headers on every response."""

from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def handshake_origins(origins):
    """The origins a Socket.IO handshake may come from: any for `*`, else those listed and always the
    server's own (the page it serves, `/demo`, as the browser reached it, through trusted proxies)."""
    if "*" in origins:
        return "*"
    listed = frozenset(origins)

    def allowed(origin, environ):
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin in listed or origin == own

    return allowed


def register_security(app):
    """Trust X-Forwarded-* from TRUSTED_PROXY_HOPS proxies (REST and Socket.IO); add security headers."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    @app.after_request
    def secure_headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)  # a view's own policy stands (file downloads: a sandbox)
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response
