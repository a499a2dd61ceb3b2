"""NumPy references of the segmentation tests (tests/kernels/check_segment.py,
tests/stages/segment/segment.py)."""
import numpy as np


def intermodes(h, max_passes=10000):
    """ImageJ's Intermodes on histogram h: (smoothing passes, threshold bin),
    or (-1, -1) when it is not bimodal after max_passes passes."""
    h = np.asarray(h, np.float64).copy()
    for passes in range(max_passes + 1):
        m = np.flatnonzero((h[1:-1] > h[:-2]) & (h[1:-1] > h[2:])) + 1
        if len(m) == 2:
            return passes, int((m[0] + m[1]) // 2)
        if passes == max_passes:
            return -1, -1
        p = np.concatenate([[0.0], h, [0.0]])
        h = (p[:-2] + p[1:-1] + p[2:]) / 3
