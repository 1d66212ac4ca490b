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
    /// Which code runs the tiles (tests compare them).
    pub isa: Isa,
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
            isa: Isa::Best,
        }
    }
}

/// Which code runs the pair kernel: all give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// The widest intrinsics the CPU has (AVX-512F, else AVX2 + FMA), else the portable code.
    Best,
    /// AVX2 + FMA intrinsics where the CPU has them, else the portable code (tests: the
    /// hot path picks [`Isa::Best`]).
    #[cfg_attr(not(test), allow(dead_code))]
    Avx2,
    /// The portable array code.
    Portable,
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
        self.tile::<false>(pa, pa, own, &mut []);
    }

    #[inline(always)]
    fn pair(&self, a: usize, b: usize, own: &mut [f32], trans: &mut [f32]) {
        self.tile::<true>(self.tiles.tile(a), self.tiles.tile(b), own, trans);
    }
}

impl<const M: usize> RfPair<'_, M> {
    /// Tile `pa` against tile `pb` in the code that fits: the run-time dimension's loop for
    /// `M = 0`, else intrinsics where the CPU has them, else the portable fixed-`M` code.
    #[inline(always)]
    fn tile<const SYM: bool>(&self, pa: &[f32], pb: &[f32], own: &mut [f32], trans: &mut [f32]) {
        if M == 0 {
            return tile_dyn::<SYM, M>(self, pa, pb, own, trans);
        }
        #[cfg(target_arch = "x86_64")]
        if simd::tile::<M, SYM>(self, pa, pb, own, trans) {
            return;
        }
        tile_fixed::<M, SYM>(self, pa, pb, own, trans);
    }
}

/// [`tile_fixed`] in intrinsics: the same operations lane by lane (sub, fused multiply-add, IEEE
/// sqrt/add/div/mul, compare-and-mask, the same reduction tree), hence the same bits; written by
/// hand because the compiler's vectorisation of the array code shuffles lanes. A logical vector of
/// [`LANES`] = 16 lanes is one AVX-512 register, or two AVX2 registers whose halves are
/// accumulated in two passes (each lane still sees its terms in the same order).
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::super::tiles::MAX_TILE;
    use super::{Isa, RfPair, LANES};
    use std::arch::x86_64::*;

    /// Runs the kernel in the instruction set `k.isa` asks for, if the CPU has it; `false`
    /// otherwise (the caller then runs the portable code).
    #[inline(always)]
    pub fn tile<const M: usize, const SYM: bool>(
        k: &RfPair<'_, M>,
        pa: &[f32],
        pb: &[f32],
        own: &mut [f32],
        trans: &mut [f32],
    ) -> bool {
        let avx2 = || is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if k.isa == Isa::Best && is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { x16::tile::<M, SYM>(k, pa, pb, own, trans) };
            true
        } else if k.isa != Isa::Portable && avx2() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { x8::tile::<M, SYM>(k, pa, pb, own, trans) };
            true
        } else {
            false
        }
    }

    /// The last three halving steps of [`super::reduce`] on 8 lanes: `s_l + s_{l+4}`, `s_l + s_{l+2}`,
    /// `s_0 + s_1`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn fold8(s8: __m256) -> f32 {
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
    }

    /// The kernel body over a physical vector of `PL` lanes (`HALVES = LANES / PL` per logical
    /// vector), with the vector operations of the module it expands in.
    macro_rules! tile_body {
        ($feat:literal) => {
            /// See [`super::super::tile_fixed`].
            ///
            /// # Safety
            /// The CPU must support the enabled features.
            #[target_feature(enable = $feat)]
            pub unsafe fn tile<const M: usize, const SYM: bool>(
                k: &RfPair<'_, M>,
                pa: &[f32],
                pb: &[f32],
                own: &mut [f32],
                trans: &mut [f32],
            ) {
                let t = k.tiles.t;
                assert!(pa.len() >= M * t && pb.len() >= M * t && own.len() >= M * t);
                assert!(!SYM || trans.len() >= M * t);
                assert!(t % LANES == 0 && t <= MAX_TILE);
                let (eps, bmin, one) = (splat(k.eps), splat(k.bmin), splat(1.0));
                let pb = pb.as_ptr();
                let tr = trans.as_mut_ptr();
                // The weights of one particle of tile a against all of tile b, then the sums: the
                // first pass is independent across vectors, so the long latency chain of a weight
                // (M fused multiply-adds, sqrt, div, the ladder) overlaps with the next ones.
                // On the stack: the tile size is at most MAX_TILE slots.
                let mut wstore = [splat(0.0); MAX_TILE / PL];
                let wbuf = &mut wstore[..t / PL];
                for i in 0..t {
                    let pi: [Vf; M] = std::array::from_fn(|c| splat(pa[c * t + i]));
                    for (q, wq) in wbuf.iter_mut().enumerate() {
                        let mut d2 = splat(0.0);
                        for c in 0..M {
                            // SAFETY: c·t + q·PL + PL ≤ M·t (asserted above).
                            let d = sub(pi[c], unsafe { load(pb.add(c * t + q * PL)) });
                            d2 = fma(d, d, d2);
                        }
                        let mut base = keep_ge(div(eps, add(sqrt(d2), eps)), bmin);
                        let mut w = one;
                        let mut e = M;
                        loop {
                            if e & 1 == 1 {
                                w = mul(w, base);
                            }
                            e >>= 1;
                            if e == 0 {
                                break;
                            }
                            base = mul(base, base);
                        }
                        *wq = w;
                    }
                    let mut part = [[splat(0.0); M]; HALVES];
                    for (h, acc) in part.iter_mut().enumerate() {
                        for q in (h..t / PL).step_by(HALVES) {
                            let w = wbuf[q];
                            for c in 0..M {
                                let at = c * t + q * PL;
                                // SAFETY: as above; trans has M·t slots when SYM.
                                let d = sub(pi[c], unsafe { load(pb.add(at)) });
                                acc[c] = fma(w, d, acc[c]);
                                if SYM {
                                    unsafe { store(tr.add(at), fnma(w, d, load(tr.add(at)))) };
                                }
                            }
                        }
                    }
                    for c in 0..M {
                        own[i * M + c] = fold(std::array::from_fn(|h| part[h][c]));
                    }
                }
            }
        };
    }

    /// The vector operations of one instruction set, each with that set enabled so that it is
    /// inlined into the kernel: `$v` the register type, the intrinsics for splat, unaligned load
    /// and store and sqrt, the binary and fused operations by name, and `keep_ge`'s body.
    macro_rules! vector_ops {
        ($feat:literal, $v:ty, $set1:ident, $loadu:ident, $storeu:ident, $sqrt:ident,
         binary: [$($bin:ident = $bin_intr:ident),*], fused: [$($fused:ident = $fused_intr:ident),*],
         |$ka:ident, $kb:ident| $keep_ge:expr) => {
            type Vf = $v;
            #[inline]
            #[target_feature(enable = $feat)]
            fn splat(x: f32) -> Vf {
                $set1(x)
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn load(p: *const f32) -> Vf {
                // SAFETY: the caller passes PL readable floats.
                unsafe { $loadu(p) }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn store(p: *mut f32, v: Vf) {
                // SAFETY: the caller passes PL writable floats.
                unsafe { $storeu(p, v) }
            }
            #[inline]
            #[target_feature(enable = $feat)]
            fn sqrt(a: Vf) -> Vf {
                $sqrt(a)
            }
            $(
                #[inline]
                #[target_feature(enable = $feat)]
                fn $bin(a: Vf, b: Vf) -> Vf {
                    $bin_intr(a, b)
                }
            )*
            $(
                /// `fma`: `a·b + c`; `fnma`: `c − a·b`; one rounding.
                #[inline]
                #[target_feature(enable = $feat)]
                fn $fused(a: Vf, b: Vf, c: Vf) -> Vf {
                    $fused_intr(a, b, c)
                }
            )*
            /// `a` where `a ≥ b` (ordered), else 0.
            #[inline]
            #[target_feature(enable = $feat)]
            fn keep_ge($ka: Vf, $kb: Vf) -> Vf {
                $keep_ge
            }
            tile_body!($feat);
        };
    }

    /// One AVX-512 register per logical vector.
    mod x16 {
        use super::*;
        const PL: usize = 16;
        const HALVES: usize = LANES / PL;
        vector_ops!(
            "avx512f", __m512, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_sqrt_ps,
            binary: [sub = _mm512_sub_ps, add = _mm512_add_ps, mul = _mm512_mul_ps, div = _mm512_div_ps],
            fused: [fma = _mm512_fmadd_ps, fnma = _mm512_fnmadd_ps],
            |a, b| _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b), a)
        );
        /// [`super::super::reduce`] of the logical vector `v`, folding the register in halves.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn fold([v]: [Vf; HALVES]) -> f32 {
            let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
            fold8(_mm256_add_ps(
                _mm512_castps512_ps256(v),
                _mm256_castpd_ps(hi),
            ))
        }
    }

    /// Two AVX2 registers per logical vector.
    mod x8 {
        use super::*;
        const PL: usize = 8;
        const HALVES: usize = LANES / PL;
        vector_ops!(
            "avx2,fma", __m256, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_sqrt_ps,
            binary: [sub = _mm256_sub_ps, add = _mm256_add_ps, mul = _mm256_mul_ps, div = _mm256_div_ps],
            fused: [fma = _mm256_fmadd_ps, fnma = _mm256_fnmadd_ps],
            |a, b| _mm256_and_ps(a, _mm256_cmp_ps::<_CMP_GE_OQ>(a, b))
        );
        /// [`super::super::reduce`] of the logical vector `lo ‖ hi`, folding in halves.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        fn fold([lo, hi]: [Vf; HALVES]) -> f32 {
            fold8(_mm256_add_ps(lo, hi))
        }
    }
}
