//! Triangle meshes: PLY loading (ASCII and binary), built-in primitives, area-weighted surface
//! sampling and basic measurements. Vertices are in metres; PLY files are in millimetres (BOP).

use crate::core::filter::rng::StreamRng;
use crate::{Error, Result};
use nalgebra::{Point3, Vector3};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// Millimetres to metres, the scale applied by [`Mesh::load_ply`].
pub const MM_TO_M: f64 = 1e-3;

/// A triangle mesh with per-vertex unit normals and optional per-vertex colours.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// Vertex positions, metres.
    pub vertices: Vec<Point3<f64>>,
    /// Per-vertex unit normals (zero only for vertices of no face in a file without normals).
    pub normals: Vec<Vector3<f64>>,
    /// Triangles as vertex indices, counter-clockwise seen from outside.
    pub faces: Vec<[u32; 3]>,
    /// Optional per-vertex RGB colours.
    pub colors: Option<Vec<[u8; 3]>>,
}

/// A point on a mesh surface with its unit normal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfacePoint {
    /// Position, metres, in the mesh frame.
    pub p: Point3<f64>,
    /// Unit outward normal.
    pub n: Vector3<f64>,
}

mod ply;
mod primitives;

// ---------------------------------------------------------------------------------------------
// Mesh

impl Mesh {
    /// Uses the given normals (normalized), computing any that are missing or zero.
    fn set_normals(&mut self, normals: Option<Vec<Vector3<f64>>>) {
        let computed = self.compute_normals();
        self.normals = match normals {
            None => computed,
            Some(given) => given
                .iter()
                .zip(computed)
                .map(|(g, c)| g.try_normalize(1e-12).unwrap_or(c))
                .collect(),
        };
    }

    /// Area-weighted vertex normals `nᵥ = normalize(Σ_{f∋v} (b − a) × (c − a))` (zero for vertices
    /// of no face).
    pub fn compute_normals(&self) -> Vec<Vector3<f64>> {
        let mut acc = vec![Vector3::zeros(); self.vertices.len()];
        for f in &self.faces {
            let n = self.face_cross(f);
            for &v in f {
                acc[v as usize] += n;
            }
        }
        acc.iter()
            .map(|n| n.try_normalize(1e-300).unwrap_or_else(Vector3::zeros))
            .collect()
    }

    /// `(b − a) × (c − a)` of a triangle: twice its area times its unit normal.
    fn face_cross(&self, f: &[u32; 3]) -> Vector3<f64> {
        let [a, b, c] = f.map(|i| self.vertices[i as usize]);
        (b - a).cross(&(c - a))
    }

    /// Unit normal of face `face`, `n = (b − a) × (c − a) / |…|` (zero if degenerate).
    ///
    /// # Panics
    /// If `face ≥ faces.len()`, like slice indexing.
    pub fn face_normal(&self, face: usize) -> Vector3<f64> {
        self.face_cross(&self.faces[face])
            .try_normalize(1e-300)
            .unwrap_or_else(Vector3::zeros)
    }

    /// Area of face `face`, `A = ½|(b − a) × (c − a)|` (m²).
    ///
    /// # Panics
    /// If `face ≥ faces.len()`, like slice indexing.
    pub fn face_area(&self, face: usize) -> f64 {
        0.5 * self.face_cross(&self.faces[face]).norm()
    }

    /// Total surface area (m²).
    pub fn area(&self) -> f64 {
        (0..self.faces.len()).map(|f| self.face_area(f)).sum()
    }

    /// Axis-aligned bounding box `(min, max)`; both at the origin for an empty mesh.
    pub fn bounding_box(&self) -> (Point3<f64>, Point3<f64>) {
        let Some(first) = self.vertices.first() else {
            return (Point3::origin(), Point3::origin());
        };
        self.vertices
            .iter()
            .fold((*first, *first), |(lo, hi), p| (lo.inf(p), hi.sup(p)))
    }

    /// Diameter: the largest distance between two vertices, `max_{i,j} |vᵢ − vⱼ|` (exact, O(n²),
    /// parallel; ~0.1 s for 10⁴ vertices).
    pub fn diameter(&self) -> f64 {
        let v = &self.vertices;
        (0..v.len())
            .into_par_iter()
            .map(|i| {
                v[i + 1..]
                    .iter()
                    .map(|q| (v[i] - q).norm_squared())
                    .fold(0.0, f64::max)
            })
            .reduce(|| 0.0, f64::max)
            .sqrt()
    }

    /// `n` points sampled uniformly by area on the surface (faces drawn with probability ∝ area,
    /// barycentric `(1 − √r₁, √r₁(1 − r₂), √r₁ r₂)`), with the vertex normals interpolated
    /// barycentrically. Deterministic for a given `seed` (xoshiro256++ stream). A mesh without area yields its
    /// vertices drawn uniformly; an empty mesh yields nothing.
    pub fn sample_surface(&self, n: usize, seed: u64) -> Vec<SurfacePoint> {
        let mut rng = StreamRng::seed_from_u64(seed);
        let mut cdf = Vec::with_capacity(self.faces.len());
        let mut total = 0.0;
        for f in 0..self.faces.len() {
            total += self.face_area(f);
            cdf.push(total);
        }
        if total <= 0.0 {
            return self.sample_vertices(n, &mut rng);
        }
        (0..n)
            .map(|_| {
                let r = rng.random::<f64>() * total;
                let f = cdf.partition_point(|&c| c <= r).min(cdf.len() - 1);
                self.sample_face(f, rng.random(), rng.random())
            })
            .collect()
    }

    /// The point of face `f` at uniform coordinates `(r1, r2)`.
    fn sample_face(&self, f: usize, r1: f64, r2: f64) -> SurfacePoint {
        let s = r1.sqrt();
        let w = [1.0 - s, s * (1.0 - r2), s * r2];
        let idx = self.faces[f].map(|i| i as usize);
        let p = idx.iter().zip(w).fold(Vector3::zeros(), |acc, (&i, wi)| {
            acc + self.vertices[i].coords * wi
        });
        let n = idx.iter().zip(w).fold(Vector3::zeros(), |acc, (&i, wi)| {
            acc + self.normal_or_zero(i) * wi
        });
        let n = n
            .try_normalize(1e-12)
            .unwrap_or_else(|| self.face_normal(f));
        SurfacePoint {
            p: Point3::from(p),
            n,
        }
    }

    /// The normal of vertex `i`, or zero when the mesh has fewer normals than vertices.
    fn normal_or_zero(&self, i: usize) -> Vector3<f64> {
        self.normals.get(i).copied().unwrap_or_else(Vector3::zeros)
    }

    /// `n` vertices drawn uniformly (for meshes without faces).
    fn sample_vertices(&self, n: usize, rng: &mut StreamRng) -> Vec<SurfacePoint> {
        if self.vertices.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|_| {
                let i = rng.random_range(0..self.vertices.len());
                SurfacePoint {
                    p: self.vertices[i],
                    n: self.normal_or_zero(i),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file `name` in a scratch folder of its own (the folder goes when the value is dropped).
    struct Tmp {
        _dir: crate::core::scratch::ScratchDir,
        path: std::path::PathBuf,
    }

    impl AsRef<Path> for Tmp {
        fn as_ref(&self) -> &Path {
            &self.path
        }
    }

    impl std::ops::Deref for Tmp {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.path
        }
    }

    fn tmp(name: &str) -> Tmp {
        let dir = crate::core::scratch::ScratchDir::new(&format!("mesh-{name}"));
        let path = dir.join(name);
        Tmp { _dir: dir, path }
    }

    /// A unit square (in mm: 1000 × 1000) as one quad plus a stray element, ASCII.
    const ASCII_QUAD: &str = "ply\nformat ascii 1.0\ncomment test\nelement vertex 4\nproperty float x\n\
        property float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n\
        element face 1\nproperty list uchar int vertex_indices\nelement edge 1\nproperty int vertex1\n\
        property int vertex2\nend_header\n0 0 0 255 0 0\n1000 0 0 0 255 0\n1000 1000 0 0 0 255\n\
        0 1000 0 1 2 3\n4 0 1 2 3\n0 1\n";

    #[test]
    fn ascii_quad_is_triangulated_scaled_and_gets_normals() {
        let path = tmp("quad.ply");
        std::fs::write(&path, ASCII_QUAD).unwrap();
        let m = Mesh::load_ply(&path).unwrap();
        assert_eq!(m.vertices.len(), 4);
        assert_eq!(m.faces, vec![[0, 1, 2], [0, 2, 3]]);
        assert_eq!(m.vertices[2], Point3::new(1.0, 1.0, 0.0));
        assert_eq!(m.colors.as_ref().unwrap()[3], [1, 2, 3]);
        for n in &m.normals {
            assert!((n - Vector3::z()).norm() < 1e-12);
        }
        assert!((m.area() - 1.0).abs() < 1e-12);
        assert!((m.diameter() - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn binary_round_trip_and_hand_written_binary() {
        let mut cube = Mesh::cuboid(0.1, 0.2, 0.3).unwrap();
        cube.colors = Some((0..24).map(|i| [i as u8, 7, 9]).collect());
        let path = tmp("cube.ply");
        cube.write_ply(&path).unwrap();
        let back = Mesh::load_ply(&path).unwrap();
        assert_eq!(back.faces, cube.faces);
        assert_eq!(back.colors, cube.colors);
        for (a, b) in back.vertices.iter().zip(&cube.vertices) {
            assert!((a - b).norm() < 1e-7);
        }
        for (a, b) in back.normals.iter().zip(&cube.normals) {
            assert!((a - b).norm() < 1e-6);
        }
        // Hand-written: one triangle, uint indices, double coordinates, vertex_index name.
        let mut bytes = b"ply\r\nformat binary_little_endian 1.0\r\nelement vertex 3\r\nproperty double x\r\n\
            property double y\r\nproperty double z\r\nelement face 1\r\nproperty list uchar uint vertex_index\r\n\
            end_header\r\n"
            .to_vec();
        for v in [0.0f64, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 10.0, 0.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.push(3);
        for i in [0u32, 1, 2] {
            bytes.extend_from_slice(&i.to_le_bytes());
        }
        let path = tmp("tri.ply");
        std::fs::write(&path, &bytes).unwrap();
        let m = Mesh::load_ply(&path).unwrap();
        assert_eq!(m.vertices[1], Point3::new(0.01, 0.0, 0.0));
        assert!((m.face_area(0) - 0.5e-4).abs() < 1e-15);
        assert!((m.face_normal(0) - Vector3::z()).norm() < 1e-12);
        // Truncated body.
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let e = Mesh::load_ply(&path).unwrap_err().to_string();
        assert!(
            e.contains("tri.ply") && e.contains("face 0") && e.contains("truncated"),
            "{e}"
        );
    }

    #[test]
    fn malformed_files_name_file_and_field() {
        let cases = [
            ("magic.ply", "plx\nformat ascii 1.0\nend_header\n", "magic"),
            ("noend.ply", "ply\nformat ascii 1.0\nelement vertex 0\n", "end_header"),
            ("nofmt.ply", "ply\nelement vertex 0\nend_header\n", "format"),
            ("type.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty quux x\nend_header\n", "quux"),
            ("noz.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n", "'z'"),
            ("short.ply", &ASCII_QUAD.replace("0 1000 0 1 2 3\n4 0 1 2 3\n0 1\n", "0 1000"), "vertex 3"),
            ("range.ply", &ASCII_QUAD.replace("4 0 1 2 3", "4 0 1 2 9"), "out of range"),
            ("nan.ply", &ASCII_QUAD.replace("1000 0 0 0 255 0", "1000 abc 0 0 255 0"), "malformed number"),
            ("nrm.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nproperty float nx\nproperty float ny\nproperty float nz\nend_header\n0 0 0 nan 0 1\n", "non-finite normal"),
            ("twice.ply", &ASCII_QUAD.replace("element edge 1", "element vertex 1"), "second vertex element"),
            ("empty.ply", "ply\nformat ascii 1.0\nelement junk 18446744073709551615\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n", "no properties"),
        ];
        for (name, text, needle) in cases {
            let path = tmp(name);
            std::fs::write(&path, text).unwrap();
            let e = Mesh::load_ply(&path).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
        }
        // A huge declared count must fail on the body, not allocate.
        let path = tmp("huge.ply");
        let text = ASCII_QUAD.replace("element vertex 4", "element vertex 999999999999999");
        std::fs::write(&path, text).unwrap();
        assert!(Mesh::load_ply(&path)
            .unwrap_err()
            .to_string()
            .contains("huge.ply"));
        let e = Mesh::load_ply(tmp("absent.ply")).unwrap_err().to_string();
        assert!(e.contains("absent.ply"), "{e}");
    }

    #[test]
    fn primitives_are_closed_with_outward_normals() {
        let cube = Mesh::cuboid(0.1, 0.2, 0.3).unwrap();
        assert_eq!((cube.vertices.len(), cube.faces.len()), (24, 12));
        assert!((cube.area() - 2.0 * (0.02 + 0.03 + 0.06)).abs() < 1e-12);
        let cyl = Mesh::cylinder(0.05, 0.2, 32).unwrap();
        let exact = 2.0 * std::f64::consts::PI * 0.05 * (0.05 + 0.2);
        assert!((cyl.area() - exact).abs() / exact < 0.01);
        for mesh in [&cube, &cyl] {
            for f in 0..mesh.faces.len() {
                let c = mesh.faces[f].iter().fold(Vector3::zeros(), |a, &i| {
                    a + mesh.vertices[i as usize].coords
                }) / 3.0;
                assert!(mesh.face_normal(f).dot(&c) > 0.0, "face {f} points inward");
                for &i in &mesh.faces[f] {
                    assert!(mesh.normals[i as usize].dot(&mesh.face_normal(f)) > 0.9);
                }
            }
        }
        let (lo, hi) = cyl.bounding_box();
        assert!(
            (hi.z - 0.1).abs() < 1e-15 && (lo.z + 0.1).abs() < 1e-15 && (hi.x - 0.05).abs() < 1e-15
        );
        assert!((cube.diameter() - (0.01f64 + 0.04 + 0.09).sqrt()).abs() < 1e-12);
        assert!(Mesh::cuboid(0.0, 1.0, 1.0).is_err());
        assert!(Mesh::cylinder(0.1, 0.1, 2).is_err());
    }

    #[test]
    fn surface_samples_are_on_the_surface_area_weighted_and_deterministic() {
        let cube = Mesh::cuboid(0.1, 0.2, 0.4).unwrap();
        let a = cube.sample_surface(20000, 7);
        assert_eq!(a, cube.sample_surface(20000, 7));
        assert_ne!(a[..10], cube.sample_surface(10, 8)[..]);
        let half = [0.05, 0.1, 0.2];
        let mut on_z = 0;
        for s in &a {
            let axis = s.n.iamax();
            assert!(
                (s.p[axis].abs() - half[axis]).abs() < 1e-12,
                "{s:?} not on the face of its normal"
            );
            assert!((s.n.norm() - 1.0).abs() < 1e-12);
            on_z += usize::from(axis == 2);
        }
        // Area share of the ±z faces: 2·0.02 / 2·(0.02 + 0.04 + 0.08) = 1/7.
        let share = on_z as f64 / a.len() as f64;
        assert!((share - 1.0 / 7.0).abs() < 0.01, "{share}");
    }

    /// The real YCB-V models: skipped (with a message) when the dataset is absent, except on CI.
    #[test]
    fn real_ycbv_models_load() {
        let Some(dir) = crate::core::datasets::shared_or_skip("ycbv-mini/models") else {
            return;
        };
        let m = Mesh::load_ply(dir.join("obj_000005.ply")).unwrap();
        assert_eq!((m.vertices.len(), m.faces.len()), (7866, 15728));
        // models_info.json gives diameter 196.463 mm and min_x −49.815 mm for obj 5.
        let d = m.diameter();
        assert!((d - 0.196463).abs() < 1e-4, "diameter {d}");
        assert!((m.bounding_box().0.x + 0.049815).abs() < 1e-5);
        for n in &m.normals {
            assert!((n.norm() - 1.0).abs() < 1e-6);
        }
    }
}
