# syntax=docker/dockerfile:1
#
# The UniRG reward service: the HTTP API with the rule, model and judge scorers.
#
#   docker build -f docker/reward-service.Dockerfile -t unirg/reward-service .
#
# Build arguments:
#   TORCH_INDEX_URL / TORCH_VERSION  which torch wheel the model scorers use. The default is the CPU build;
#                                    for a GPU image pass the CUDA index of the same version, e.g.
#                                    --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#                                    (the CUDA wheels carry their own CUDA runtime: the host needs only the
#                                    NVIDIA driver and the NVIDIA container toolkit, not a CUDA base image).
#   TORCH_WHEEL                      a torch wheel file in docker/wheels/ (one you downloaded, e.g. with
#                                    `pip download torch==2.13.0 --no-deps -d docker/wheels`): installed
#                                    instead of torch from TORCH_INDEX_URL, so the build needs no torch index.
#   FETCH_PROFILE                    a profile name (e.g. unirg-stage2); when set, `unirg models fetch` bakes
#                                    that profile's weights into /models at build time, so the image starts
#                                    offline. Leave it empty to mount the weights from a volume at /models.
#   PYTHON_IMAGE                     the base of both stages (Debian bookworm with Python 3.11).
#
# Weights live in UNIRG_MODEL_CACHE_DIR=/models (Hugging Face files under /models/huggingface).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with the project and its model extra ----------------------------------
FROM ${PYTHON_IMAGE} AS build

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_WHEEL=""

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# torch first and from its own index: the `models` extra then finds it satisfied instead of pulling the
# multi-GB default CUDA build from PyPI. Its own layer, so code changes do not re-download it. A local
# wheel is mounted, not copied: it never becomes a layer of the image.
RUN --mount=type=bind,source=docker/wheels,target=/wheels \
    python -m venv /opt/venv \
    && if [ -n "${TORCH_WHEEL}" ]; then pip install --no-cache-dir "/wheels/${TORCH_WHEEL}"; \
       else pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; fi

WORKDIR /src
# The dependencies from pyproject.toml alone (empty package folders stand in for the code), then the code:
# a code change rebuilds only the last, small layer.
COPY pyproject.toml README.md ./
RUN mkdir reward_service clients trainer unirg \
    && pip install --no-cache-dir "./[models]" \
    && rm -rf build unirg.egg-info reward_service clients trainer unirg
COPY unirg ./unirg
COPY reward_service ./reward_service
COPY clients ./clients
COPY trainer ./trainer
RUN pip install --no-cache-dir --no-deps .

# ---- runtime: the virtual environment, a non-root user, the weights ------------------------------------
FROM ${PYTHON_IMAGE}

ARG FETCH_PROFILE=""

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UNIRG_PORT=8000 \
    UNIRG_MODEL_CACHE_DIR=/models \
    HF_HOME=/models/huggingface \
    UNIRG_DRAIN_TIMEOUT_S=8

RUN groupadd --system --gid 10001 unirg \
    && useradd --system --uid 10001 --gid unirg --create-home --home-dir /home/unirg unirg \
    && mkdir -p /models \
    && chown unirg:unirg /models

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /home/unirg

# A named volume mounted at /models starts as a copy of what this step wrote, so baked weights also seed
# the shared volume of a compose deployment.
RUN if [ -n "${FETCH_PROFILE}" ]; then unirg models fetch --profile "${FETCH_PROFILE}"; fi

EXPOSE 8000

# /readyz answers 200 only once every configured profile (and its models) has loaded.
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('UNIRG_PORT', '8000'), timeout=4)"]

# `docker stop` waits 10 s before SIGKILL: the 8 s drain (UNIRG_DRAIN_TIMEOUT_S) fits inside it. Raise both
# together (`docker stop -t`, compose's stop_grace_period) for longer requests.
STOPSIGNAL SIGTERM
CMD ["unirg", "serve", "--host", "0.0.0.0"]
