"""Property-based: no accepted file name escapes the volume; every rejected one fails before Docker."""

from __future__ import annotations

import io
import posixpath
import tarfile
from unittest import mock

import docker
from hypothesis import given, settings
from hypothesis import strategies as st

from isolation import InvalidFilenameError, InvalidIdentifierError, IsolatedContainerVolume, IsolationError
from isolation.archive import prepare_inputs, tar_stream
from isolation.naming import validate_filename

MOUNT = "/data"
segment_chars = st.sampled_from([*list("ab.-_/\\\x00\n "), "..", "ü", "\x7f", "/"])
hostile_names = st.one_of(
    st.text(max_size=40),
    st.lists(segment_chars, max_size=12).map("".join),
    st.lists(st.sampled_from(["..", ".", "", "a", "b.txt", "ü"]), min_size=1, max_size=6).map("/".join),
)


def is_inside(mount: str, name: str) -> bool:
    resolved = posixpath.normpath(posixpath.join(mount, name))
    return resolved.startswith(mount + "/")


@settings(max_examples=500)
@given(hostile_names)
def test_an_accepted_name_always_stays_inside_the_volume(name: str) -> None:
    try:
        validate_filename(name)
    except InvalidFilenameError:
        return
    assert is_inside(MOUNT, name)
    assert posixpath.normpath(name) == name  # nothing for the engine to resolve
    data = b"".join(tar_stream(prepare_inputs({name: "x"})))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        entries = archive.getnames()
    assert entries[-1] == name
    assert all(is_inside(MOUNT, entry) for entry in entries)


@settings(max_examples=300)
@given(hostile_names)
def test_a_rejected_name_raises_before_any_docker_call(name: str) -> None:
    client = mock.create_autospec(docker.DockerClient, instance=True)
    volume = IsolatedContainerVolume("acme", "prop", client)
    try:
        volume.initialize({name: "x"})
    except InvalidFilenameError:
        assert client.mock_calls == []
        return
    except IsolationError:
        pass  # the mock engine cannot really create the volume; what matters is that it was asked
    assert is_inside(MOUNT, name)
    assert client.mock_calls != []


@given(st.text(max_size=80))
def test_an_identifier_is_accepted_only_in_its_documented_alphabet(value: str) -> None:
    client = mock.create_autospec(docker.DockerClient, instance=True)
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    try:
        IsolatedContainerVolume(value, "run", client)
    except InvalidIdentifierError:
        assert not value or len(value) > 64 or not set(value) <= allowed
        assert client.mock_calls == []
        return
    assert 1 <= len(value) <= 64 and set(value) <= allowed
