"""The web console's static files (gateway/console/: HTML, vanilla JS and CSS, no build step), served at ``/`` of the
HTTP port. Read once when the port starts; the page reads the JSON admin API."""

from __future__ import annotations

from importlib import resources

from gateway.http_endpoint import HttpRequest, HttpResponse, Routes

# The page runs only its own script and style and talks only to this port; message bodies it shows are data.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}


def console_routes() -> Routes:
    folder = resources.files("gateway") / "console"
    routes: Routes = {}
    for path, (name, content_type) in FILES.items():
        response = HttpResponse(
            content_type,
            (folder / name).read_bytes(),
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
        )

        async def serve(request: HttpRequest, response: HttpResponse = response) -> HttpResponse:
            return response

        routes[("GET", path)] = serve
    return routes
