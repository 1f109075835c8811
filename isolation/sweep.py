"""cleanup_orphaned_volumes: remove this module's aged volumes and containers that a crash left behind."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import docker.errors

from isolation.engine import connect, translate
from isolation.naming import DEFAULT_LABEL_PREFIX, label, managed_filter, parse_created

logger = logging.getLogger(__name__)

Filters = dict[str, list[str]]


@dataclass(frozen=True)
class SweepReport:
    """What one sweep removed, kept because something still uses it, and failed to remove (with why)."""

    removed: tuple[str, ...] = ()
    removed_containers: tuple[str, ...] = ()
    kept_in_use: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for task results and log lines."""
        return {
            "removed": list(self.removed),
            "removed_containers": list(self.removed_containers),
            "kept_in_use": list(self.kept_in_use),
            "failed": [{"name": n, "reason": r} for n, r in self.failed],
            "dry_run": self.dry_run,
        }


@dataclass
class _Tally:
    removed: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def cleanup_orphaned_volumes(
    max_age_hours: float = 24,
    client: docker.DockerClient | None = None,
    *,
    label_prefix: str = DEFAULT_LABEL_PREFIX,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SweepReport:
    """Remove managed containers, then managed volumes, created more than max_age_hours ago.

    Unmanaged volumes are never listed; young ones are left alone; a volume that a running container,
    or any container this module does not manage, still uses is kept and reported. Ages come from the
    `<prefix>.created` label (Docker's own CreatedAt when the label is unreadable), never from
    `docker volume prune`, which ignores named volumes since API 1.42 and has no age filter.
    """
    if max_age_hours < 0:
        raise ValueError("max_age_hours must be >= 0")
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=max_age_hours)
    report = _sweep(connect(client), label_prefix, {}, cutoff, dry_run)
    logger.info(
        "sweep done removed=%d removed_containers=%d kept_in_use=%d failed=%d dry_run=%s",
        len(report.removed),
        len(report.removed_containers),
        len(report.kept_in_use),
        len(report.failed),
        dry_run,
    )
    return report


def remove_labelled(
    labels: Mapping[str, str], client: docker.DockerClient | None = None, *, label_prefix: str = DEFAULT_LABEL_PREFIX
) -> SweepReport:
    """Remove every managed container and volume carrying all these (unprefixed) labels, whatever its age.

    Used when a task is delivered again after its worker died, and when a worker starts where a crashed
    predecessor of the same name left resources: their leftovers go first.
    """
    if not labels:
        raise ValueError("remove_labelled needs at least one label to narrow the selection")
    far_future = datetime.now(UTC) + timedelta(days=36500)
    return _sweep(connect(client), label_prefix, labels, far_future, False)


def _sweep(
    client: docker.DockerClient, prefix: str, labels: Mapping[str, str], cutoff: datetime, dry_run: bool
) -> SweepReport:
    tally = _Tally()
    filters = managed_filter(prefix, **labels)
    with translate("sweep orphaned resources"):
        _sweep_containers(client, prefix, filters, cutoff, dry_run, tally)
        _sweep_volumes(client, prefix, filters, cutoff, dry_run, tally)
    return SweepReport(tuple(tally.removed), tuple(tally.containers), tuple(tally.in_use), tuple(tally.failed), dry_run)


def _sweep_containers(
    client: docker.DockerClient, prefix: str, filters: Filters, cutoff: datetime, dry_run: bool, tally: _Tally
) -> None:
    # Containers first (Drone's order): an aged tool container outlived every timeout, so its worker is
    # gone; removing it also frees the volumes it holds.
    for summary in client.api.containers(all=True, filters=filters):
        born = parse_created(label(summary.get("Labels"), prefix, "created"))
        born = born or datetime.fromtimestamp(summary["Created"], tz=UTC)
        if born >= cutoff:
            continue
        name = summary["Names"][0].lstrip("/") if summary.get("Names") else summary["Id"][:12]
        if not dry_run:
            try:
                client.api.remove_container(summary["Id"], force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                tally.failed.append((name, f"container: {exc.explanation or exc}"))
                continue
        tally.containers.append(name)


def _sweep_volumes(
    client: docker.DockerClient, prefix: str, filters: Filters, cutoff: datetime, dry_run: bool, tally: _Tally
) -> None:
    for volume in client.api.volumes(filters=filters).get("Volumes") or []:
        born = _volume_created(volume, prefix)
        if born is None:
            tally.failed.append((volume["Name"], "no readable creation time; left alone"))
        elif born < cutoff:
            _sweep_volume(client, volume["Name"], prefix, dry_run, tally)


def _volume_created(volume: Mapping[str, Any], prefix: str) -> datetime | None:
    return parse_created(label(volume.get("Labels"), prefix, "created")) or parse_created(volume.get("CreatedAt"))


def _sweep_volume(client: docker.DockerClient, name: str, prefix: str, dry_run: bool, tally: _Tally) -> None:
    users = client.api.containers(all=True, filters={"volume": name})
    if any(u.get("State") == "running" or label(u.get("Labels"), prefix, "managed") != "true" for u in users):
        tally.in_use.append(name)
        logger.info("sweep kept volume=%s: a running or unmanaged container uses it", name)
        return
    if dry_run:
        tally.removed.append(name)
        return
    try:
        for user in users:
            client.api.remove_container(user["Id"], force=True)
        client.api.remove_volume(name)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            tally.in_use.append(name)
            return
        tally.failed.append((name, str(exc.explanation or exc)))
        logger.warning("sweep could not remove volume=%s: %s", name, exc)
        return
    tally.removed.append(name)
    logger.info("sweep removed volume=%s", name)
