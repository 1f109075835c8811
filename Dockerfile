# syntax=docker/dockerfile:1
# One image for the three toolrunner processes; docker-compose.yml picks the command of each
# (worker, beat, Flower) and its healthcheck, so the image itself declares none.
# No docker CLI inside: the docker SDK talks to DOCKER_HOST (a DinD sidecar over TLS).
# Pin the base by digest in your registry mirror to make builds reproducible.
FROM python:3.11-slim

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="toolrunner" \
      org.opencontainers.image.description="Celery worker that runs containerised security tools in per-tenant, per-run Docker volumes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# A fixed numeric uid/gid, so volumes and `runAsNonRoot` checks see the same owner on every host.
RUN groupadd --system --gid 10001 toolrunner \
 && useradd --system --uid 10001 --gid toolrunner --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin toolrunner \
 && install -d -o toolrunner -g toolrunner -m 0750 /var/lib/toolrunner

# The sources stay in /app after the install: `celery -A tasks` imports from the working directory
# and Flower reads config/flower.py by path. README.md is the package's long description.
WORKDIR /app
COPY pyproject.toml README.md beat_schedule.py ./
COPY config/ config/
COPY isolation/ isolation/
COPY tasks/ tasks/
RUN pip install --no-cache-dir . \
 && rm -rf build ./*.egg-info

# /var/lib/toolrunner: beat's schedule; a named volume there inherits this owner on first mount.
USER 10001:10001
# Flower, and the worker's Prometheus metrics (TOOLRUNNER_METRICS_PORT).
EXPOSE 5555 9808
CMD ["celery", "-A", "tasks", "worker", "--loglevel", "INFO", "--concurrency", "4", "--hostname", "worker@%h"]
