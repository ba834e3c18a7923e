# syntax=docker/dockerfile:1
#
# The UniRG trainer (TRL SFT / GRPO) on NVIDIA GPUs. It scores rollouts over HTTP through the reward
# service, so it needs the `train` extra, not the model scorers; vLLM is added for TRL's fast generation
# (`use_vllm: true` in the shipped GRPO configs).
#
#   docker build -f docker/trainer.Dockerfile -t unirg/trainer --build-arg UID=$(id -u) .
#   docker run --gpus all --ipc host -v ./trainer/configs:/workspace/configs:ro -v ./data:/data:ro \
#       -v ./outputs:/workspace/outputs unirg/trainer train --config configs/unirg-grpo-stage1.yaml \
#       --set service_url=http://<reward-service-host>:8000
#
# The shipped configs read data under /data and write to outputs/ relative to the working directory
# /workspace, so they work unchanged with these mounts.
#
# Build arguments:
#   BASE_IMAGE    a CUDA runtime image with Ubuntu 24.04 (Python 3.12). Pick a CUDA version your driver
#                 supports (`nvidia-smi` prints the highest); torch and vLLM bring their own CUDA libraries.
#                 Any Debian or Ubuntu image with apt works for the Python layers (the CPU smoke build
#                 uses Debian bookworm, tests/test_docker_images.py).
#   VLLM_VERSION  the vLLM wheel for TRL's generation; empty to leave vLLM out (then `use_vllm: false`).
#                 TRL 1.16 supports vLLM 0.22-0.31; 0.22.x-0.23.x accept transformers 4, later ones need
#                 transformers 5, which the project supports but has not tested with vLLM yet: keep it in
#                 0.22-0.23 until then. It pins torch, so torch is not installed separately.
#   UID           the user id the trainer runs as, so checkpoints in a bind-mounted outputs folder are yours.
#   TORCH_WHEEL   a torch wheel file in docker/wheels/, resolved together with the rest (it must satisfy
#                 vLLM's pin when vLLM is in); empty: pip takes torch from PyPI, or the one vLLM pins.

ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ${BASE_IMAGE}

ARG VLLM_VERSION=0.23.0
ARG UID=1000
ARG TORCH_WHEEL=""

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface

# gcc and the Python headers: Triton (torch.compile, vLLM) compiles a small launcher at run time.
# Versions are left to the Ubuntu release the base image pins: its security updates replace them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /src
# One resolution for the project and vLLM, so vLLM's torch and transformers pins and the project's are
# satisfied together (pip fails the build rather than install a pair that does not work). A local torch
# wheel is mounted, not copied, so it never becomes a layer of the image. The dependencies come from
# pyproject.toml alone (empty package folders stand in for the code), so a code change rebuilds only the
# small layer after them.
COPY pyproject.toml README.md ./
RUN --mount=type=bind,source=docker/wheels,target=/wheels \
    mkdir reward_service clients trainer unirg \
    && pip install --no-cache-dir "./[train]" ${VLLM_VERSION:+"vllm==${VLLM_VERSION}"} \
        ${TORCH_WHEEL:+"/wheels/${TORCH_WHEEL}"} \
    && rm -rf build unirg.egg-info reward_service clients trainer unirg
COPY unirg ./unirg
COPY reward_service ./reward_service
COPY clients ./clients
COPY trainer ./trainer
RUN pip install --no-cache-dir --no-deps .

# Ubuntu 24.04 images ship a user `ubuntu` with uid 1000: reuse whichever user holds the uid.
RUN (getent passwd "${UID}" >/dev/null || useradd --uid "${UID}" --create-home --shell /bin/bash unirg) \
    && mkdir -p /cache/huggingface /data /workspace/configs /workspace/outputs \
    && chown -R "${UID}" /cache /data /workspace

USER ${UID}
WORKDIR /workspace

ENTRYPOINT ["unirg"]
CMD ["train", "--help"]
