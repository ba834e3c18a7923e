"""The playground page: ``/ui/`` serves it, ``/`` and ``/ui`` redirect there, ``/ui/examples`` feeds it.

The page is static HTML, CSS and JavaScript shipped in the package (no build step, nothing fetched from
elsewhere, so it works on offline clusters); it scores through ``POST /v1/score`` like any client.
Redirects and asset links are relative, so the page also works behind a proxy that adds a path prefix.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import RedirectResponse, Response

from reward_service.playground import Examples, playground_examples

router = APIRouter(tags=["playground"])

#: The page and its assets hold no data and spend nothing, and a browser opening a page cannot send a
#: bearer key: an API-key check lets these through, as it does the API documentation. The page then asks
#: for a key when its first API request (``/ui/examples``, ``/v1/profiles``) answers 401.
PUBLIC_PATHS = frozenset({"/", "/ui", "/ui/"})
PUBLIC_PREFIXES = ("/ui/static/",)

_STATIC = resources.files("reward_service.playground").joinpath("static")
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page loads nothing from elsewhere; saying so lets the browser refuse injected content.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


@cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the static folder by name, with its media type (the only names served)."""
    return {
        entry.name: (entry.read_bytes(), _MEDIA_TYPES[suffix])
        for entry in _STATIC.iterdir()
        if entry.is_file() and (suffix := entry.name[entry.name.rfind(".") :]) in _MEDIA_TYPES
    }


def _asset_response(name: str) -> Response:
    asset = _assets().get(name)
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no playground file {name!r}")
    content, media_type = asset
    return Response(content, media_type=media_type, headers=_HEADERS)


@router.get("/", include_in_schema=False)
@router.get("/ui", include_in_schema=False)
async def to_playground() -> RedirectResponse:
    return RedirectResponse("ui/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/ui/", include_in_schema=False)
async def playground_page() -> Response:
    return _asset_response("index.html")


@router.get("/ui/static/{name}", include_in_schema=False)
async def playground_asset(name: str) -> Response:
    return _asset_response(name)


@router.get("/ui/examples", response_model=Examples)
def examples() -> Examples:
    """Real reports shipped with the service, each with generated candidates that make one kind of error."""
    # A plain function, so FastAPI runs it in a worker thread: generating the variants the first time
    # (a few hundred milliseconds) never holds up the event loop that scoring requests share.
    return playground_examples()
