"""esm.runtime.gc_tuning: the daemon freezes its start-up objects and collects less often."""

from __future__ import annotations

import gc

from esm.runtime.gc_tuning import THRESHOLDS, tune_for_throughput


def test_tuning_freezes_existing_objects_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_for_throughput()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0  # start-up objects left out of collections
        tune_for_throughput()  # idempotent
        assert gc.get_threshold() == THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
