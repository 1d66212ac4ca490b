//! The RF-PF pair-sum tile kernel: `S_i = Σ_j (ε / (‖p_i − p_j‖ + ε))^m (p_i − p_j)`.
//!
//! Per unordered pair and lane: `m` differences and `m` fused multiply-adds for `d²`, a square
//! root, an add and a division for `b = ε/(d + ε)`, the integer power `b^m` by repeated squaring
//! (`⌊log₂ m⌋` squarings and `popcount(m) − 1` products), and `2m` fused multiply-adds (with the `m`
//! differences recomputed) adding `w·(p_i − p_j)` to `S_i` and subtracting it from `S_j`.

// Lane loops index several arrays by the same lane.
#![allow(clippy::needless_range_loop)]

use super::tiles::{lanes, lanes_mut, reduce, TileKernel, Tiles, LANES, V};

/// Weights below this are flushed to 0: `b < B_FLOOR^{1/m}` gives `b^m < 1e-30`, so the ladder
/// never forms a subnormal (slow on some CPUs) and far particles contribute exactly 0.
const W_FLOOR: f64 = 1e-30;

/// The RF-PF pair kernel for dimension `M` (`M = 0`: the dimension is read at run time).
pub(super) struct RfPair<'a, const M: usize> {
    pub tiles: &'a Tiles,
    pub m: usize,
    pub eps: f32,
    pub bmin: f32,
    /// Use the AVX2 build (where the CPU has it); `false` runs the portable code (tests).
    pub simd: bool,
}

impl<'a, const M: usize> RfPair<'a, M> {
    pub fn new(tiles: &'a Tiles, eps: f64) -> Self {
        let m = tiles.w;
        debug_assert!(M == 0 || M == m);
        Self {
            tiles,
            m,
            eps: eps as f32,
            bmin: W_FLOOR.powf(1.0 / m as f64) as f32,
            simd: true,
        }
    }
}

/// `w = (ε/(√d² + ε))^m` per lane, 0 where `ε/(d + ε) < bmin`.
#[inline(always)]
fn weight(d2: &V, eps: f32, bmin: f32, m: usize) -> V {
    let mut base = [0.0f32; LANES];
    for l in 0..LANES {
        let b = eps / (d2[l].sqrt() + eps);
        base[l] = if b >= bmin { b } else { 0.0 };
    }
    let mut acc = [1.0f32; LANES];
    let mut e = m;
    loop {
        if e & 1 == 1 {
            for l in 0..LANES {
                acc[l] *= base[l];
            }
        }
        e >>= 1;
        if e == 0 {
            return acc;
        }
        for l in 0..LANES {
            base[l] *= base[l];
        }
    }
}

/// Tile `pa` against tile `pb` (both `m × t`, coordinate-major), dimension `M > 0` known at compile
/// time. `SYM`: also subtract each pair's term from `trans` (tile `b`'s side).
#[inline(always)]
fn tile_fixed<const M: usize, const SYM: bool>(
    k: &RfPair<'_, M>,
    pa: &[f32],
    pb: &[f32],
    own: &mut [f32],
    trans: &mut [f32],
) {
    let t = k.tiles.t;
    for i in 0..t {
        let pi: [V; M] = std::array::from_fn(|c| [pa[c * t + i]; LANES]);
        let mut acc = [[0.0f32; LANES]; M];
        for v in 0..t / LANES {
            let mut diff = [[0.0f32; LANES]; M];
            let mut d2 = [0.0f32; LANES];
            for c in 0..M {
                diff[c] = sub(pi[c], *lanes(&pb[c * t..(c + 1) * t], v));
                d2 = fma(diff[c], diff[c], d2);
            }
            let w = weight(&d2, k.eps, k.bmin, M);
            for c in 0..M {
                acc[c] = fma(w, diff[c], acc[c]);
            }
            if SYM {
                for c in 0..M {
                    let tj = lanes_mut(&mut trans[c * t..(c + 1) * t], v);
                    *tj = fnma(w, diff[c], *tj);
                }
            }
        }
        for c in 0..M {
            own[i * M + c] = reduce(&acc[c]);
        }
    }
}

#[inline(always)]
fn sub(a: V, b: V) -> V {
    std::array::from_fn(|l| a[l] - b[l])
}

/// `a·b + c` per lane, one rounding.
#[inline(always)]
fn fma(a: V, b: V, c: V) -> V {
    std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
}

/// `c − a·b` per lane, one rounding.
#[inline(always)]
fn fnma(a: V, b: V, c: V) -> V {
    std::array::from_fn(|l| (-a[l]).mul_add(b[l], c[l]))
}

/// As [`tile_fixed`] with the dimension read at run time (accumulators in a scratch buffer).
#[inline(always)]
fn tile_dyn<const SYM: bool, const M: usize>(
    k: &RfPair<'_, M>,
    pa: &[f32],
    pb: &[f32],
    own: &mut [f32],
    trans: &mut [f32],
) {
    let (t, m) = (k.tiles.t, k.m);
    let mut pi = vec![0.0f32; m];
    let mut acc = vec![[0.0f32; LANES]; m];
    for i in 0..t {
        for (c, p) in pi.iter_mut().enumerate() {
            *p = pa[c * t + i];
        }
        acc.iter_mut().for_each(|a| *a = [0.0; LANES]);
        for v in 0..t / LANES {
            let mut d2 = [0.0f32; LANES];
            for (c, p) in pi.iter().enumerate() {
                let pj = lanes(&pb[c * t..(c + 1) * t], v);
                for l in 0..LANES {
                    let d = p - pj[l];
                    d2[l] = d.mul_add(d, d2[l]);
                }
            }
            let w = weight(&d2, k.eps, k.bmin, m);
            for (c, (p, a)) in pi.iter().zip(acc.iter_mut()).enumerate() {
                let pj = lanes(&pb[c * t..(c + 1) * t], v);
                for l in 0..LANES {
                    a[l] = w[l].mul_add(p - pj[l], a[l]);
                }
                if SYM {
                    let tj = lanes_mut(&mut trans[c * t..(c + 1) * t], v);
                    for l in 0..LANES {
                        tj[l] = (-w[l]).mul_add(p - pj[l], tj[l]);
                    }
                }
            }
        }
        for (c, a) in acc.iter().enumerate() {
            own[i * m + c] = reduce(a);
        }
    }
}

impl<const M: usize> TileKernel for RfPair<'_, M> {
    fn t(&self) -> usize {
        self.tiles.t
    }
    fn nt(&self) -> usize {
        self.tiles.nt
    }
    fn w(&self) -> usize {
        self.m
    }

    #[inline(always)]
    fn diag(&self, a: usize, own: &mut [f32]) {
        let pa = self.tiles.tile(a);
        if M == 0 {
            tile_dyn::<false, M>(self, pa, pa, own, &mut []);
        } else {
            #[cfg(target_arch = "x86_64")]
            if self.simd && avx2::available() {
                // SAFETY: the CPU supports AVX2 and FMA (and AVX-512F/VL for tile512).
                return unsafe {
                    if avx2::available_512() {
                        avx2::tile512::<M, false>(self, pa, pa, own, &mut [])
                    } else {
                        avx2::tile::<M, false>(self, pa, pa, own, &mut [])
                    }
                };
            }
            tile_fixed::<M, false>(self, pa, pa, own, &mut []);
        }
    }

    #[inline(always)]
    fn pair(&self, a: usize, b: usize, own: &mut [f32], trans: &mut [f32]) {
        let (pa, pb) = (self.tiles.tile(a), self.tiles.tile(b));
        if M == 0 {
            tile_dyn::<true, M>(self, pa, pb, own, trans);
        } else {
            #[cfg(target_arch = "x86_64")]
            if self.simd && avx2::available() {
                // SAFETY: the CPU supports AVX2 and FMA (and AVX-512F/VL for tile512).
                return unsafe {
                    if avx2::available_512() {
                        avx2::tile512::<M, true>(self, pa, pb, own, trans)
                    } else {
                        avx2::tile::<M, true>(self, pa, pb, own, trans)
                    }
                };
            }
            tile_fixed::<M, true>(self, pa, pb, own, trans);
        }
    }
}

/// [`tile_fixed`] in AVX2 + FMA intrinsics: the same operations lane by lane (sub, fused
/// multiply-add, IEEE sqrt/add/div/mul, compare-and-mask, the same reduction tree), hence the same
/// bits; written by hand because the compiler's vectorisation of the array code shuffles lanes.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use super::{reduce, RfPair, LANES};
    use std::arch::x86_64::*;

    /// Whether the CPU has AVX2 and FMA (cached by std).
    #[inline(always)]
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// Whether the CPU also has AVX-512F/VL: the same code then has 32 vector registers and
    /// embedded broadcasts (and still 8-lane vectors, so the same results).
    #[inline(always)]
    pub fn available_512() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }

    macro_rules! tile_body {
        ($(#[$attr:meta])* $name:ident) => {
    /// See [`super::tile_fixed`].
    ///
    /// # Safety
    /// The CPU must support the enabled features.
    $(#[$attr])*
    pub unsafe fn $name<const M: usize, const SYM: bool>(
        k: &RfPair<'_, M>,
        pa: &[f32],
        pb: &[f32],
        own: &mut [f32],
        trans: &mut [f32],
    ) {
        let t = k.tiles.t;
        assert!(pa.len() >= M * t && pb.len() >= M * t && own.len() >= M * t);
        assert!(!SYM || trans.len() >= M * t);
        assert!(t % LANES == 0);
        let eps = _mm256_set1_ps(k.eps);
        let bmin = _mm256_set1_ps(k.bmin);
        let pb = pb.as_ptr();
        let tr = trans.as_mut_ptr();
        // The weights of one particle of tile a against all of tile b, then the sums: the first
        // pass is independent across lane vectors, so the long latency chain of a weight (M fused
        // multiply-adds, sqrt, div, the ladder) overlaps with the next ones.
        let mut wbuf = vec![_mm256_setzero_ps(); t / LANES];
        for i in 0..t {
            let pi: [__m256; M] = std::array::from_fn(|c| _mm256_set1_ps(pa[c * t + i]));
            for (q, wq) in wbuf.iter_mut().enumerate() {
                let v = q * LANES;
                let mut d2 = _mm256_setzero_ps();
                for c in 0..M {
                    // SAFETY: c·t + v + LANES ≤ M·t (asserted above).
                    let d = _mm256_sub_ps(pi[c], unsafe { _mm256_loadu_ps(pb.add(c * t + v)) });
                    d2 = _mm256_fmadd_ps(d, d, d2);
                }
                let b = _mm256_div_ps(eps, _mm256_add_ps(_mm256_sqrt_ps(d2), eps));
                let mut base = _mm256_and_ps(b, _mm256_cmp_ps::<_CMP_GE_OQ>(b, bmin));
                let mut w = _mm256_set1_ps(1.0);
                let mut e = M;
                loop {
                    if e & 1 == 1 {
                        w = _mm256_mul_ps(w, base);
                    }
                    e >>= 1;
                    if e == 0 {
                        break;
                    }
                    base = _mm256_mul_ps(base, base);
                }
                *wq = w;
            }
            let mut acc = [_mm256_setzero_ps(); M];
            for (q, w) in wbuf.iter().enumerate() {
                let v = q * LANES;
                for c in 0..M {
                    // SAFETY: as above; trans has M·t slots when SYM.
                    let d = _mm256_sub_ps(pi[c], unsafe { _mm256_loadu_ps(pb.add(c * t + v)) });
                    acc[c] = _mm256_fmadd_ps(*w, d, acc[c]);
                    if SYM {
                        unsafe {
                            let p = tr.add(c * t + v);
                            _mm256_storeu_ps(p, _mm256_fnmadd_ps(*w, d, _mm256_loadu_ps(p)));
                        }
                    }
                }
            }
            for c in 0..M {
                let mut lanes = [0.0f32; LANES];
                // SAFETY: 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[c]) };
                own[i * M + c] = reduce(&lanes);
            }
        }
    }
        };
    }

    tile_body!(
        #[target_feature(enable = "avx2,fma")]
        tile
    );
    tile_body!(
        #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
        tile512
    );
}
