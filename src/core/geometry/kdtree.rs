//! A small static 3-D k-d tree for exact nearest-neighbour queries (used by ADD-S).
//!
//! Built once in `O(n log n)` by median splits on the axis of largest spread, stored implicitly in
//! one reordered point array; queries descend to the nearest leaf first and prune subtrees whose
//! splitting plane is farther than the best distance found.

use nalgebra::Point3;

/// Slices at most this long are searched exhaustively.
const LEAF: usize = 8;

/// A k-d tree over a fixed set of 3-D points.
#[derive(Debug, Clone)]
pub struct KdTree {
    /// Points reordered so that each subtree is a contiguous slice with its splitting point in the
    /// middle.
    points: Vec<Point3<f64>>,
    /// Original index of each reordered point.
    index: Vec<usize>,
    /// Splitting axis of the node whose median sits at this position (unused inside leaves).
    axis: Vec<u8>,
}

impl KdTree {
    /// Builds the tree (points are copied).
    pub fn new(points: &[Point3<f64>]) -> KdTree {
        let mut items: Vec<(Point3<f64>, usize)> = points.iter().copied().zip(0..).collect();
        let mut axis = vec![0u8; points.len()];
        build(&mut items, &mut axis);
        let (points, index) = items.into_iter().unzip();
        KdTree {
            points,
            index,
            axis,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the tree holds no points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The nearest point to `q`: `(original index, distance)`; `None` for an empty tree or when no
    /// distance is finite (a NaN or infinite query, e.g. from a diverged pose estimate).
    pub fn nearest(&self, q: &Point3<f64>) -> Option<(usize, f64)> {
        self.nearest_within(q, f64::INFINITY)
    }

    /// The nearest point to `q` among those at squared distance `|p − q|² ≤ bound`: the same
    /// answer as [`Self::nearest`] whenever a point lies within the bound, found sooner the
    /// tighter the bound (subtrees farther than it are never entered). `None` when no point lies
    /// within it, or for a non-finite query or a NaN bound.
    pub fn nearest_within(&self, q: &Point3<f64>, bound: f64) -> Option<(usize, f64)> {
        // `d ≤ bound` exactly when `d < next_up(bound)`: a point at the bound itself is found.
        let mut best = (usize::MAX, bound.next_up());
        search(&self.points, &self.axis, 0, q, &mut best);
        let &original = self.index.get(best.0)?;
        Some((original, best.1.sqrt()))
    }
}

/// Recursively orders `items` into an implicit tree, recording split axes.
fn build(items: &mut [(Point3<f64>, usize)], axis: &mut [u8]) {
    if items.len() <= LEAF {
        return;
    }
    let a = widest_axis(items);
    let mid = items.len() / 2;
    items.select_nth_unstable_by(mid, |x, y| x.0[a].total_cmp(&y.0[a]));
    axis[mid] = a as u8;
    let (lo, rest) = items.split_at_mut(mid);
    let (alo, arest) = axis.split_at_mut(mid);
    build(lo, alo);
    build(&mut rest[1..], &mut arest[1..]);
}

/// The axis along which `items` spread most.
fn widest_axis(items: &[(Point3<f64>, usize)]) -> usize {
    let (mut lo, mut hi) = (items[0].0, items[0].0);
    for (p, _) in items {
        lo = lo.inf(p);
        hi = hi.sup(p);
    }
    (hi - lo).iamax()
}

/// Searches the subtree `points` (starting at global position `offset`) updating `best =
/// (position, squared distance)`.
fn search(
    points: &[Point3<f64>],
    axis: &[u8],
    offset: usize,
    q: &Point3<f64>,
    best: &mut (usize, f64),
) {
    if points.len() <= LEAF {
        for (i, p) in points.iter().enumerate() {
            let d = (p - q).norm_squared();
            if d < best.1 {
                *best = (offset + i, d);
            }
        }
        return;
    }
    let mid = points.len() / 2;
    let a = axis[mid] as usize;
    let d = (points[mid] - q).norm_squared();
    if d < best.1 {
        *best = (offset + mid, d);
    }
    let diff = q[a] - points[mid][a];
    let (near, far) = if diff < 0.0 {
        ((0, mid), (mid + 1, points.len()))
    } else {
        ((mid + 1, points.len()), (0, mid))
    };
    search(
        &points[near.0..near.1],
        &axis[near.0..near.1],
        offset + near.0,
        q,
        best,
    );
    if diff * diff < best.1 {
        search(
            &points[far.0..far.1],
            &axis[far.0..far.1],
            offset + far.0,
            q,
            best,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::rng::StreamRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn non_finite_queries_find_nothing() {
        let pts = [Point3::new(0.0, 0.0, 0.0), Point3::new(1.0, 0.0, 0.0)];
        let tree = KdTree::new(&pts);
        assert_eq!(tree.nearest(&Point3::new(f64::NAN, 0.0, 0.0)), None);
        assert_eq!(tree.nearest(&Point3::new(f64::INFINITY, 0.0, 0.0)), None);
        assert_eq!(KdTree::new(&[]).nearest(&Point3::origin()), None);
        assert_eq!(
            tree.nearest(&Point3::new(0.9, 0.0, 0.0)).map(|n| n.0),
            Some(1)
        );
    }

    /// A bound reached by some point (as ADD-S's own counterpart reaches it) gives the same
    /// nearest point and distance, to the bit, also where another point lies nearer than the
    /// bound (offsets of up to 5 cm among points about 7 cm apart); a point exactly at the bound
    /// is found; a bound below every point, a NaN bound and an empty tree find nothing.
    #[test]
    fn a_reached_bound_gives_the_nearest_distance() {
        let mut rng = StreamRng::seed_from_u64(12);
        let pts: Vec<_> = (0..500)
            .map(|_| Point3::new(rng.random(), rng.random(), rng.random::<f64>() * 0.2))
            .collect();
        let tree = KdTree::new(&pts);
        let mut nearer = 0;
        for (i, p) in pts.iter().enumerate() {
            let q = p + nalgebra::Vector3::new(rng.random(), rng.random(), rng.random()) * 0.05;
            let bound = (p - q).norm_squared();
            let (j, d) = tree.nearest_within(&q, bound).unwrap();
            assert_eq!((j, d), tree.nearest(&q).unwrap(), "point {i}");
            assert!(d * d <= bound * (1.0 + 1e-12) && (pts[j] - q).norm() == d);
            nearer += usize::from(j != i);
        }
        assert!(
            nearer > 25,
            "only {nearer} queries had a nearer point than their own"
        );
        let lone = KdTree::new(&[Point3::new(3.0, 4.0, 0.0)]);
        assert_eq!(lone.nearest_within(&Point3::origin(), 25.0), Some((0, 5.0)));
        assert_eq!(lone.nearest_within(&Point3::origin(), 24.9), None);
        assert_eq!(lone.nearest_within(&Point3::origin(), f64::NAN), None);
        assert_eq!(
            KdTree::new(&[]).nearest_within(&Point3::origin(), 1.0),
            None
        );
    }

    #[test]
    fn matches_brute_force() {
        let mut rng = StreamRng::seed_from_u64(11);
        let mut pt = |s: f64| {
            Point3::new(
                rng.random::<f64>() * s,
                rng.random::<f64>(),
                rng.random::<f64>() * 0.1,
            )
        };
        for n in [1, 5, 9, 100, 2000] {
            let pts: Vec<_> = (0..n).map(|_| pt(3.0)).collect();
            let tree = KdTree::new(&pts);
            assert_eq!(tree.len(), n);
            for _ in 0..200 {
                let q = pt(4.0);
                let (i, d) = tree.nearest(&q).unwrap();
                let brute = pts
                    .iter()
                    .map(|p| (p - q).norm())
                    .fold(f64::INFINITY, f64::min);
                assert_eq!(d, brute);
                assert_eq!((pts[i] - q).norm(), d);
            }
        }
        assert!(KdTree::new(&[]).nearest(&Point3::origin()).is_none());
        // Duplicates are fine.
        let dup = vec![Point3::new(1.0, 1.0, 1.0); 50];
        assert_eq!(
            KdTree::new(&dup).nearest(&Point3::origin()).unwrap().1,
            3f64.sqrt()
        );
    }
}
