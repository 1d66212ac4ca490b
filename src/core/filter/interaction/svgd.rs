//! The kernel sums of Stein variational gradient descent (Liu & Wang 2016) with the RBF kernel
//! `k(x, y) = exp(−‖x − y‖²/h)`, on the same tiles, schedule and reduction order as the RF-PF pair
//! sums (hence bit-identical for any thread count):
//!
//! ```text
//! A_i = Σ_j k(x_j, x_i) g_j,        B_i = Σ_j ∇_{x_j} k(x_j, x_i) = Σ_j (2/h) k(x_j, x_i) (x_i − x_j),
//! ```
//!
//! `j = i` included (it adds `g_i` to `A_i` and nothing to `B_i`). The SVGD direction is
//! `φ(x_i) = (A_i + B_i)/n`.

// Lane loops index several arrays by the same lane.
#![allow(clippy::needless_range_loop)]

use super::tiles::{self, lanes, lanes_mut, reduce, TileKernel, Tiles, LANES, V};
use rayon::prelude::*;

/// `exp(x)` per lane for `x ≤ 0` in `f32`: `2^k · p(r)` with `k = round(x/ln 2)`, `r = x − k ln 2`
/// (two-constant Cody–Waite reduction) and the degree-6 polynomial of Cephes' `expf` (relative
/// error below 2e-7 on the reduced range); 0 for `x < −87` (and for `x = −∞`). IEEE operations
/// only, so the result is the same on every CPU.
#[inline(always)]
pub(super) fn exp_neg(x: &V) -> V {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const SHIFTER: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer (to even)
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let mut out = [0.0f32; LANES];
    for l in 0..LANES {
        let xl = if x[l] >= -87.0 { x[l] } else { -87.0 };
        let xl = if xl <= 0.0 { xl } else { 0.0 };
        let shifted = xl.mul_add(LOG2E, SHIFTER);
        let k = shifted - SHIFTER;
        let r = k.mul_add(-LN2_LO, k.mul_add(-LN2_HI, xl));
        let mut p = P[0];
        for c in &P[1..] {
            p = p.mul_add(r, *c);
        }
        let e = (p * r).mul_add(r, r) + 1.0;
        // k ∈ [−126, 0]: 2^k is the normal float with biased exponent k + 127.
        let ki = shifted.to_bits() as i32 - SHIFTER.to_bits() as i32;
        let scale = f32::from_bits(((ki + 127) as u32) << 23);
        out[l] = if x[l] >= -87.0 { e * scale } else { 0.0 };
    }
    out
}

/// The SVGD kernel for dimension `M` (`M = 0`: read at run time). Outputs `2m` values per
/// particle: `A` then `Σ_j k_ij (x_i − x_j)` (scaled by `2/h` after the reduction).
struct SvgdPair<'a, const M: usize> {
    x: &'a Tiles,
    g: &'a Tiles,
    m: usize,
    /// `−1/h` in `f32`.
    neg_inv_h: f32,
}

#[inline(always)]
fn tile<const M: usize, const SYM: bool>(
    k: &SvgdPair<'_, M>,
    (a, b): (usize, usize),
    own: &mut [f32],
    trans: &mut [f32],
) {
    let (t, m) = (k.x.t, k.m);
    let dims = if M == 0 { m } else { M };
    let (xa, xb, ga, gb) = (k.x.tile(a), k.x.tile(b), k.g.tile(a), k.g.tile(b));
    let mut xi = vec![0.0f32; dims];
    let mut gi = vec![0.0f32; dims];
    let mut acc = vec![[0.0f32; LANES]; 2 * dims];
    for i in 0..t {
        for c in 0..dims {
            xi[c] = xa[c * t + i];
            gi[c] = ga[c * t + i];
        }
        acc.iter_mut().for_each(|v| *v = [0.0; LANES]);
        for v in 0..t / LANES {
            let mut d2 = [0.0f32; LANES];
            for (c, x) in xi.iter().enumerate() {
                let xj = lanes(&xb[c * t..(c + 1) * t], v);
                for l in 0..LANES {
                    let d = x - xj[l];
                    d2[l] = d.mul_add(d, d2[l]);
                }
            }
            let mut arg = [0.0f32; LANES];
            for l in 0..LANES {
                arg[l] = d2[l] * k.neg_inv_h;
            }
            let kw = exp_neg(&arg);
            for c in 0..dims {
                let xj = lanes(&xb[c * t..(c + 1) * t], v);
                let gj = lanes(&gb[c * t..(c + 1) * t], v);
                let (acc_a, acc_b) = acc.split_at_mut(dims);
                for l in 0..LANES {
                    acc_a[c][l] = kw[l].mul_add(gj[l], acc_a[c][l]);
                    acc_b[c][l] = kw[l].mul_add(xi[c] - xj[l], acc_b[c][l]);
                }
                if SYM {
                    let (ta, tb) = trans.split_at_mut(dims * t);
                    let ta = lanes_mut(&mut ta[c * t..(c + 1) * t], v);
                    for l in 0..LANES {
                        ta[l] = kw[l].mul_add(gi[c], ta[l]);
                    }
                    let tb = lanes_mut(&mut tb[c * t..(c + 1) * t], v);
                    for l in 0..LANES {
                        tb[l] = (-kw[l]).mul_add(xi[c] - xj[l], tb[l]);
                    }
                }
            }
        }
        for (c, v) in acc.iter().enumerate() {
            own[i * 2 * dims + c] = reduce(v);
        }
    }
}

impl<const M: usize> TileKernel for SvgdPair<'_, M> {
    fn t(&self) -> usize {
        self.x.t
    }
    fn nt(&self) -> usize {
        self.x.nt
    }
    fn w(&self) -> usize {
        2 * self.m
    }
    #[inline(always)]
    fn diag(&self, a: usize, own: &mut [f32]) {
        tile::<M, false>(self, (a, a), own, &mut []);
    }
    #[inline(always)]
    fn pair(&self, a: usize, b: usize, own: &mut [f32], trans: &mut [f32]) {
        tile::<M, true>(self, (a, b), own, trans);
    }
}

/// SVGD kernel sums (see the module documentation) for particles `x` and scores `g = ∇log p(x)`
/// (both `n × m`, row-major), bandwidth `h > 0`: `A` into `a_out`, `B` into `b_out` (`n × m`).
///
/// Products and in-tile sums are `f32` on centred coordinates, tile partials are combined in `f64`
/// in a fixed order: bit-identical for any thread count. A kernel value carries a relative error
/// of about `(3 + (m + 2)·‖x_i − x_j‖²/h)·6e-8` (the exponential's argument is rounded relative to
/// itself); kernel values below `e^{−87}` are 0.
pub fn svgd_sums(
    x: &[f64],
    g: &[f64],
    n: usize,
    m: usize,
    h: f64,
    a_out: &mut [f64],
    b_out: &mut [f64],
) {
    assert_eq!(x.len(), n * m, "x must be n × m");
    assert_eq!(g.len(), n * m, "g must be n × m");
    assert_eq!(a_out.len(), n * m, "a_out must be n × m");
    assert_eq!(b_out.len(), n * m, "b_out must be n × m");
    assert!(h > 0.0, "bandwidth must be positive");
    if n == 0 || m == 0 {
        return;
    }
    let centre = tiles::mean(x, n, m);
    // Far padding for x (kernel value 0), zero scores.
    let xt = Tiles::new(x, n, m, 2 * m, Some(&centre), 1e30);
    let gt = Tiles::new(g, n, m, 2 * m, None, 0.0);
    let mut out = vec![0.0; n * 2 * m];
    let neg_inv_h = (-1.0 / h) as f32;
    macro_rules! fixed {
        ($($d:literal)*) => {
            match m {
                $($d => tiles::run(&SvgdPair::<$d> { x: &xt, g: &gt, m, neg_inv_h }, n, &mut out),)*
                _ => tiles::run(&SvgdPair::<0> { x: &xt, g: &gt, m, neg_inv_h }, n, &mut out),
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    let scale = 2.0 / h;
    a_out
        .par_chunks_mut(m)
        .zip(b_out.par_chunks_mut(m))
        .zip(out.par_chunks(2 * m))
        .for_each(|((a, b), o)| {
            a.copy_from_slice(&o[..m]);
            b.iter_mut().zip(&o[m..]).for_each(|(b, v)| *b = scale * v);
        });
}

/// Median-heuristic bandwidth `h = med² / ln(n + 1)`, `med` the median of the `n(n − 1)/2`
/// pairwise distances (the mean of the two middle ones for an even count); `h = 1` when `n < 2` or
/// `med = 0`.
///
/// The squared distances are formed in `f32` from centred coordinates exactly as the kernels form
/// them, and the median is selected exactly among them in two passes (a 65536-bin histogram of
/// their leading bits, then a sort of the one or two bins that hold the middle ranks): integer
/// counts and a sort, so the result is deterministic, in `O(n² m)` time and memory about
/// `n(n − 1)/2 / 256` values for well-spread distances.
pub fn median_bandwidth(x: &[f64], n: usize, m: usize) -> f64 {
    assert_eq!(x.len(), n * m, "x must be n × m");
    if n < 2 {
        return 1.0;
    }
    let centre = tiles::mean(x, n, m);
    let rows: Vec<f32> = x
        .chunks_exact(m)
        .flat_map(|r| r.iter().zip(&centre).map(|(v, c)| (v - c) as f32))
        .collect();
    let d2 = |i: usize, j: usize| -> u32 {
        let (a, b) = (&rows[i * m..(i + 1) * m], &rows[j * m..(j + 1) * m]);
        let mut s = 0.0f32;
        for (p, q) in a.iter().zip(b) {
            let d = p - q;
            s = d.mul_add(d, s);
        }
        s.to_bits() // non-negative floats order like their bit patterns
    };
    const SHIFT: u32 = 16;
    const ROWS: usize = 16;
    let hist = (0..n.div_ceil(ROWS))
        .into_par_iter()
        .map(|blk| {
            let mut h = vec![0u64; 1 << (32 - SHIFT)];
            for i in blk * ROWS..((blk + 1) * ROWS).min(n) {
                for j in i + 1..n {
                    h[(d2(i, j) >> SHIFT) as usize] += 1;
                }
            }
            h
        })
        .reduce(
            || vec![0u64; 1 << (32 - SHIFT)],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let total = (n as u64) * (n as u64 - 1) / 2;
    let (r_lo, r_hi) = if total % 2 == 1 {
        (total / 2, total / 2)
    } else {
        (total / 2 - 1, total / 2)
    };
    // Bins holding ranks r_lo and r_hi, and the count below the first.
    let (mut below, mut cum) = (0u64, 0u64);
    let (mut b_lo, mut b_hi) = (None, None);
    for (b, c) in hist.iter().enumerate() {
        if b_lo.is_none() && cum + c > r_lo {
            b_lo = Some(b as u32);
            below = cum;
        }
        if cum + c > r_hi {
            b_hi = Some(b as u32);
            break;
        }
        cum += c;
    }
    let (b_lo, b_hi) = (
        b_lo.expect("rank within total"),
        b_hi.expect("rank within total"),
    );
    let mut keys: Vec<u32> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            (i + 1..n)
                .map(move |j| d2(i, j))
                .filter(|k| (b_lo..=b_hi).contains(&(k >> SHIFT)))
        })
        .collect();
    keys.sort_unstable();
    let pick = |r: u64| f64::from(f32::from_bits(keys[(r - below) as usize])).sqrt();
    let med = 0.5 * (pick(r_lo) + pick(r_hi));
    if med > 0.0 {
        med * med / ((n + 1) as f64).ln()
    } else {
        1.0
    }
}
