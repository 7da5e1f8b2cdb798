"""Reference profiles in the registry, on SQLite and PostgreSQL: a wide model's numbers as
bytes, not as tens of megabytes of JSON; profiles stored by earlier releases still read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Text, cast, select, update

from modelpilot.errors import RegistryError
from modelpilot.registry import schema
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from tests.registry.test_store import register

FEATURES = 200


@pytest.fixture(scope="module")
def wide_profile() -> ReferenceProfile:
    return ReferenceProfile.from_data(np.random.default_rng(0).normal(size=(3000, FEATURES)))


def stored_json(store: Registry, version: int) -> str:
    with store._engine.connect() as conn:
        query = select(cast(schema.versions.c.reference, Text)).where(
            schema.versions.c.version == version
        )
        return str(conn.execute(query).scalar_one())


def test_a_wide_profile_is_stored_as_bytes_not_as_json(
    store: Registry, tmp_path: Path, wide_profile: ReferenceProfile
) -> None:
    """Every feature's sketch of 1,024 values as JSON (20 KB a feature) made a model of 2,000
    features a 55-MB row, whose decoding stopped a serving process for 3 s."""
    version = register(store, tmp_path, reference=wide_profile)
    assert len(stored_json(store, version)) < 400 * FEATURES  # was 21,000 a feature
    assert store.reference_profile("m", version) == wide_profile  # its arrays in two parts
    assert store.get_version("m", version).has_reference


def test_a_profile_stored_by_an_earlier_release_reads_as_it_did(
    store: Registry, tmp_path: Path, wide_profile: ReferenceProfile
) -> None:
    version = register(store, tmp_path, reference=wide_profile)
    with store._engine.begin() as conn:  # the whole profile as JSON, as releases before wrote
        conn.execute(
            update(schema.versions).where(schema.versions.c.version == version),
            [{"reference": wide_profile.to_dict()}],
        )
    assert store.reference_profile("m", version) == wide_profile


def test_a_profile_of_a_newer_format_is_refused_with_why(
    store: Registry, tmp_path: Path, wide_profile: ReferenceProfile
) -> None:
    version = register(store, tmp_path, reference=wide_profile)
    newer = {**json.loads(stored_json(store, version)), "format": 99}
    with store._engine.begin() as conn:
        conn.execute(
            update(schema.versions).where(schema.versions.c.version == version),
            [{"reference": newer}],
        )
    with pytest.raises(RegistryError, match=r"m:1: .*format 99 .*upgrade ModelPilot"):
        store.reference_profile("m", version)
