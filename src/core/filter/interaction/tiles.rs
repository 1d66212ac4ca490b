//! The tiling shared by the pair kernels: particles as `f32` tiles, a fixed schedule of tile pairs
//! that visits every unordered pair once, and a fixed-order reduction of the per-tile partial sums.
//!
//! # Determinism
//!
//! The particles are cut into `nt` tiles of `t` slots; `t` depends on `n` and the kernel's width
//! only ([`tile_size`]). Task `a` (one per
//! tile, run in parallel) owns tile `a` and visits the tiles `b = a + o (mod nt)` for
//! `o = 0, 1, …, offsets(a)` in that order — the circulant schedule, which gives every unordered
//! tile pair to exactly one task and every task the same work within one tile pair. A tile pair is
//! computed sequentially by one thread: its contribution to tile `a` ("own" side) is added, in
//! `f64`, to the task's accumulator in the order of `o`; its contribution to tile `b` ("transposed"
//! side) is written to a slot of its own. Once all tasks have finished, the sum of tile `c` is its
//! own accumulator plus the transposed slots that hit `c`, added in ascending order of the task
//! that wrote them. Which thread ran which task changes no operation and no order, so the
//! results are bit-identical for any thread count.
//!
//! # Precision
//!
//! Coordinates are centred in `f64` (the pair sums are translation invariant) and rounded to `f32`.
//! Within a tile pair, products and sums are `f32` (at most `t` terms in one running sum); the
//! tile partials are combined in `f64`.

use rayon::prelude::*;

/// Logical SIMD width: the kernels work on `[f32; LANES]` (one AVX-512 register, or two AVX2
/// registers). Every lane is computed independently and lanes are reduced in a fixed tree, so the
/// numbers do not depend on the instruction set the code runs on.
pub(super) const LANES: usize = 16;

/// One lane vector.
pub(super) type V = [f32; LANES];

/// Tile size for `n` particles whose kernel sums `w` values per particle (a multiple of
/// [`LANES`]): 128 while there are at most 64 tiles or the transposed partial sums
/// (`≈ n·⌊nt/2⌋·w` floats for `nt` tiles) stay within [`TRANS_FLOATS`], else 256 (so up to
/// n = 16 384 those sums stay within `≈ 32 n w` floats). At 64 slots, a particle's 16-lane sums
/// were folded after only 4 vectors, and the folding cost as much as the pair work; at n = 10⁴,
/// m = 10 tiles of 128 measured 3 % faster than 256.
pub(super) fn tile_size(n: usize, w: usize) -> usize {
    let nt = n.div_ceil(128);
    let trans = n.saturating_mul(nt / 2).saturating_mul(w);
    match nt <= 64 || trans <= TRANS_FLOATS {
        true => 128,
        false => MAX_TILE,
    }
}

/// Transposed partial sums a tiling of 128 slots may keep (32 MiB of `f32`).
const TRANS_FLOATS: usize = 1 << 23;

/// The largest tile ([`tile_size`]): kernels may keep per-slot scratch on the stack.
pub(super) const MAX_TILE: usize = 256;

/// Row-major `n × w` values laid out as `nt` tiles of `t` slots, coordinate-major inside a tile
/// (`data[(a·w + k)·t + s]` is coordinate `k` of particle `a·t + s`). Slots past `n` hold `pad`.
pub(super) struct Tiles {
    /// Slots per tile.
    pub t: usize,
    /// Number of tiles.
    pub nt: usize,
    /// Values per particle.
    pub w: usize,
    data: Vec<f32>,
}

impl Tiles {
    /// `rows` (`n × w`, row-major) minus `shift` (length `w`), rounded to `f32`, in tiles sized
    /// for a kernel that sums `sums` values per particle ([`tile_size`]; tilings read by one
    /// kernel must pass the same).
    pub fn new(
        rows: &[f64],
        n: usize,
        w: usize,
        sums: usize,
        shift: Option<&[f64]>,
        pad: f32,
    ) -> Self {
        let t = tile_size(n, sums);
        let nt = n.div_ceil(t).max(1);
        let mut data = vec![pad; nt * w * t];
        data.par_chunks_mut(w * t)
            .enumerate()
            .for_each(|(a, tile)| {
                for s in 0..t.min(n.saturating_sub(a * t)) {
                    let row = &rows[(a * t + s) * w..(a * t + s + 1) * w];
                    for (k, v) in row.iter().enumerate() {
                        let c = shift.map_or(*v, |sh| v - sh[k]);
                        tile[k * t + s] = c as f32;
                    }
                }
            });
        Self { t, nt, w, data }
    }

    /// Tile `a` (`w × t`, coordinate-major).
    #[inline(always)]
    pub fn tile(&self, a: usize) -> &[f32] {
        &self.data[a * self.w * self.t..(a + 1) * self.w * self.t]
    }
}

/// Mean of the rows of `rows` (`n × m`), summed in row order.
pub(super) fn mean(rows: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut mean = vec![0.0; m];
    for row in rows.chunks_exact(m).take(n) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(a, v)| *a += v / n as f64);
    }
    mean
}

/// Number of off-diagonal tile pairs task `a` visits (offsets `1..=offsets(a)`).
#[inline]
pub(super) fn offsets(nt: usize, a: usize) -> usize {
    if nt % 2 == 1 {
        nt / 2
    } else {
        nt / 2 - 1 + usize::from(a < nt / 2)
    }
}

/// One pair kernel on a fixed tiling: `w` output values per particle.
pub(super) trait TileKernel: Sync {
    /// Slots per tile.
    fn t(&self) -> usize;
    /// Number of tiles.
    fn nt(&self) -> usize;
    /// Output values per particle.
    fn w(&self) -> usize;
    /// Tile `a` with itself (every ordered pair, `j = i` included): writes the sums of tile `a` into
    /// `own` (`t × w`, row-major).
    fn diag(&self, a: usize, own: &mut [f32]);
    /// Tiles `a ≠ b`, each unordered pair of particles once: writes the sums over tile `b` of the
    /// particles of tile `a` into `own` (`t × w`, row-major) and those over tile `a` of the particles
    /// of tile `b` into `trans` (`w × t`, coordinate-major; it arrives zeroed).
    fn pair(&self, a: usize, b: usize, own: &mut [f32], trans: &mut [f32]);
}

/// Run a tile kernel over all pairs of particles; returns the per-particle sums (`n × w`,
/// row-major, `f64`) in `out`. See the module documentation for the order of operations.
pub(super) fn run<K: TileKernel>(kernel: &K, n: usize, out: &mut [f64]) {
    // Scratch kept by the calling thread across calls (fresh zeroed pages cost more than the
    // kernel at n = 1000); every slot is overwritten before it is read. A nested call on the
    // same thread (a rayon worker stealing another filter's update while it waits) gets its own.
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<f64>, Vec<f32>)> = Default::default();
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (own, trans) = &mut *s;
            run_in(kernel, n, out, own, trans)
        }
        Err(_) => run_in(kernel, n, out, &mut Vec::new(), &mut Vec::new()),
    });
}

fn run_in<K: TileKernel>(
    kernel: &K,
    n: usize,
    out: &mut [f64],
    own: &mut Vec<f64>,
    trans: &mut Vec<f32>,
) {
    let (t, nt, w) = (kernel.t(), kernel.nt(), kernel.w());
    let slot = t * w;
    let hmax = nt / 2;
    own.resize(nt * slot, 0.0);
    trans.resize(nt * (hmax * slot).max(1), 0.0);
    let mut tasks: Vec<_> = own
        .chunks_mut(slot)
        .zip(trans.chunks_mut((hmax * slot).max(1)))
        .enumerate()
        .collect();
    tasks.sort_by_key(|&(a, _)| balanced_rank(nt, a));
    tasks
        .into_par_iter()
        .for_each(|(a, (own_a, trans_a))| row_task(kernel, a, own_a, trans_a));
    let trans = &*trans;
    let tstride = (hmax * slot).max(1);
    out[..n * w]
        .par_chunks_mut(slot)
        .zip(own.par_chunks(slot))
        .enumerate()
        .for_each(|(c, (out_c, own_c))| {
            // The last tile's chunk stops at particle n: slots past it are not summed.
            let len = out_c.len();
            out_c.copy_from_slice(&own_c[..len]);
            for a in 0..nt {
                let o = (c + nt - a) % nt;
                if o == 0 || o > offsets(nt, a) {
                    continue;
                }
                let tr = &trans[a * tstride + (o - 1) * slot..a * tstride + o * slot];
                for k in 0..w {
                    let slots = tr[k * t..(k + 1) * t].iter().take(len / w);
                    for (s, v) in slots.enumerate() {
                        out_c[s * w + k] += f64::from(*v);
                    }
                }
            }
        });
}

/// Where task `a` runs in the parallel list: with `nt` even the tasks `a < nt/2` visit one tile pair
/// more than the others ([`offsets`]), so they alternate with them (`0, nt/2, 1, nt/2 + 1, …`) and
/// every contiguous half of the list — how rayon splits it between threads — holds the same work
/// (in index order the first half got the `nt/2` long tasks: at `nt = 8`, four tasks of 4
/// off-diagonal tile pairs against four of 3). Only the order of the tasks changes, not what they
/// compute.
pub(super) fn balanced_rank(nt: usize, a: usize) -> usize {
    let h = nt / 2;
    match nt.is_multiple_of(2) && h > 0 {
        true if a < h => 2 * a,
        true => 2 * (a - h) + 1,
        false => a,
    }
}

/// Task `a`: its tile with itself, then with the tiles at offsets `1..=offsets(a)`, dispatched to
/// an AVX2+FMA build where the CPU has it (same operations, same rounding: the kernels use
/// explicit `mul_add` and no reassociation).
fn row_task<K: TileKernel>(kernel: &K, a: usize, own: &mut [f64], trans: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { row_task_avx2(kernel, a, own, trans) };
    }
    row_task_body(kernel, a, own, trans)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_task_avx2<K: TileKernel>(kernel: &K, a: usize, own: &mut [f64], trans: &mut [f32]) {
    row_task_body(kernel, a, own, trans)
}

#[inline(always)]
fn row_task_body<K: TileKernel>(kernel: &K, a: usize, own: &mut [f64], trans: &mut [f32]) {
    let (t, nt, w) = (kernel.t(), kernel.nt(), kernel.w());
    let slot = t * w;
    let mut part = vec![0.0f32; slot];
    kernel.diag(a, &mut part);
    own.iter_mut()
        .zip(&part)
        .for_each(|(o, p)| *o = f64::from(*p));
    for o in 1..=offsets(nt, a) {
        let tr = &mut trans[(o - 1) * slot..o * slot];
        tr.fill(0.0);
        kernel.pair(a, (a + o) % nt, &mut part, tr);
        own.iter_mut()
            .zip(&part)
            .for_each(|(o, p)| *o += f64::from(*p));
    }
}

/// `Σ_l v[l]` in a fixed tree order, halving: `s_l = v_l + v_{l+8}`, then `s_l + s_{l+4}`,
/// `s_l + s_{l+2}`, `s_0 + s_1` (the order in which a vector unit folds a register in halves).
#[inline(always)]
pub(super) fn reduce(v: &V) -> f32 {
    let mut s = *v;
    let mut half = LANES / 2;
    while half > 0 {
        for l in 0..half {
            s[l] += s[l + half];
        }
        half /= 2;
    }
    s[0]
}

/// Lane vector `l` of a coordinate row.
#[inline(always)]
pub(super) fn lanes(row: &[f32], v: usize) -> &V {
    row[v * LANES..(v + 1) * LANES]
        .try_into()
        .expect("tile rows are a multiple of LANES")
}

/// Mutable lane vector `l` of a coordinate row.
#[inline(always)]
pub(super) fn lanes_mut(row: &mut [f32], v: usize) -> &mut V {
    (&mut row[v * LANES..(v + 1) * LANES])
        .try_into()
        .expect("tile rows are a multiple of LANES")
}
