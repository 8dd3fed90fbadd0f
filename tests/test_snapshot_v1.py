"""The typed Snapshot's ``to_json()`` gives exactly the version-1 bytes recorded before it was typed."""

from __future__ import annotations

import gzip
import json

import pytest

import orjson

from paths import fixture_path
from golden_v1 import ADDED, DIGESTS_FILE, FIXTURE_CASES, SIM_FILE, fixture_digest, sim_lines, strip_added


def test_simulated_replay_snapshots_are_the_recorded_v1_bytes():
    """Every snapshot of a 40 s simulated replay (densities of every fate) is byte-identical to
    the recorded one once the fields added since (``ADDED``) are taken out."""
    expected = gzip.decompress(SIM_FILE.read_bytes()).splitlines()
    got = sim_lines()
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert strip_added(a) == b, f"line {i + 1} differs"


def test_added_fields_come_last_in_their_section_and_nothing_else_moved():
    """The added fields are appended (a v1 reader keyed by position or by name is unaffected),
    and taking them out of a recorded line changes nothing (the comparison above is exact)."""
    expected = gzip.decompress(SIM_FILE.read_bytes()).splitlines()
    assert all(strip_added(line) == line for line in expected[:50])
    for line in sim_lines()[:50]:
        d = orjson.loads(line)
        for section, keys in ADDED.items():
            assert tuple(d[section])[-len(keys):] == keys


@pytest.mark.parametrize("name,category,every_ms", FIXTURE_CASES)
def test_real_capture_snapshots_are_the_recorded_v1_bytes(name, category, every_ms):
    """The snapshots of each real capture hash to the digest recorded before the change (the
    cryptofeed captures are optional: skipped, with a reason, unless BYBITMON_REAL_CAPTURES is set)."""
    digests = json.loads(DIGESTS_FILE.read_text())
    assert fixture_digest(fixture_path(name), category, every_ms, strip=True) == digests[name]


def test_recorded_sim_output_covers_every_density_fate():
    """The recorded replay is worth comparing: it holds every state a density can show."""
    states = set()
    for line in gzip.decompress(SIM_FILE.read_bytes()).splitlines():
        states |= {d["state"] for d in json.loads(line)["densities"]}
    assert states == {"active", "ending", "eaten", "pulled", "faded", "out_of_depth"}


def test_snapshot_json_writes_density_keys_in_the_views_field_order():
    """--json builds density objects from a literal (cheaper than zipping keys); its keys must
    be DensityView's fields, in order, as the typed snapshot writes them."""
    from bybitmon.core.densities import density_json as _density_dict
    from bybitmon.core.snapshot import DensityView, field_names

    assert tuple(_density_dict(*range(8))) == field_names(DensityView)
    assert list(_density_dict(*range(8)).values()) == list(range(8))
