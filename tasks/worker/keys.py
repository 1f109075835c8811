"""Every Redis key toolrunner writes: its name, its type, and how it ends (a TTL, or the code that deletes it).

One schema for the whole worker. Python builds keys with these (`IDENTITY(task_id)`); the Lua scripts in lua/
build the fair-share keys from the same prefix (`P .. 'lease:' .. tenant`), and the names below are theirs.
tests/integration/test_redis_schema.py runs a workload and fails on any key left in Redis that no entry here
(or in EXTERNAL, Celery's and Kombu's own) matches. Ids and tenant names in keys are [A-Za-z0-9_-] (task ids
may hold ':'), so no two patterns can name one key.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from tasks.hosts import store as hosts_store
from tasks.scope import store as scope_store
from tasks.webhooks import endpoint as webhook_endpoint
from tasks.webhooks import outbox as webhook_outbox

ROOT = "toolrunner:"
FAIR_SHARE = ROOT + "fs:"  # the prefix every fair-share script receives as ARGV[1]
CACHE = ROOT + "cache:"


@dataclass(frozen=True)
class Key:
    """One kind of key: its pattern ({} stands for an id), Redis type, and how every key of it ends."""

    pattern: str
    kind: str  # string, hash, list, set, zset
    ends: str  # its TTL, or who deletes it and when
    expires: bool = True  # always written with a TTL; False: `ends` names the owner that deletes it

    def __call__(self, *parts: object) -> str:
        """The key for these ids."""
        return self.pattern.format(*parts)

    @property
    def glob(self) -> str:
        """A SCAN/fnmatch pattern matching every key of this kind."""
        return self.pattern.replace("{}", "*")


# --- a run's identity, delivery and control -----------------------------------------------------------------
IDENTITY = Key(ROOT + "identity:{}", "string", "Settings.identity_ttl after its first publish (delivery.py)")
DELIVERIES = Key(ROOT + "deliveries:{}", "string", "redelivery windows + result lifetime (count_delivery)")
RUNNING = Key(ROOT + "running:{}", "string", "the run lock: RUN_LOCK_TTL, renewed while it runs, released after")
CANCEL = Key(ROOT + "cancel:{}:{}", "string", "Settings.identity_ttl (record_cancel)")
LEGACY_CANCEL = Key(ROOT + "cancel:{}", "string", "written by releases before tenant-bound cancels; read only")
DRAINING = Key(ROOT + "draining:{}", "string", "DRAINING_TTL; deleted when a worker of that name starts")
SWEEP_LOCK = Key(ROOT + "sweep-lock:{}", "string", "900 s; released when the daemon's sweep ends")
WORKER = Key(ROOT + "worker:{}", "hash", "60 s, rewritten every 10 s by the worker's disk guard (diskguard.py)")

# --- fair share (tasks/worker/fairshare.py, parking.py, lua/) ------------------------------------------------
LIMITS = Key(FAIR_SHARE + "limits", "hash", "operators: `toolrunner limits set/unset`", expires=False)
INTRUSIVE = Key(
    FAIR_SHARE + "intrusive", "set", "operators: `toolrunner limits set --[no-]allow-intrusive`, `unset`", False
)
LEASES = Key(FAIR_SHARE + "leases", "zset", "members scored by expiry, dropped by every script once past it", False)
TENANT_LEASES = Key(FAIR_SHARE + "lease:{}", "zset", "as LEASES, per tenant (and per tenant and tool)", False)
WAITING = Key(FAIR_SHARE + "wait:{}", "list", "the pick pops its runs; forget removes one; empty: gone", False)
RING = Key(FAIR_SHARE + "ring", "list", "the pick rotates it; a tenant leaves when its list empties", False)
RINGED = Key(FAIR_SHARE + "ringed", "set", "the tenants in RING, kept with it", False)
PARKED = Key(FAIR_SHARE + "parked", "hash", "admitted() or forget() delete a run's envelope", False)
PARKED_AT = Key(FAIR_SHARE + "parked_at", "zset", "with PARKED; the safety net ends runs past max wait", False)
REPUBLISHED = Key(FAIR_SHARE + "republished", "hash", "with PARKED (admitted or forgotten)", False)
DISPATCHING = Key(FAIR_SHARE + "dispatching", "zset", "admitted() or forget(); republished after 10 min", False)
UNSENT = Key(FAIR_SHARE + "unsent", "zset", "parking.dispatch once published; the safety net after 5 s", False)
DONE = Key(FAIR_SHARE + "done:{}", "string", "Settings.identity_ttl (release, abandon, the net's give-up)")
LEASE_LOST = Key(FAIR_SHARE + "lost:{}", "string", "2 lease TTLs; deleted when the run is put back")
WORKERS = Key(FAIR_SHARE + "workers", "zset", "members scored by expiry, dropped by every capacity count", False)
TENANTS = Key(FAIR_SHARE + "tenants", "zset", "members idle an hour dropped by the gauges (loads)", False)
NET_LOCK = Key(FAIR_SHARE + "net", "string", "a lease TTL; released after each safety-net round")
HOST_OVERRIDES = Key(hosts_store.KEY, "hash", "operators: `toolrunner hosts set/unset` (tasks.hosts)", expires=False)

# --- host politeness (lua/common.lua host_*; keys are addresses or blocks: tasks/scope/reach.py) --------------------
HOST = Key(FAIR_SHARE + "host:{}", "zset", "run ids by expiry; forget() and every check drop theirs", False)
HOST_RATES = Key(FAIR_SHARE + "hostrate:{}", "hash", "with HOST: the same members go at the same time", False)
HOST_KIDS = Key(FAIR_SHARE + "hostkids:{}", "set", "forget() prunes keys holding nothing; checks walking it too", False)
HOST_WANT = Key(FAIR_SHARE + "hostwant:{}", "string", "2 lease TTLs, renewed while its run waits; deleted at its lease")
HOST_HELD = Key(FAIR_SHARE + "hostheld", "hash", "forget() deletes a run's entry (every way a run ends)", False)
HOST_BLOCKED = Key(FAIR_SHARE + "hostblocked", "hash", "admitted() or forget() delete a run's entry", False)

# --- chunked runs (tasks/worker/chunks.py, lua/chunk_done.lua) ---------------------------------------------------
CHUNKS = Key(ROOT + "chunks:{}", "hash", "result lifetime, renewed per chunk; identity TTL once merged or cancelled")
CHUNK_OUTCOMES = Key(ROOT + "chunk-outcomes:{}", "hash", "with CHUNKS; the merge deletes it")
CHUNK_PLAN = Key(
    ROOT + "chunk-plan:{}", "hash", "with CHUNKS; a chunk's field goes when it is counted, the rest at the end"
)
CHUNK_CLAIMS = Key(
    ROOT + "chunk-claims", "zset", "the claimer removes its range once published; the safety net after 30 s", False
)
MERGING = Key(ROOT + "merging", "zset", "the merge removes its parent; the safety net asks again after 60 s", False)
MERGE_LEASE = Key(
    ROOT + "merge-lease:{}", "string", "MERGE_LEASE_SECONDS, renewed per chunk merged; deleted at the end"
)

# --- the result cache (tasks/worker/cache.py, lua/cache_*.lua) ------------------------------------------------
CACHE_ENTRY = Key(CACHE + "entry:{}", "hash", "Settings.cache_max_age_seconds (Cached.keep)")
FLIGHT = Key(CACHE + "flight:{}", "string", "a lease TTL, renewed while its leader runs")
WAITERS = Key(CACHE + "waiters:{}", "list", "deleted when its flight finishes (cache_finish.lua)", False)
FLIGHTS = Key(CACHE + "flights", "set", "a flight leaves when it finishes (cache_finish.lua)", False)

# --- scope (tasks/scope/store.py) ---------------------------------------------------------------------------------
SCOPE = Key(scope_store.KEY_PATTERN, "hash", "operators: `toolrunner scope add/remove/clear` (tasks.scope)", False)

# --- webhooks (tasks/webhooks/endpoint.py, outbox.py; tasks/worker/webhooks.py) ------------------------------------
WEBHOOK_ENDPOINTS = Key(
    webhook_endpoint.KEY, "hash", "operators: `toolrunner webhooks set/unset/rotate`; a 410 disables one", False
)
WEBHOOK_EVENT = Key(
    webhook_outbox.EVENT, "string",
    "TOOLRUNNER_WEBHOOK_MAX_AGE_SECONDS + backoff max + log days when recorded; log days once it ends",
)  # fmt: skip
WEBHOOK_DUE = Key(
    webhook_outbox.DUE, "zset", "an attempt's end (delivered, gone, dropped, dead letter) removes its event", False
)
WEBHOOK_LOG = Key(webhook_outbox.LOG, "zset", "TOOLRUNNER_WEBHOOK_LOG_DAYS after its last entry; older ones trimmed")

SCHEMA: tuple[Key, ...] = (
    IDENTITY, DELIVERIES, RUNNING, CANCEL, LEGACY_CANCEL, DRAINING, SWEEP_LOCK, WORKER,
    LIMITS, INTRUSIVE, LEASES, TENANT_LEASES, WAITING, RING, RINGED, PARKED, PARKED_AT, REPUBLISHED, DISPATCHING,
    UNSENT, DONE, LEASE_LOST, WORKERS, TENANTS, NET_LOCK, HOST_OVERRIDES,
    HOST, HOST_RATES, HOST_KIDS, HOST_WANT, HOST_HELD, HOST_BLOCKED,
    CHUNKS, CHUNK_OUTCOMES, CHUNK_PLAN, CHUNK_CLAIMS, MERGING, MERGE_LEASE,
    CACHE_ENTRY, FLIGHT, WAITERS, FLIGHTS,
    SCOPE,
    WEBHOOK_ENDPOINTS, WEBHOOK_EVENT, WEBHOOK_DUE, WEBHOOK_LOG,
)  # fmt: skip

# Celery's and Kombu's own keys: results (result_expires), the Redis transport's bindings (and their deadlines),
# unacked messages with their index and mutex, and the queues themselves (a list per queue, empty as they run).
UNACKED = "unacked"  # hash: delivery tag -> [message, exchange, routing key] of every message a worker holds
EXTERNAL: tuple[str, ...] = (
    "celery-task-meta-*", "_kombu.binding*", UNACKED, "unacked_index", "unacked_mutex", "celery", "webhooks", "*.dq2",
)  # fmt: skip


def declared(key: str) -> Key | str | None:
    """The schema entry (or the external pattern) a key belongs to, or None for a key nobody declared."""
    for entry in SCHEMA:
        if fnmatch.fnmatchcase(key, entry.glob):
            return entry
    return next((pattern for pattern in EXTERNAL if fnmatch.fnmatchcase(key, pattern)), None)
