"""The service on Ray Serve: a local CPU Ray instance, two replicas, one of them killed mid-stream."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from live_service import free_port
from waiting import wait_until

pytest.importorskip("ray.serve", reason="the `ray` extra is not installed (pip install -e '.[ray]')")

import ray
from ray import serve

from clients import ClientConfig, FailurePolicy, RetryConfig, RewardClient
from reward_service.ray_serve import REPLICA_HEADER, RayServeOptions, build

REFERENCE = "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion."
CANDIDATES = [f"Findings: Left pleural effusion. Heart size normal. Study {i}." for i in range(120)]


@pytest.fixture(scope="module")
def ray_service() -> Iterator[str]:
    """Two replicas of the default profile behind Ray Serve's proxy on a loopback port."""
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build(num_replicas=2, num_cpus=1), name="unirg", route_prefix="/", blocking=False)
        url = f"http://127.0.0.1:{port}"
        with RewardClient(url) as client:
            client.wait_until_ready(timeout=120, interval=0.2)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


def replica_actors() -> list[str]:
    return sorted(
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["name"].startswith("SERVE_REPLICA::unirg#")
    )


def test_requests_reach_both_replicas_and_scores_match_one_process(ray_service: str) -> None:
    items = [{"reference": REFERENCE, "candidate": candidate} for candidate in CANDIDATES[:4]]
    replicas, answers = set(), []
    with httpx.Client(base_url=ray_service, timeout=60) as http:
        for _ in range(16):
            response = http.post("/v1/score", json={"items": items})
            assert response.status_code == 200
            replicas.add(response.headers[REPLICA_HEADER])
            answers.append([item["reward"] for item in response.json()["items"]])
    assert len(replicas) == 2
    assert all(answer == answers[0] for answer in answers)  # every replica scores alike


def test_every_item_is_scored_when_a_replica_dies_mid_stream(ray_service: str) -> None:
    config = ClientConfig(
        max_batch_size=4,
        retry=RetryConfig(max_attempts=8, initial_backoff=0.05, max_backoff=0.5),
        failure_policy=FailurePolicy(max_failure_rate=None),
        # Should the proxy never answer a request that was in flight on the killed replica, the read
        # timeout sends it to the other one (the default, 300 s, outlasts the join below).
        timeout=httpx.Timeout(connect=5.0, read=20.0, write=20.0, pool=20.0),
    )
    killed = threading.Event()
    results = []

    def stream() -> None:
        with RewardClient(ray_service, config=config) as client:
            for start in range(0, len(CANDIDATES), 8):
                chunk = CANDIDATES[start : start + 8]
                results.append(client.score(chunk, [REFERENCE] * len(chunk)))
                if start == 24:
                    assert killed.wait(timeout=30), "the replica was not killed within 30s"

    sender = threading.Thread(target=stream)
    sender.start()
    victims = replica_actors()
    assert len(victims) == 2
    wait_until(lambda: len(results) >= 3 or not sender.is_alive(), 120, "three chunks scored before the kill")
    assert len(results) >= 3, "the sender stopped before it scored three chunks"
    ray.kill(ray.get_actor(victims[0], namespace="serve"), no_restart=True)
    killed.set()
    sender.join(timeout=180)
    assert not sender.is_alive()
    rewards = [reward for result in results for reward in result.rewards]
    assert len(rewards) == len(CANDIDATES)
    assert all(reward is not None for reward in rewards)


def test_options_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="not both"):
        RayServeOptions(num_replicas=2, max_replicas=4)
    autoscaled = RayServeOptions(max_replicas=4, num_gpus=0.25).deployment_options()
    assert autoscaled["autoscaling_config"]["max_replicas"] == 4
    assert autoscaled["ray_actor_options"]["num_gpus"] == 0.25


def test_the_kuberay_manifest_deploys_a_valid_application() -> None:
    import importlib

    import yaml
    from live_service import REPO_ROOT

    manifest = yaml.safe_load((REPO_ROOT / "docker" / "kuberay" / "rayservice.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__  # the Ray the project is tested with
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert all(group["template"]["spec"]["containers"] for group in cluster["workerGroupSpecs"])
    (application,) = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]
    module, _, attribute = application["import_path"].partition(":")
    assert getattr(importlib.import_module(module), attribute) is build
    options = RayServeOptions.model_validate(application["args"]).deployment_options()
    assert options["ray_actor_options"]["num_gpus"] == 0.25
    assert all(key.startswith("UNIRG_") for key in application["runtime_env"]["env_vars"])
