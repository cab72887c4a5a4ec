"""DriftDetector on real embeddings: false alarms on same-domain windows, detection of another domain."""

from __future__ import annotations

import time

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.monitor import DriftDetector

WINDOW = 150  # the drift_data fixture's window size, checked below


def _windows(vectors: np.ndarray) -> list[np.ndarray]:
    return [vectors[i * WINDOW:(i + 1) * WINDOW] for i in range(len(vectors) // WINDOW)]


@pytest.fixture(scope="module")
def fitted(drift_data) -> tuple[DriftDetector, float]:
    assert drift_data.window == WINDOW
    start = time.perf_counter()
    detector = DriftDetector(seed=1).fit(drift_data.reference, window_size=WINDOW)
    return detector, time.perf_counter() - start


def test_same_domain_windows_rarely_alarm_and_another_domain_is_flagged(fitted, drift_data):
    detector, fit_s = fitted
    same = [detector.check(w) for w in _windows(drift_data.same)]
    other = [detector.check(w) for w in _windows(drift_data.other)]
    false_alarm = sum(r.drifted for r in same) / len(same)
    detection = sum(r.drifted for r in other) / len(other)
    check_s = float(np.median([r.seconds for r in same + other]))
    per_test = {name: (sum(getattr(r, f"{name}_drifted") for r in same),
                       sum(getattr(r, f"{name}_drifted") for r in other)) for name in ("mmd", "auc", "centroid")}
    print(f"\nwindow {WINDOW} queries, reference {len(drift_data.reference)}; fit+calibration {fit_s:.2f}s; "
          f"median check {check_s:.3f}s\nno drift: {len(same)} windows, false alarms {false_alarm:.1%}\n"
          f"SciFact vs STS: {len(other)} windows, flagged {detection:.1%}\n"
          f"per test (false alarms, detections): {per_test}")
    assert len(same) >= 20 and len(other) >= 20
    assert false_alarm <= 0.10, [r.to_dict() for r in same if r.drifted]
    assert detection >= 0.95, [r.to_dict() for r in other if not r.drifted]
    assert check_s < 1.0
    # p-values are p-values: spread out under no drift, tiny under drift.
    assert np.median([r.mmd_p_value for r in same]) > 0.2
    assert max(r.mmd_p_value for r in other) <= detector.alpha
    assert all(r.auc > r.auc_threshold and r.centroid_shift > r.centroid_threshold for r in other)


def test_thresholds_come_from_the_reference_not_a_constant(fitted, drift_data):
    detector, _ = fitted
    result = detector.check(drift_data.same[:WINDOW])
    # The calibrated AUC limit for 150 vs 150 at 384-d sits well above 0.5 (chance with noise), below 1.
    assert 0.5 < result.auc_threshold < 0.8
    assert 0 < result.centroid_threshold < 0.5
    assert result.n_used == WINDOW and result.n_window == WINDOW and result.n_reference == len(drift_data.reference)
    # A smaller window is calibrated for its own size: fewer vectors, a wider null, a higher AUC limit.
    small = detector.check(drift_data.same[:40])
    assert small.n_used == 40 and small.auc_threshold > result.auc_threshold
    # Window sizes snap down to a fixed ladder, so uneven traffic reuses the calibration of 150.
    assert detector.check(drift_data.same[:180]).n_used == WINDOW
    assert small.to_dict()["drifted"] in (True, False)


def test_a_mixed_window_moves_the_statistics(fitted, drift_data):
    detector, _ = fitted
    clean = detector.check(drift_data.same[-WINDOW:])
    half = np.concatenate([drift_data.same[-WINDOW // 2:], drift_data.other[:WINDOW // 2]])
    mixed = detector.check(half)
    assert mixed.mmd2 > clean.mmd2 and mixed.centroid_shift > clean.centroid_shift and mixed.auc > clean.auc
    assert mixed.drifted


def test_bad_input_is_refused_with_a_clear_error(drift_data):
    with pytest.raises(InputError, match="not fitted"):
        DriftDetector().check(drift_data.same[:50])
    with pytest.raises(InputError, match="at least 20"):
        DriftDetector().fit(drift_data.reference[:5])
    with pytest.raises(InputError, match="alpha"):
        DriftDetector(alpha=1.5)
    detector = DriftDetector(calibration_rounds=5).fit(drift_data.reference[:200])
    with pytest.raises(InputError, match="dimension 10"):
        detector.check(np.ones((50, 10), dtype=np.float32))
    with pytest.raises(InputError, match="at least 10"):
        detector.check(drift_data.same[:3])
    bad = drift_data.same[:50].copy()
    bad[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        detector.check(bad)
    with pytest.raises(InputError, match="2-d"):
        detector.check(drift_data.same[0])
