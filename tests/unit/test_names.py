"""Thread names map to stable UUIDs; anything that parses as a UUID is an id."""

from __future__ import annotations

import uuid

import pytest

from enduro.errors import ConfigError
from enduro.names import THREAD_NAMESPACE, parse_thread_ref, thread_id_for_name


def test_a_name_maps_to_the_same_uuid_forever() -> None:
    # Pinned: a different value would orphan every named thread ever created.
    assert uuid.UUID("5b0e4a47-5c1e-5d6b-9c1f-e6d0c0e1d2a7") == THREAD_NAMESPACE
    ref = parse_thread_ref("nightly-report-7")
    assert ref.name == "nightly-report-7"
    assert ref.thread_id == str(uuid.uuid5(THREAD_NAMESPACE, "nightly-report-7"))
    assert ref.thread_id == thread_id_for_name("nightly-report-7")
    assert uuid.UUID(ref.thread_id).version == 5
    assert parse_thread_ref("nightly-report-8").thread_id != ref.thread_id


def test_uuids_in_any_spelling_are_ids() -> None:
    tid = uuid.uuid4()
    for text in (str(tid), str(tid).upper(), tid.hex, "{" + str(tid) + "}"):
        ref = parse_thread_ref(text)
        assert (ref.thread_id, ref.name) == (str(tid), None)


@pytest.mark.parametrize("bad", ["", "two words", "tab\there", "x" * 201, "nl\n"])
def test_unusable_names_are_refused_with_what_to_do(bad: str) -> None:
    with pytest.raises(ConfigError, match="give a UUID, or a name"):
        parse_thread_ref(bad)
