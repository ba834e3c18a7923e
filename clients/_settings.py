"""Where the trainer adapters find the service when the trainer cannot pass it in.

verl and OpenRLHF load a reward function from a file and call it with their own arguments, so the
service URL and profile come from the environment there (or from verl's ``reward_kwargs`` and
``extra_info``; see ``docs/integrations.md``).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AdapterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNIRG_", extra="ignore")

    reward_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of the reward service for the adapters; several replicas comma-separated "
        "(requests go to the least busy, a failing one sits out).",
    )
    reward_profile: str | None = Field(
        default=None, description="Profile the adapters ask for; unset means the service's default profile."
    )
    reward_timeout: float = Field(
        default=300.0, description="Seconds an adapter waits for the service to become ready on first use."
    )
    reward_api_key: SecretStr | None = Field(
        default=None,
        description="API key sent as `Authorization: Bearer` to a service started with UNIRG_API_KEYS; "
        "read by RewardClient, AsyncRewardClient, the TRL reward functions and the verl/OpenRLHF adapters.",
    )
