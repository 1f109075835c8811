"""Host keys of a run: addresses while few, else blocks, regions or the family, each with the keys above it."""

from __future__ import annotations

from tasks.scope.host import Span, address_span, network_span
from tasks.scope.reach import MAX_KEYS, host_keys


def spans(*texts: str) -> list[Span]:
    found = [network_span(t) if "/" in t else address_span(t) for t in texts]
    return [s for s in found if s is not None]


def texts(*targets: str, wide_after: int = 16) -> list[str]:
    return [key.text for key in host_keys(spans(*targets), wide_after)]


def test_a_few_addresses_are_keyed_one_by_one_once_each_with_their_block_region_and_family_above() -> None:
    keys = host_keys(spans("198.51.100.7", "198.51.100.7", "198.51.100.0/31", "2001:db8::1"), 16)
    assert [k.text for k in keys] == ["198.51.100.0", "198.51.100.1", "198.51.100.7", "2001:db8::1"]
    assert keys[2].above == ("198.51.100.0/24", "198.51.0.0/16", "0.0.0.0/0")
    assert keys[3].above == ("2001:db8::/64", "2001:db8::/48", "::/0")
    assert keys[2].wire() == ["198.51.100.7", 4, "c6336407", "c6336407", list(keys[2].above)]


def test_past_wide_after_addresses_a_run_is_keyed_by_its_24_and_64_blocks() -> None:
    assert texts("198.51.100.0/28", "198.51.101.9") == ["198.51.100.0/24", "198.51.101.0/24"]
    assert texts("198.51.100.0/28", wide_after=15) == ["198.51.100.0/24"]
    assert texts("198.51.100.0/28", wide_after=16) == [f"198.51.100.{i}" for i in range(16)]
    assert texts("2001:db8::/120") == ["2001:db8::/64"]


def test_a_run_wider_than_max_keys_blocks_is_keyed_by_regions_and_past_that_by_its_family() -> None:
    assert len(texts("10.0.0.0/16")) == MAX_KEYS == 256
    assert texts("10.0.0.0/15") == ["10.0.0.0/16", "10.1.0.0/16"]
    assert texts("2001:db8::/32") == ["::/0"]
    many = [f"{a}.{b}.0.0/16" for a in range(1, 3) for b in range(200)]
    assert texts(*many) == ["0.0.0.0/0"]
    family = host_keys(spans("2001:db8::/32"), 16)[0]
    assert family.above == () and family.wire()[2:4] == ["0" * 32, "f" * 32]
