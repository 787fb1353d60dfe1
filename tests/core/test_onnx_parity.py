"""``mar_core.onnx_parity.compare_detections``: pairs detections regardless of row order, and
reports a moved box, a changed score, a lost or an extra detection, or another label."""

from __future__ import annotations

import numpy as np

from mar_core.onnx_parity import compare_detections


def dets(boxes, labels, scores):
    return {
        "boxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.array(labels, dtype=np.int64),
        "scores": np.array(scores, dtype=np.float32),
    }


REF = dets([[1, 2, 30, 40], [10, 10, 20, 20]], [1, 2], [0.9, 0.6])


def test_the_same_detections_in_another_order_agree():
    p = compare_detections(REF, dets([[10, 10, 20, 20], [1, 2, 30, 40]], [2, 1], [0.6, 0.9]), 0.05)
    assert p.ok and p.usable and p.compared == 2 and p.max_box_px == 0.0


def test_a_box_moved_by_a_tenth_of_a_pixel_is_usable_but_not_float_noise():
    p = compare_detections(REF, dets([[1.1, 2, 30, 40], [10, 10, 20, 20]], [1, 2], [0.9, 0.6]), 0.05)
    assert p.usable and not p.ok and np.isclose(p.max_box_px, 0.1, atol=1e-5)


def test_a_box_moved_by_a_pixel_is_not_usable():
    p = compare_detections(REF, dets([[2, 2, 30, 40], [10, 10, 20, 20]], [1, 2], [0.9, 0.6]), 0.05)
    assert not p.usable and p.unmatched == 0


def test_a_lost_an_extra_or_a_relabelled_detection_is_unmatched():
    assert compare_detections(REF, dets([[1, 2, 30, 40]], [1], [0.9]), 0.05).unmatched == 1
    extra = dets([[1, 2, 30, 40], [10, 10, 20, 20], [0, 0, 5, 5]], [1, 2, 1], [0.9, 0.6, 0.3])
    assert compare_detections(REF, extra, 0.05).unmatched == 1
    relabelled = compare_detections(REF, dets([[1, 2, 30, 40], [10, 10, 20, 20]], [1, 3], [0.9, 0.6]), 0.05)
    assert relabelled.unmatched == 2 and not relabelled.usable


def test_a_score_changed_beyond_the_tolerance_is_not_usable():
    p = compare_detections(REF, dets([[1, 2, 30, 40], [10, 10, 20, 20]], [1, 2], [0.9, 0.61]), 0.05)
    assert not p.usable and np.isclose(p.max_score, 0.01, atol=1e-6)


def test_detections_at_the_threshold_are_left_out_on_both_sides():
    ref = dets([[1, 2, 30, 40], [0, 0, 4, 4]], [1, 1], [0.9, 0.05])
    assert compare_detections(ref, dets([[1, 2, 30, 40]], [1], [0.9]), 0.05).usable
