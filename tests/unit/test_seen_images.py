"""A worker asks its engine about a tool image once, and pulls again when the engine lost one it remembered (fakes)."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

import isolation
from isolation import ImageMissingError, SeenImages
from tasks.service import runner


class FakeApi:
    """The one call image presence makes: inspect_image, counted; images in `present` exist."""

    def __init__(self, *present: str) -> None:
        self.present, self.inspected = set(present), 0

    def inspect_image(self, image: str) -> dict[str, Any]:
        self.inspected += 1
        if image not in self.present:
            raise docker.errors.ImageNotFound(image)
        return {"Id": "sha256:" + "0" * 64}


def client_of(api: FakeApi) -> Any:
    return SimpleNamespace(api=api)


def test_a_present_image_is_asked_about_once() -> None:
    api, seen = FakeApi("tool:1"), SeenImages()
    assert all(seen.present(client_of(api), "tool:1") for _ in range(5))
    assert api.inspected == 1


def test_an_absent_image_is_asked_about_every_time_and_remembered_once_it_is_there() -> None:
    api, seen = FakeApi(), SeenImages()
    assert not seen.present(client_of(api), "tool:1") and not seen.present(client_of(api), "tool:1")
    api.present.add("tool:1")
    assert seen.present(client_of(api), "tool:1") and seen.present(client_of(api), "tool:1")
    assert api.inspected == 3


def test_forget_says_whether_the_image_was_remembered() -> None:
    api, seen = FakeApi("tool:1"), SeenImages()
    assert seen.forget("tool:1") is False
    seen.present(client_of(api), "tool:1")
    assert seen.forget("tool:1") is True and seen.forget("tool:1") is False


def test_a_remembered_image_the_engine_lost_is_pulled_and_the_run_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    api, seen, pulled, attempts = FakeApi("tool:1"), SeenImages(), [], []
    seen.present(client_of(api), "tool:1")
    api.present.clear()  # removed from the engine since

    def run_in_volumes(*args: Any) -> Any:
        attempts.append(args)
        if len(attempts) == 1:
            raise ImageMissingError("image 'tool:1' is not present on the Docker Engine")
        return "ran"

    def pull(client: Any, image: str, **_: Any) -> None:
        pulled.append(image)
        api.present.add(image)

    monkeypatch.setattr(runner, "_run_in_volumes", run_in_volumes)
    monkeypatch.setattr(isolation, "pull_image", pull)
    ctx: Any = SimpleNamespace(client=client_of(api), images=seen, task_id="t", stage=lambda *a, **k: nullcontext())
    ctx.settings = SimpleNamespace(pull_timeout_seconds=60)
    plan: Any = SimpleNamespace(spec=SimpleNamespace(name="tool"))
    assert runner._run_with_image(plan, ctx, "tool:1", sink=None) == "ran"  # type: ignore[arg-type]
    assert pulled == ["tool:1"] and len(attempts) == 2


def test_a_missing_image_the_worker_never_remembered_is_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_in_volumes(*args: Any) -> Any:
        raise ImageMissingError("gone")

    monkeypatch.setattr(runner, "_run_in_volumes", run_in_volumes)
    monkeypatch.setattr(runner, "_pull_if_missing", lambda *args: None)
    ctx: Any = SimpleNamespace(images=SeenImages(), task_id="t")
    with pytest.raises(ImageMissingError):
        runner._run_with_image(SimpleNamespace(), ctx, "tool:1", sink=None)  # type: ignore[arg-type]
