use super::*;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Unit roundoff of `f32`.
const U: f64 = f32::EPSILON as f64 / 2.0;

fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    // Box–Muller (enough for test clouds).
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `n × m` cloud: `centre + scale · N(0, I)` per particle.
fn cloud(n: usize, m: usize, centre: f64, scale: f64, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * m)
        .map(|_| centre + scale * normal(&mut rng))
        .collect()
}

fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// Naive `f64` pair sums and, per entry, an upper bound of the `f32` kernel's error.
///
/// Per term `w (p_i − p_j)_k`, with centred coordinates `p̃` and `r = u (‖p̃_i‖_∞ + ‖p̃_j‖_∞)` (the
/// rounding of the coordinates to `f32`, which moves each difference by at most `r` and the
/// distance by at most `√m r`):
/// - distance: `|Δd| ≤ √m r + (m/2 + 2) u d` (`m` rounded fused multiply-adds, the square root);
/// - `b = ε/(d + ε)`: relative `|Δd|/(d + ε) + 2u`; `w = b^m`: `m` times that plus `2 log₂ m + 2`
///   rounded products;
/// - the term: `|d_k| Δw + w (r + u |d_k|)`;
/// - the running `f32` sums within a tile pair: at most `t + 3` roundings of `Σ_j w |d_k|`;
/// - weights below `1e-30` are flushed to 0: the whole term.
///
/// The test allows twice this bound.
fn naive_pair(p: &[f64], n: usize, m: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mean = tiles::mean(p, n, m);
    let c: Vec<f64> = p
        .chunks_exact(m)
        .flat_map(|r| r.iter().zip(&mean).map(|(v, a)| v - a).collect::<Vec<_>>())
        .collect();
    let t = tiles::tile_size(n, m) as f64;
    let mf = m as f64;
    let mut s = vec![0.0; n * m];
    let mut bound = vec![0.0; n * m];
    for i in 0..n {
        let ni = c[i * m..(i + 1) * m]
            .iter()
            .fold(0.0f64, |a, v| a.max(v.abs()));
        for j in (0..n).filter(|&j| j != i) {
            // (j = i adds exactly 0 on both sides.)
            let nj = c[j * m..(j + 1) * m]
                .iter()
                .fold(0.0f64, |a, v| a.max(v.abs()));
            let r = U * (ni + nj);
            let dk: Vec<f64> = (0..m).map(|k| p[i * m + k] - p[j * m + k]).collect();
            let d = dk.iter().map(|v| v * v).sum::<f64>().sqrt();
            let w = (eps / (d + eps)).powi(m as i32);
            let dd = mf.sqrt() * r + (mf / 2.0 + 2.0) * U * d;
            let dw = w * (mf * (dd / (d + eps) + 2.0 * U) + (2.0 * mf.log2() + 2.0) * U);
            // Weights below 1e-30 are flushed to 0 (see pair.rs).
            let flushed = if w < 2e-30 { w } else { 0.0 };
            for k in 0..m {
                s[i * m + k] += w * dk[k];
                bound[i * m + k] += dk[k].abs() * (dw + flushed)
                    + w * (r + U * dk[k].abs())
                    + (t + 3.0) * U * w * dk[k].abs();
            }
        }
    }
    (s, bound)
}

/// Fast pair sums against the naive reference; returns the largest error / bound.
fn check_pair(p: &[f64], n: usize, m: usize, eps: f64) -> f64 {
    let mut fast = vec![f64::NAN; n * m];
    pair_sums(p, n, m, eps, &mut fast);
    let (s, bound) = naive_pair(p, n, m, eps);
    let mut worst = 0.0f64;
    let (mut emax, mut smax, mut bmax) = (0.0f64, 0.0f64, 0.0f64);
    for q in 0..n * m {
        emax = emax.max((fast[q] - s[q]).abs());
        smax = smax.max(s[q].abs());
        bmax = bmax.max(bound[q]);
        assert!(fast[q].is_finite(), "n={n} m={m} entry {q}: {}", fast[q]);
        let err = (fast[q] - s[q]).abs();
        assert!(
            err <= 2.0 * bound[q] + f64::MIN_POSITIVE,
            "n={n} m={m} entry {q}: fast {} naive {} err {err:e} bound {:e}",
            fast[q],
            s[q],
            bound[q]
        );
        if bound[q] > 0.0 {
            worst = worst.max(err / bound[q]);
        }
    }
    eprintln!("  eps={eps:.3e} max|S|={smax:.3e} max err={emax:.3e} max bound={bmax:.3e}");
    worst
}

#[test]
fn pair_sums_match_naive_on_random_clouds() {
    // Sizes around a lane vector (16) and the tile size (128), a partial last tile, fixed and
    // run-time dimensions.
    for (n, m) in [
        (1, 3),
        (2, 10),
        (7, 3),
        (16, 10),
        (17, 3),
        (63, 10),
        (127, 10),
        (128, 10),
        (129, 5),
        (200, 10),
        (130, 17),
    ] {
        let p = cloud(n, m, 3.0, 1.0, (n * 100 + m) as u64);
        // The paper's width for γ = n/2, and one of the order of the typical distance √(2m).
        for eps in [
            epsilon(0.5 * n as f64, m).unwrap(),
            0.5 * (2.0 * m as f64).sqrt(),
        ] {
            let worst = check_pair(&p, n, m, eps);
            eprintln!("n={n} m={m}: largest error / bound = {worst:.3}");
        }
    }
}

#[test]
fn pair_sums_simd_and_portable_code_agree_bit_for_bit() {
    // AVX-512, AVX2 and the portable code, as far as this CPU has them.
    for (n, m) in [(100, 3), (300, 10), (77, 16), (40, 17)] {
        let p = cloud(n, m, 1.0, 1.0, 11);
        let eps = epsilon(0.5 * n as f64, m).unwrap();
        let run = |isa| {
            let mut out = vec![0.0; n * m];
            pair_sums_with(&p, n, m, eps, &mut out, isa);
            out
        };
        let portable = run(Isa::Portable);
        assert_eq!(run(Isa::Best), portable, "n={n} m={m}");
        assert_eq!(run(Isa::Avx2), portable, "n={n} m={m}");
    }
}

#[test]
fn pair_sums_of_one_particle_are_zero() {
    let mut out = vec![f64::NAN; 10];
    pair_sums(&[1.0; 10], 1, 10, 0.3, &mut out);
    assert_eq!(out, vec![0.0; 10]);
}

#[test]
fn pair_sums_of_clustered_particles() {
    // Distances ≈ 1e-4 ≪ ε = 1, far from the origin: w ≈ 1, S_i ≈ Σ_j (p_i − p_j).
    let (n, m) = (150, 10);
    let p = cloud(n, m, 50.0, 1e-4, 1);
    check_pair(&p, n, m, 1.0);
    // Two tight clusters 1e3 ε apart: cross weights ≈ 1e-30 and below.
    let mut p = cloud(n, m, 0.0, 1e-3, 2);
    p[..n / 2 * m].iter_mut().for_each(|v| *v += 100.0);
    check_pair(&p, n, m, 0.1);
}

#[test]
fn pair_sums_of_far_particles_underflow_to_zero() {
    // Spread 1e6 with ε = 1e-3: every weight is below 1e-30 (flushed to 0), nothing is NaN.
    let (n, m) = (100, 10);
    let p = cloud(n, m, 0.0, 1e6, 3);
    let mut out = vec![f64::NAN; n * m];
    pair_sums(&p, n, m, 1e-3, &mut out);
    assert!(out.iter().all(|v| *v == 0.0));
    check_pair(&p, n, m, 1e-3);
    // Coordinates beyond f32's square range: distances overflow to ∞, weights to 0.
    let p = cloud(n, 3, 0.0, 1e25, 4);
    let mut out = vec![f64::NAN; n * 3];
    pair_sums(&p, n, 3, 1.0, &mut out);
    assert!(out.iter().all(|v| *v == 0.0));
}

#[test]
fn tiles_stay_at_128_slots_while_the_transposed_sums_are_small() {
    assert_eq!(tiles::tile_size(1000, 10), 128);
    assert_eq!(tiles::tile_size(8300, 3), 128);
    assert_eq!(tiles::tile_size(10_000, 10), 128);
    // 10⁴ × 39 × 100 floats would be 156 MB: at most 64 tiles instead.
    assert_eq!(tiles::tile_size(10_000, 100), 256);
    assert_eq!(tiles::tile_size(100_000, 10), 256);
    // Sizes whose transposed sums would not fit in memory do not overflow.
    assert_eq!(tiles::tile_size(usize::MAX / 2, 1000), 256);
}

#[test]
fn pair_sums_are_identical_for_any_thread_count() {
    // 8300 × 3: more than 64 tiles of 128 (an odd count, 65), the regime the tile rule allows
    // while the transposed sums are small.
    for (n, m) in [(1000, 10), (333, 17), (5000, 3), (8300, 3)] {
        let p = cloud(n, m, 1.0, 1.0, 5);
        let eps = epsilon(0.5 * n as f64, m).unwrap();
        let run = |threads| {
            with_threads(threads, || {
                let mut out = vec![0.0; n * m];
                pair_sums(&p, n, m, eps, &mut out);
                out
            })
        };
        let one = run(1);
        assert_eq!(one, run(2), "n={n} m={m}");
        assert_eq!(one, run(8), "n={n} m={m}");
    }
}

/// Naive `f64` SVGD sums and an error bound per entry: with the same coordinate rounding `r` as
/// the pair sums, the kernel value's relative error is at most `(|x| (m + 3) + 2|x|/√… )` — here
/// `|Δk|/k ≤ (2√m r d + (m + 2) u d²)/h + 4u` (the argument `−d²/h` moves by that much, the
/// exponential adds ≤ 4u), and the sums add `t + 3` roundings of `Σ_j k |·|`.
#[allow(clippy::type_complexity)]
fn naive_svgd(
    x: &[f64],
    g: &[f64],
    n: usize,
    m: usize,
    h: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mean = tiles::mean(x, n, m);
    let norm = |i: usize| (0..m).fold(0.0f64, |a, k| a.max((x[i * m + k] - mean[k]).abs()));
    let t = tiles::tile_size(n, 2 * m) as f64;
    let mf = m as f64;
    let (mut a, mut b) = (vec![0.0; n * m], vec![0.0; n * m]);
    let (mut ea, mut eb) = (vec![0.0; n * m], vec![0.0; n * m]);
    for i in 0..n {
        for j in 0..n {
            let r = U * (norm(i) + norm(j));
            let dk: Vec<f64> = (0..m).map(|k| x[i * m + k] - x[j * m + k]).collect();
            let d2: f64 = dk.iter().map(|v| v * v).sum();
            let kv = (-d2 / h).exp();
            let dkv = kv
                * ((2.0 * mf.sqrt() * r * d2.sqrt() + mf * r * r + (mf + 2.0) * U * d2) / h
                    + 4.0 * U);
            for k in 0..m {
                let gj = g[j * m + k];
                a[i * m + k] += kv * gj;
                b[i * m + k] += 2.0 / h * kv * dk[k];
                ea[i * m + k] += gj.abs() * (dkv + (t + 4.0) * U * kv);
                eb[i * m + k] += 2.0 / h
                    * (dk[k].abs() * (dkv + (t + 4.0) * U * kv) + kv * (r + U * dk[k].abs()));
            }
        }
    }
    (a, b, ea, eb)
}

#[test]
fn svgd_sums_match_naive() {
    for (n, m, spread) in [
        (1, 3, 1.0),
        (70, 3, 1.0),
        (200, 10, 1.0),
        (130, 17, 0.5),
        (90, 10, 1e-4),
    ] {
        let x = cloud(n, m, 2.0, spread, n as u64);
        let g = cloud(n, m, 0.0, 1.0, n as u64 + 1);
        let h = if n > 1 {
            median_bandwidth(&x, n, m)
        } else {
            1.0
        };
        let (mut a, mut b) = (vec![f64::NAN; n * m], vec![f64::NAN; n * m]);
        svgd_sums(&x, &g, n, m, h, &mut a, &mut b);
        let (ra, rb, ea, eb) = naive_svgd(&x, &g, n, m, h);
        for q in 0..n * m {
            assert!(
                (a[q] - ra[q]).abs() <= 2.0 * ea[q],
                "A n={n} m={m} q={q}: {} vs {} (bound {:e})",
                a[q],
                ra[q],
                ea[q]
            );
            assert!(
                (b[q] - rb[q]).abs() <= 2.0 * eb[q],
                "B n={n} m={m} q={q}: {} vs {} (bound {:e})",
                b[q],
                rb[q],
                eb[q]
            );
        }
    }
}

#[test]
fn svgd_sums_of_far_particles_are_the_own_score() {
    // Kernel values underflow to 0 except k(x_i, x_i) = 1: A_i = g_i, B_i = 0.
    let (n, m) = (100, 5);
    let x = cloud(n, m, 0.0, 1e3, 6);
    let g = cloud(n, m, 0.0, 1.0, 7);
    let (mut a, mut b) = (vec![f64::NAN; n * m], vec![f64::NAN; n * m]);
    svgd_sums(&x, &g, n, m, 1.0, &mut a, &mut b);
    assert_eq!(
        a,
        g.iter().map(|v| f64::from(*v as f32)).collect::<Vec<_>>()
    );
    assert!(b.iter().all(|v| *v == 0.0));
}

#[test]
fn svgd_sums_are_identical_for_any_thread_count() {
    let (n, m) = (700, 10);
    let x = cloud(n, m, 1.0, 1.0, 8);
    let g = cloud(n, m, 0.0, 1.0, 9);
    let run = |threads| {
        with_threads(threads, || {
            let h = median_bandwidth(&x, n, m);
            let (mut a, mut b) = (vec![0.0; n * m], vec![0.0; n * m]);
            svgd_sums(&x, &g, n, m, h, &mut a, &mut b);
            (h, a, b)
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(8));
}

#[test]
fn exp_neg_is_accurate_and_flushes_below_e_minus_87() {
    let xs: Vec<f32> = (0..=8000).map(|k| -(k as f32) * 0.011).collect();
    for c in xs.chunks(LANES_T) {
        let mut v = [0.0f32; LANES_T];
        v[..c.len()].copy_from_slice(c);
        let e = svgd::exp_neg(&v);
        for (x, y) in v.iter().zip(e) {
            let exact = f64::from(*x).exp();
            if *x >= -87.0 {
                assert!(
                    (f64::from(y) - exact).abs() <= 4.0 * U * exact,
                    "{x}: {y} vs {exact}"
                );
            } else {
                assert_eq!(y, 0.0);
            }
        }
    }
    let e = svgd::exp_neg(&[f32::NEG_INFINITY; LANES_T]);
    assert_eq!(e, [0.0; LANES_T]);
}

const LANES_T: usize = tiles::LANES;

#[test]
fn median_bandwidth_matches_a_sort() {
    for (n, m) in [(2, 3), (5, 2), (40, 10), (301, 4)] {
        let x = cloud(n, m, 1.0, 2.0, n as u64);
        let mut d: Vec<f64> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| {
                (0..m)
                    .map(|k| (x[i * m + k] - x[j * m + k]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        d.sort_by(f64::total_cmp);
        let k = d.len();
        let med = if k % 2 == 1 {
            d[k / 2]
        } else {
            0.5 * (d[k / 2 - 1] + d[k / 2])
        };
        let h = med * med / ((n + 1) as f64).ln();
        let got = median_bandwidth(&x, n, m);
        // f32 squared distances of centred coordinates: relative ≈ (m + 2)·u, and the rounding of
        // the coordinates (|x̃| ≲ 8) against distances ≳ 1.
        assert!((got - h).abs() <= 1e-5 * h, "n={n} m={m}: {got} vs {h}");
    }
    assert_eq!(median_bandwidth(&[1.0, 2.0], 1, 2), 1.0);
    assert_eq!(median_bandwidth(&[1.0; 6], 3, 2), 1.0);
}

#[test]
fn ln_gamma_matches_known_values() {
    assert!((ln_gamma(1.0)).abs() < 1e-12);
    assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    // Γ(1/2) = √π
    assert!((ln_gamma(0.5) - 0.5 * std::f64::consts::PI.ln()).abs() < 1e-12);
    assert!((ln_gamma(2.5) - (0.75 * std::f64::consts::PI.sqrt()).ln()).abs() < 1e-12);
}

#[test]
fn epsilon_matches_direct_formula() {
    // m = 3: C_3 = Γ(2.5)/(3·1·π^{1.5}) ; ε = (γ/C_3)^{-1}
    let c3 = 0.75 * std::f64::consts::PI.sqrt() / (3.0 * std::f64::consts::PI.powf(1.5));
    let e = epsilon(2.0, 3).unwrap();
    assert!((e - c3 / 2.0).abs() < 1e-12, "{e}");
    assert!(epsilon(1.0, 2).is_err());
    assert!(epsilon(-1.0, 5).is_err());
}

#[test]
fn the_parallel_task_order_is_a_permutation_that_halves_the_work_evenly() {
    for nt in 1..=64 {
        let mut order: Vec<usize> = (0..nt).collect();
        order.sort_by_key(|&a| tiles::balanced_rank(nt, a));
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..nt).collect::<Vec<_>>(), "nt={nt}");
        // Rayon splits an indexed list in contiguous halves, then quarters: each holds the same
        // number of tile pairs (diagonal tile included) wherever the count divides evenly.
        for parts in [2, 4] {
            if !nt.is_multiple_of(2 * parts) {
                continue;
            }
            let work: Vec<usize> = order
                .chunks(nt / parts)
                .map(|c| c.iter().map(|&a| 1 + tiles::offsets(nt, a)).sum())
                .collect();
            assert!(work.iter().all(|&w| w == work[0]), "nt={nt}: {work:?}");
        }
    }
}
