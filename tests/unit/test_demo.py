"""scripts/demo keeps its promises: its Redis, which shares the host network with the demo's tools, has a password."""

from __future__ import annotations

import re
from pathlib import Path

DEMO = (Path(__file__).resolve().parents[2] / "scripts" / "demo").read_text()


def test_the_demo_starts_its_own_redis_with_a_password_kept_off_the_command_line() -> None:
    assert re.search(r"printf 'requirepass %s\\n' \"\$redis_password\" >\"\$DEMO/redis.conf\"", DEMO)
    assert 'redis-server "$DEMO/redis.conf"' in DEMO
    assert "chmod 600" in DEMO


def test_the_demos_broker_url_carries_that_password() -> None:
    urls = re.findall(r'TOOLRUNNER_BROKER_URL="?([^"\n]+)', DEMO)
    assert urls == ["redis://:$redis_password@127.0.0.1:$redis_port/0"]
