"""benchmarks/bga_head_speed.py: the head of a past revision beside this one's, timed alike."""
import json

import pytest

import benchmarks.bga_head_speed as bga_head_speed
from data.errors import UserError, raising


def test_it_times_both_heads_and_records_the_revision(tmp_path):
    out = bga_head_speed.main(["--before", "HEAD", "--steps", "1", "--batch", "4", "--words", "3", "--width", "16",
                               "--output", str(tmp_path / "s.json")])
    assert len(out["before"]["commit"]) == 40 and out["before"]["revision"] == "HEAD"
    for side in ("before", "after"):
        assert out[side]["cpu_seconds_per_step"] > 0 and out[side]["wall_seconds_per_step"] > 0
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["provenance"]["command"].startswith("python benchmarks/bga_head_speed.py --before HEAD")


def test_a_revision_without_the_head_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--before no-such-rev"):
        raising(bga_head_speed.main)(["--before", "no-such-rev", "--output", str(tmp_path / "s.json")])
