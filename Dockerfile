# syntax=docker/dockerfile:1
# aimctrl: the manager (`aimctrl run`) and the discovery Job (`aimctrl discover IMAGE`) in one image.
#
#   docker build -t aimctrl:dev .        (make docker-build IMG=aimctrl:dev)
#
# Two stages. The builder makes a virtualenv in /opt/venv holding aimctrl's wheel and its runtime
# dependencies, pinned by requirements.lock (used as constraints, so the dev tools the lock also
# pins — pytest, mypy, ruff, kubectl — stay out of the image). The final stage is the same slim
# Python base plus that virtualenv and nothing else: no compiler, no pip cache, no source tree.
# It runs as the numeric non-root user 65532 and never writes to its root filesystem (bytecode is
# compiled at build time), so `readOnlyRootFilesystem: true` works; /tmp is the only scratch
# space, and the Deployment mounts an emptyDir there.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src
# The wheel of this checkout, then exactly the locked versions of its runtime dependencies.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --constraint requirements.lock /wheels/aimctrl-*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="aimctrl" \
      org.opencontainers.image.description="Kubernetes controller for the AIM model catalog: models, discovery, service templates and services" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/silogen/aimctrl"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=builder /opt/venv /opt/venv
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["aimctrl"]
CMD ["run"]
