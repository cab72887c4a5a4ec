"""The web console's pages and assets under /console/ (public files; the data they show needs the API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from embedops.serve.console import PAGES, asset
from embedops.serve.errors import APIError

router = APIRouter(tags=["console"], include_in_schema=False)

# The pages load only their own scripts and styles and talk only to this server; no inline script runs, so an
# injected string in a document or a query can never execute.
_HEADERS = {
    "Cache-Control": "no-cache",  # revalidated by ETag: a new release is seen at once, an unchanged file costs a 304
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
}


@router.get("/console")
async def console_root() -> Response:
    """The console's home (the search page)."""
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
async def console_index(request: Request) -> Response:
    """The search page."""
    return _serve(request, "index.html")


@router.get("/console/{name}")
async def console_asset(name: str, request: Request) -> Response:
    """One page, script or stylesheet of the console, by its file name."""
    if name in ("search", "monitor", "models"):  # short links: /console/monitor
        name = "index.html" if name == "search" else f"{name}.html"
    return _serve(request, name)


def _serve(request: Request, name: str) -> Response:
    found = asset(name)
    if found is None:
        known = ", ".join(p.removesuffix(".html") for p in PAGES)
        raise APIError(404, f"no console page {name!r} (pages: {known})", code="not_found", param="name")
    headers = {**_HEADERS, "ETag": found.etag}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)
