# syntax=docker/dockerfile:1
# Two images from one file, each built by naming its target (docker-compose.yml does):
#   --target worker  the three toolrunner processes; docker-compose.yml picks the command of each
#                    (worker, beat, Flower) and its healthcheck, so the image itself declares none.
#                    No docker CLI inside: the docker SDK talks to DOCKER_HOST (the DinD sidecar, TLS).
#   --target dind    Docker-in-Docker for the tools: mutual-TLS certificates and the egress fence
#                    (config/egress.py) installed by its entrypoint before dockerd starts.
# The bases are arguments: production keeps the defaults (pin them by digest in your registry mirror to
# make builds reproducible); scripts/stack passes images built locally from Debian packages.
ARG PYTHON_IMAGE=python:3.11-slim
ARG DIND_IMAGE=docker:27-dind

FROM ${PYTHON_IMAGE} AS worker

ARG VERSION=0.1.0
ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="toolrunner" \
      org.opencontainers.image.description="Celery worker that runs containerised security tools in per-tenant, per-run Docker volumes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# A fixed numeric uid/gid, so volumes and `runAsNonRoot` checks see the same owner on every host.
RUN groupadd --system --gid 10001 toolrunner \
 && useradd --system --uid 10001 --gid toolrunner --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin toolrunner \
 && install -d -o toolrunner -g toolrunner -m 0750 /var/lib/toolrunner /var/spool/toolrunner

# The dependencies first, exactly as requirements/runtime.txt locks them (versions and hashes; pip and the
# build backend included): this layer survives changes to the sources, so a rebuild after a code change
# takes seconds. scripts/update-deps refreshes the lock; the check fails the build on any difference.
WORKDIR /app
COPY requirements/runtime.txt requirements/runtime.txt
COPY scripts/lockfile.py /usr/local/lib/toolrunner/lockfile.py
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/runtime.txt \
 && pip check \
 && python /usr/local/lib/toolrunner/lockfile.py check --allow-extra requirements/runtime.txt

# The sources stay in /app after the install: `celery -A tasks` imports from the working directory
# and Flower reads config/flower.py by path. README.md is the package's long description.
COPY pyproject.toml README.md beat_schedule.py ./
COPY config/ config/
COPY isolation/ isolation/
COPY tasks/ tasks/
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
 && rm -rf build ./*.egg-info
COPY deploy/preflight.py /usr/local/lib/toolrunner/preflight.py

# /var/lib/toolrunner: beat's schedule; a named volume there inherits this owner on first mount.
USER 10001:10001
# Flower, and the worker's Prometheus metrics (TOOLRUNNER_METRICS_PORT).
EXPOSE 5555 9808
# Refuses to start without a broker password, or with a TCP DOCKER_HOST but no TLS client certificates.
ENTRYPOINT ["python", "/usr/local/lib/toolrunner/preflight.py"]
CMD ["celery", "-A", "tasks", "worker", "--loglevel", "INFO", "--concurrency", "4", "--hostname", "worker@%h"]

FROM ${DIND_IMAGE} AS dind
# python3 runs config/egress.py; docker:dind (Alpine) lacks it, the local Debian base has it.
RUN command -v python3 >/dev/null || apk add --no-cache python3
COPY config/egress.py /usr/local/lib/toolrunner/egress.py
COPY deploy/dind-entrypoint.sh /usr/local/bin/toolrunner-dind-entrypoint
VOLUME /var/lib/docker
EXPOSE 2376
ENTRYPOINT ["toolrunner-dind-entrypoint"]
CMD []
