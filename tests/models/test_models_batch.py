"""Tests of hoimask.models._batch (the batch helpers shared by the models)."""

import pytest

from hoimask._checks import ValueRangeError
from hoimask.models._batch import MASKER_KINDS, build_masker


def test_build_masker_builds_every_kind_and_rejects_unknown_ones():
    # an unknown name used to fall through to HybridMasker silently
    names = {kind: type(build_masker(kind, 0.75, {})).__name__ for kind in MASKER_KINDS}
    assert names == {"hybrid": "HybridMasker", "region": "RegionRatioMasker", "random": "RandomMasker",
                     "target": "TargetFocusedMasker"}
    with pytest.raises(ValueRangeError, match="argument 'kind'.*'hybird'"):
        build_masker("hybird", 0.75, {})
