"""``unirg serve --ray``: deploy the service on Ray Serve and keep it up until interrupted."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import typer

from reward_service.settings import Settings


def serve_on_ray(settings: Settings, address: str, **options: Any) -> None:
    """Join (or start) a Ray cluster, deploy the replicas, block until Ctrl-C, then remove the app."""
    try:
        import ray
        from ray import serve
    except ImportError:
        typer.echo("--ray needs Ray Serve: pip install 'unirg[ray]'", err=True)
        raise typer.Exit(2) from None
    from reward_service.ray_serve import RayServeOptions, build

    # The command line's settings reach the replicas as UNIRG_ variables, like the environment's.
    for key, value in settings.model_dump(
        mode="json", include={"profile", "extra_profiles", "log_level"}
    ).items():
        os.environ[f"UNIRG_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    parsed = RayServeOptions.model_validate(options)
    try:
        ray.init(address=address)
    except ConnectionError:
        if address != "auto":
            raise
        ray.init()  # no cluster running: a local one on this machine
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build(**options), name=parsed.name, route_prefix=parsed.route_prefix, blocking=False)
    typer.echo(f"serving on Ray Serve at http://{settings.host}:{settings.port} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.delete(parsed.name)
