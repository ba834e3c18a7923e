"""The playground's routes, in-process: redirects, the static files, the examples endpoint."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import httpx
import pytest

from reward_service.app import create_app
from reward_service.settings import Settings

STATIC = Path(str(resources.files("reward_service.playground").joinpath("static")))


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(Settings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        yield http


@pytest.mark.parametrize("path", ["/", "/ui"])
async def test_root_and_ui_redirect_to_the_page_relatively(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 307
    # Relative, so that a proxy mounting the service under a prefix keeps working.
    assert response.headers["location"] == "ui/"
    assert str(response.url.join(response.headers["location"])) == "http://service/ui/"


async def test_page_and_assets_are_served_from_the_package(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    linked = re.findall(r'(?:src|href)="(static/[^"]+)"', page.text)
    assert sorted(linked) == ["static/playground.css", "static/playground.js"]
    for link, media_type in zip(sorted(linked), ["text/css", "text/javascript"], strict=True):
        asset = await client.get(f"/ui/{link}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(media_type)
        assert asset.content == (STATIC / link.removeprefix("static/")).read_bytes()


async def test_page_loads_nothing_from_elsewhere() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), f"{path.name} refers to another origin"


@pytest.mark.parametrize("name", ["missing.js", "..%2Fplayground.py", "%2E%2E%2Fexamples.py"])
async def test_only_the_static_files_are_served(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/ui/static/{name}")
    assert response.status_code == 404
    assert b"import" not in response.content  # no source file leaks out of the package
    if "/" not in name and "%" not in name:
        assert response.json()["detail"] == f"no playground file {name!r}"


async def test_examples_endpoint_serves_reports_with_variants(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/examples")
    assert response.status_code == 200
    body = response.json()
    assert "ReXrank" in body["source"] and "MIT" in body["license"]
    assert len(body["examples"]) >= 5
    for example in body["examples"]:
        assert {candidate["kind"] for candidate in example["candidates"]} == {
            "identical",
            "paraphrase",
            "negation_flip",
            "side_swap",
            "dropped_finding",
        }
        assert len(example["candidates"]) <= 8  # the page takes up to 8 candidates
    schema = (await client.get("/openapi.json")).json()
    assert "/ui/examples" in schema["paths"] and "/ui/" not in schema["paths"]


def test_package_data_ships_the_playground() -> None:
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["reward_service"]
    assert "playground/static/*" in patterns and "playground/*.json" in patterns


async def test_playground_can_be_left_out() -> None:
    transport = httpx.ASGITransport(app=create_app(Settings(playground=False)))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        for path in ("/", "/ui", "/ui/", "/ui/static/playground.js", "/ui/examples"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.get("/healthz")).status_code == 200
