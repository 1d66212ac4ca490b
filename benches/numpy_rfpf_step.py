"""One RF-PF update in numpy, vectorised over all pairs as the authors' reference code is
(an n x n x m difference tensor), for the ratio that `hdpf bench step` is read against.

Same problem and work as `hdpf bench step --filter rfpf --particles N --dim M`: the localization
loss L(p) = 1/2 (x.(p - u))^2, its gradient, the pair sums
S_i = sum_j (eps / (|p_i - p_j| + eps))^m (p_i - p_j), the pair term c (L_i - mean L) S_i added
to the gradient, and the move p <- p - eta grad. Our own code (no third-party code copied).

Usage: python3 benches/numpy_rfpf_step.py [N] [M] [STEPS]   (prints one JSON line)
"""
import json
import sys
import time

import numpy as np


def update(p, x, u, eps, eta):
    m = p.shape[1]
    e = (p - u) @ x                      # x.(p - u), one per particle
    loss = 0.5 * e * e
    grad = e[:, None] * x[None, :]
    diff = p[:, None, :] - p[None, :, :]  # n x n x m
    dist = np.sqrt((diff * diff).sum(axis=2))
    w = (eps / (dist + eps)) ** m
    s = (w[:, :, None] * diff).sum(axis=1)
    c = (m - 2.0) / (eps * eps)
    grad += c * (loss - loss.mean())[:, None] * s
    return p - eta * grad


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    rng = np.random.default_rng(0)
    x = rng.normal(size=m)
    u = rng.normal(size=m)
    p = rng.normal(size=(n, m))
    eps, eta = 0.5 * np.sqrt(2.0 * m), 1e-3
    p = update(p, x, u, eps, eta)  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        p = update(p, x, u, eps, eta)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"impl": "numpy", "particles": n, "dim": m,
                      "ms_per_step_median": 1e3 * times[len(times) // 2],
                      "ms_per_step_min": 1e3 * times[0], "numpy": np.__version__}))


if __name__ == "__main__":
    main()
