"""The reward service as a Ray Serve application: the same FastAPI app on as many replicas as needed.

Run it with ``unirg serve --ray`` (joins the Ray cluster at ``--ray-address``, default ``auto``, or
starts a local one), or with Ray's own command::

    serve run reward_service.ray_serve:build num_replicas=4 num_gpus=0.25

Every replica builds the app (``reward_service.app.create_app``) in its own process, loads the
profiles there and reports healthy to Ray once they are loaded; Ray Serve's proxy spreads requests
over the replicas. ``UNIRG_*`` variables of the process that deploys are passed to every replica, so
``UNIRG_REDIS_URL`` makes Redis the judge cache all replicas share. Options (``key=value`` after the
import path, or keyword arguments of :func:`build`) are :class:`RayServeOptions`. Needs the ``ray``
extra (``pip install 'unirg[ray]'``). See docs/scaling.md.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.serve import Application

from reward_service.app import create_app
from reward_service.settings import Settings

#: Response header naming the replica that answered (which replica scored what, when debugging).
REPLICA_HEADER = "x-unirg-replica"


class RayServeOptions(BaseModel):
    """How the service is deployed on Ray Serve (``serve run ... key=value`` arguments)."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Fixed number of replicas; leave unset with min/max_replicas to autoscale.",
    )
    min_replicas: int = Field(default=1, ge=0, description="Autoscaling: fewest replicas.")
    max_replicas: int | None = Field(
        default=None, ge=1, description="Autoscaling: most replicas; setting it turns autoscaling on."
    )
    target_ongoing_requests: float = Field(
        default=8.0, gt=0, description="Autoscaling: requests in flight per replica Ray Serve aims for."
    )
    max_ongoing_requests: int = Field(
        default=256,
        ge=1,
        description="Requests one replica takes at once (UNIRG_MAX_CONCURRENT_REQUESTS applies too).",
    )
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved per replica.")
    num_gpus: float = Field(
        default=0.0,
        ge=0,
        description="GPUs per replica; a fraction (0.25) packs model-scorer replicas on one GPU.",
    )
    name: str = Field(default="unirg", description="Name of the Ray Serve application and deployment.")
    route_prefix: str = Field(default="/", description="Where the proxy mounts the service.")

    @model_validator(mode="after")
    def _one_scaling_mode(self) -> RayServeOptions:
        if self.num_replicas is not None and self.max_replicas is not None:
            raise ValueError("give num_replicas (fixed) or max_replicas (autoscaling), not both")
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be at least min_replicas")
        return self

    def deployment_options(self) -> dict[str, Any]:
        env = {key: value for key, value in os.environ.items() if key.startswith("UNIRG_")}
        options: dict[str, Any] = {
            "name": self.name,
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                "runtime_env": {"env_vars": env},
            },
            # Loading model weights can take minutes; Ray must not give up on a replica meanwhile.
            "health_check_period_s": 5,
            "health_check_timeout_s": 30,
            "graceful_shutdown_timeout_s": 30,
        }
        if self.max_replicas is not None:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.num_replicas or 1
        return options


@serve.ingress()
class RewardServiceReplica:
    """One replica: the FastAPI app with its own engine, scorers and model batchers."""

    def __init__(self) -> None:
        self._settings = Settings()
        self._app = create_app(self._settings)
        self._replica = serve.get_replica_context().replica_id.unique_id

    def __serve_build_asgi_app__(self) -> Any:
        return _ReplicaTagged(self._app, self._replica)

    def check_health(self) -> None:
        """Ray restarts a replica whose profiles failed to load; one still loading is healthy."""
        if self._app.state.load_error:
            raise RuntimeError(f"the reward service failed to start: {self._app.state.load_error}")


class _ReplicaTagged:
    """The app, with every HTTP response naming the replica that produced it."""

    def __init__(self, app: Any, replica: str) -> None:
        self.app = app
        self._header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan: the app loads its profiles
            return

        async def send_tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self.app(scope, receive, send_tagged)


def build(args: dict[str, Any] | None = None, **options: Any) -> Application:
    """The Ray Serve application; ``serve run reward_service.ray_serve:build key=value ...``."""
    parsed = RayServeOptions.model_validate({**(args or {}), **options})
    deployment = serve.deployment(**parsed.deployment_options())(RewardServiceReplica)
    return deployment.bind()
