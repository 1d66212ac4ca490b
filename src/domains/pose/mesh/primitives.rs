//! Built-in primitive meshes: [`Mesh::cuboid`] and [`Mesh::cylinder`].

use super::*;

impl Mesh {
    /// An axis-aligned box of size `sx × sy × sz` metres centred at the origin: 24 vertices (4 per
    /// side, so normals are sharp), 12 triangles, outward normals.
    pub fn cuboid(sx: f64, sy: f64, sz: f64) -> Result<Mesh> {
        for (name, v) in [("sx", sx), ("sy", sy), ("sz", sz)] {
            check_positive(name, v)?;
        }
        let half = Vector3::new(sx, sy, sz) * 0.5;
        let mut mesh = Mesh::empty();
        for axis in 0..3 {
            for sign in [1.0, -1.0] {
                let n = Vector3::ith(axis, sign);
                let (mut u, mut v) = (
                    Vector3::ith((axis + 1) % 3, 1.0),
                    Vector3::ith((axis + 2) % 3, 1.0),
                );
                if sign < 0.0 {
                    std::mem::swap(&mut u, &mut v);
                }
                let base = mesh.vertices.len() as u32;
                for (a, b) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
                    let c = n.component_mul(&half)
                        + u.component_mul(&half) * a
                        + v.component_mul(&half) * b;
                    mesh.vertices.push(Point3::from(c));
                    mesh.normals.push(n);
                }
                mesh.faces.push([base, base + 1, base + 2]);
                mesh.faces.push([base, base + 2, base + 3]);
            }
        }
        Ok(mesh)
    }

    /// A closed cylinder of `radius` and `height` metres around the z axis, centred at the origin,
    /// with `segments ≥ 3` sides: radial normals on the side (smooth), ±z on the caps (separate
    /// vertices, so the rim is sharp).
    pub fn cylinder(radius: f64, height: f64, segments: u32) -> Result<Mesh> {
        check_positive("radius", radius)?;
        check_positive("height", height)?;
        if segments < 3 {
            return Err(Error::param(
                "segments",
                segments,
                "a cylinder needs at least 3 segments",
            ));
        }
        let s = segments;
        let h = 0.5 * height;
        let ring: Vec<Vector3<f64>> = (0..s)
            .map(|i| {
                let a = std::f64::consts::TAU * i as f64 / s as f64;
                Vector3::new(a.cos(), a.sin(), 0.0)
            })
            .collect();
        let mut mesh = Mesh::empty();
        // Side: bottom ring 0..s, top ring s..2s.
        for z in [-h, h] {
            for r in &ring {
                mesh.vertices
                    .push(Point3::new(r.x * radius, r.y * radius, z));
                mesh.normals.push(*r);
            }
        }
        for i in 0..s {
            let j = (i + 1) % s;
            mesh.faces.push([i, j, s + j]);
            mesh.faces.push([i, s + j, s + i]);
        }
        // Caps: a centre vertex and its own ring each.
        for (z, nz) in [(h, 1.0), (-h, -1.0)] {
            let n = Vector3::new(0.0, 0.0, nz);
            let centre = mesh.vertices.len() as u32;
            mesh.vertices.push(Point3::new(0.0, 0.0, z));
            mesh.normals.push(n);
            for r in &ring {
                mesh.vertices
                    .push(Point3::new(r.x * radius, r.y * radius, z));
                mesh.normals.push(n);
            }
            for i in 0..s {
                let (a, b) = (centre + 1 + i, centre + 1 + (i + 1) % s);
                mesh.faces.push(if nz > 0.0 {
                    [centre, a, b]
                } else {
                    [centre, b, a]
                });
            }
        }
        Ok(mesh)
    }

    fn empty() -> Mesh {
        Mesh {
            vertices: Vec::new(),
            normals: Vec::new(),
            faces: Vec::new(),
            colors: None,
        }
    }
}

/// Rejects a non-positive or non-finite size.
fn check_positive(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::param(name, v, "must be positive and finite"))
    }
}
