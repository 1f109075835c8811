"""Removing what a crash left behind: aged resources, one task's resources, and those past their deadline."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import docker.errors

from isolation.defaults import LABEL_PREFIX
from isolation.engine import connect, force_remove, translate
from isolation.errors import IsolationError
from isolation.naming import Label, ManagedVolume, label, managed_filter, managed_volume, parse_created, parse_deadline

logger = logging.getLogger(__name__)

Filters = dict[str, list[str]]


@dataclass(frozen=True, kw_only=True)
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

    def report(self, dry_run: bool) -> SweepReport:
        return SweepReport(
            removed=tuple(self.removed),
            removed_containers=tuple(self.containers),
            kept_in_use=tuple(self.in_use),
            failed=tuple(self.failed),
            dry_run=dry_run,
        )


def cleanup_orphaned_volumes(
    max_age_hours: float = 24,
    client: docker.DockerClient | None = None,
    *,
    label_prefix: str = LABEL_PREFIX,
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
    labels: Mapping[str, str], client: docker.DockerClient | None = None, *, label_prefix: str = LABEL_PREFIX
) -> SweepReport:
    """Remove every managed container and volume carrying all these (unprefixed) labels, whatever its age.

    Used when a task is delivered again after its worker died, when a worker starts where a crashed
    predecessor of the same name left resources, and to cancel a run: containers are force-removed,
    which the engine does with SIGKILL and no grace period, so a running tool stops at once: a tool
    that ignores SIGTERM, its volume and the volume's helper were gone in 56-82 ms (5 calls, local
    Docker Engine 20.10). No separate kill step is needed for cancel.
    """
    if not labels:
        raise ValueError("remove_labelled needs at least one label to narrow the selection")
    far_future = datetime.now(UTC) + timedelta(days=36500)
    return _sweep(connect(client), label_prefix, labels, far_future, False)


def _sweep(
    client: docker.DockerClient, prefix: str, labels: Mapping[str, str], cutoff: datetime, dry_run: bool
) -> SweepReport:
    return _Sweep(client, prefix, managed_filter(prefix, **labels), cutoff, dry_run).run()


@dataclass(frozen=True)
class _Sweep:
    """One sweep: the managed containers, then volumes, matching filters and created before cutoff."""

    client: docker.DockerClient
    prefix: str
    filters: Filters
    cutoff: datetime
    dry_run: bool
    tally: _Tally = field(default_factory=_Tally)

    def run(self) -> SweepReport:
        with translate("sweep orphaned resources"):
            self._containers()
            self._volumes()
        return self.tally.report(self.dry_run)

    def _containers(self) -> None:
        # Containers first (Drone's order): an aged tool container outlived every timeout, so its worker is
        # gone; removing it also frees the volumes it holds.
        for summary in self.client.api.containers(all=True, filters=self.filters):
            born = parse_created(label(summary.get("Labels"), self.prefix, Label.CREATED))
            born = born or datetime.fromtimestamp(summary["Created"], tz=UTC)
            if born >= self.cutoff:
                continue
            name = _container_name(summary)
            if self.dry_run or _removed_container(self.client, summary["Id"], name, self.tally):
                self.tally.containers.append(name)

    def _volumes(self) -> None:
        for volume in self.client.api.volumes(filters=self.filters).get("Volumes") or []:
            born = _volume_created(volume, self.prefix)
            if born is None:
                self.tally.failed.append((volume["Name"], "no readable creation time; left alone"))
            elif born < self.cutoff:
                self._volume(volume["Name"])

    def _volume(self, name: str) -> None:
        users = self.client.api.containers(all=True, filters={"volume": name})
        if any(u.get("State") == "running" or not _managed(u, self.prefix) for u in users):
            self.tally.in_use.append(name)
            logger.info("sweep kept volume=%s: a running or unmanaged container uses it", name)
            return
        if self.dry_run:
            self.tally.removed.append(name)
            return
        _remove_volume(self.client, name, users, self.tally)


def _container_name(summary: Mapping[str, Any]) -> str:
    return str(summary["Names"][0].lstrip("/") if summary.get("Names") else summary["Id"][:12])


def _removed_container(client: docker.DockerClient, container_id: str, name: str, tally: _Tally) -> bool:
    """Force-remove one container; a failure is tallied (with why) instead of ending the sweep."""
    try:
        force_remove(client, container_id)
    except IsolationError as exc:
        tally.failed.append((name, f"container: {exc}"))
        return False
    return True


def _volume_created(volume: Mapping[str, Any], prefix: str) -> datetime | None:
    return managed_volume(volume, prefix, in_use=False).created


def _remove_volume(client: docker.DockerClient, name: str, holders: list[dict[str, Any]], tally: _Tally) -> None:
    """Force-remove the (managed) holders, then the volume; tally what happened."""
    if not all(_removed_container(client, h["Id"], _container_name(h), tally) for h in holders):
        return
    try:
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


def _managed(container: Mapping[str, Any], prefix: str) -> bool:
    return label(container.get("Labels"), prefix, Label.MANAGED) == "true"


def list_managed_volumes(
    client: docker.DockerClient, *, label_prefix: str = LABEL_PREFIX, tenant: str | None = None
) -> list[ManagedVolume]:
    """Every managed volume (of one tenant, if given), and whether any container uses it."""
    filters = managed_filter(label_prefix, **({Label.TENANT.value: tenant} if tenant else {}))
    with translate("list the managed volumes"):
        listed = client.api.volumes(filters=filters).get("Volumes") or []
        return [
            managed_volume(v, label_prefix, in_use=bool(client.api.containers(all=True, filters={"volume": v["Name"]})))
            for v in listed
        ]


def reap_past_deadline(
    client: docker.DockerClient, *, label_prefix: str = LABEL_PREFIX, now: datetime | None = None
) -> SweepReport:
    """Kill and remove managed containers past their `<prefix>.deadline`, then remove managed volumes past theirs.

    A volume's managed holders are force-removed with it (a volume's deadline should not come before its
    containers'); one an unmanaged container holds is kept and reported. Resources without the managed
    label or without a deadline label are never listed; an unreadable deadline is reported and left alone.
    """
    moment = now or datetime.now(UTC)
    tally = _Tally()
    filters = managed_filter(label_prefix, present=[Label.DEADLINE])
    with translate("reap resources past their deadline"):
        for summary in client.api.containers(all=True, filters=filters):
            name = _container_name(summary)
            if _past_deadline(summary, name, label_prefix, moment, tally) and _removed_container(
                client, summary["Id"], name, tally
            ):
                tally.containers.append(name)
        for volume in client.api.volumes(filters=filters).get("Volumes") or []:
            if _past_deadline(volume, volume["Name"], label_prefix, moment, tally):
                _reap_volume(client, volume["Name"], label_prefix, tally)
    report = tally.report(dry_run=False)
    if report.removed or report.removed_containers or report.failed:
        logger.warning(
            "reaped past their deadline: containers=%s volumes=%s failed=%s",
            list(report.removed_containers),
            list(report.removed),
            list(report.failed),
        )
    return report


def _past_deadline(resource: Mapping[str, Any], name: str, prefix: str, now: datetime, tally: _Tally) -> bool:
    deadline = parse_deadline(label(resource.get("Labels"), prefix, Label.DEADLINE))
    if deadline is None:
        tally.failed.append((name, "unreadable deadline label; left alone"))
        return False
    return deadline <= now


def _reap_volume(client: docker.DockerClient, name: str, prefix: str, tally: _Tally) -> None:
    holders = client.api.containers(all=True, filters={"volume": name})
    if not all(_managed(h, prefix) for h in holders):
        tally.in_use.append(name)
        logger.warning("reaper kept volume=%s past its deadline: an unmanaged container uses it", name)
        return
    _remove_volume(client, name, holders, tally)
