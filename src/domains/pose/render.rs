//! CPU rasterizer with a z-buffer: renders posed meshes into depth, an object-index image and
//! shaded RGB.
//!
//! # Conventions
//! - Camera frame: OpenCV (x right, y down, z forward), pinhole projection
//!   `u = fx·x/z + cx`, `v = fy·y/z + cy` exactly as [`Camera::project`].
//! - Pixel-centre sampling: pixel `(i, j)` (column, row) is sampled at the continuous image point
//!   `(u, v) = (i, j)` — the OpenCV/BOP convention, so `Camera::project` of a point rendered at
//!   pixel `(i, j)` returns `(i, j)` up to sub-pixel rounding.
//! - Depth is the z coordinate in metres (not the ray length), `0` for background — the BOP
//!   convention for depth images.
//!
//! # Pipeline
//! 1. **Setup** (parallel over faces): vertices go to the camera frame, `p_c = R·p_m + t`;
//!    back faces are culled (`n·p₀ ≥ 0` with `n = (p₁−p₀)×(p₂−p₀)`, outward counter-clockwise
//!    winding); each triangle is clipped against the near plane `z = near` (Sutherland–Hodgman,
//!    which yields 0, 3 or 4 vertices) and projected.
//! 2. **Rasterization** (parallel over bands of rows, each band visiting its triangles in input
//!    order, so the result does not depend on threads): a pixel centre is covered when its three
//!    edge functions are ≥ 0. Depth is perspective-correct: `1/z` is affine in screen space, so
//!    `z = 1 / Σᵢ λᵢ / zᵢ` with screen barycentrics `λᵢ`. The z-test is strict (`z < z_buf`): on
//!    exact ties the earlier triangle wins.
//! 3. **Resolve** (parallel over rows, visible pixels only): perspective-correct barycentrics
//!    `βᵢ = (λᵢ/zᵢ) / Σⱼ λⱼ/zⱼ` interpolate normals and colours; Lambertian shading with a
//!    headlight at the camera centre, `I = a + (1 − a)·|n·ω|` with `ω = −p/‖p‖` the direction to
//!    the camera and `a` the ambient term (two-sided, so open meshes seen from inside stay lit).

use nalgebra::{Isometry3, Vector3};
use rayon::prelude::*;

use crate::core::error::{Error, Result};
use crate::core::geometry::camera::Camera;
use crate::domains::pose::mesh::Mesh;

/// One mesh instance in the scene.
#[derive(Clone, Copy, Debug)]
pub struct RenderObject<'a> {
    /// The mesh, in metres, in its model frame.
    pub mesh: &'a Mesh,
    /// Model → camera transform, `p_c = pose · p_m`.
    pub pose: Isometry3<f64>,
    /// Base colour, used when the mesh has no vertex colours.
    pub color: [u8; 3],
}

/// What the RGB image shows where no object is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Background {
    /// One flat colour.
    Solid([u8; 3]),
    /// A deterministic procedural texture (value noise over tinted tiles), so that RGB
    /// modalities have contrast and structure to work with.
    Texture {
        /// Seed of the texture.
        seed: u64,
    },
}

/// Rendering options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenderOptions {
    /// Near clipping plane (metres); geometry with `z < near` is clipped away.
    pub near: f64,
    /// Skip back-facing triangles (correct for closed meshes with outward counter-clockwise
    /// winding; disable for open or inconsistently wound meshes).
    pub cull_back_faces: bool,
    /// Ambient term `a` of the shading `I = a + (1 − a)·|n·ω|`, in `[0, 1]`.
    pub ambient: f64,
    /// Background of the RGB image.
    pub background: Background,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            near: 0.01,
            cull_back_faces: true,
            ambient: 0.25,
            background: Background::Texture { seed: 0 },
        }
    }
}

/// A rendered frame: all buffers are row-major, `width × height`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Depth (z in metres) of the nearest surface, `0` for background.
    pub depth: Vec<f32>,
    /// Object index image: `0` for background, `k + 1` where object `k` is the nearest surface.
    pub index: Vec<u16>,
    /// Shaded colour.
    pub rgb: Vec<[u8; 3]>,
    /// `|n·ω|`: cosine between the surface normal and the direction to the camera (1 = facing
    /// the camera, 0 = grazing), `0` for background.
    pub cos_incidence: Vec<f32>,
}

impl Rendered {
    /// Visibility mask of object `k` (pixels where it is the nearest surface).
    pub fn mask(&self, k: usize) -> Vec<bool> {
        let id = k as u16 + 1;
        self.index.iter().map(|&i| i == id).collect()
    }

    /// Number of pixels where object `k` is visible.
    pub fn pixel_count(&self, k: usize) -> usize {
        let id = k as u16 + 1;
        self.index.iter().filter(|&&i| i == id).count()
    }

    /// Depth at pixel `(u, v)` (column, row); `None` outside the image.
    pub fn depth_at(&self, u: u32, v: u32) -> Option<f32> {
        (u < self.width && v < self.height).then(|| self.depth[(v * self.width + u) as usize])
    }
}

/// Render `objects` seen by `camera` (a one-off [`Renderer`]; reuse a [`Renderer`] to render
/// many frames with the same camera, which computes the background once).
///
/// Errors as [`Renderer::new`] and [`Renderer::render`].
pub fn render(camera: &Camera, objects: &[RenderObject], opts: &RenderOptions) -> Result<Rendered> {
    Renderer::new(camera, opts)?.render(objects)
}

/// A rasterizer for one camera and set of options, holding the precomputed background image.
#[derive(Clone, Debug)]
pub struct Renderer {
    camera: Camera,
    opts: RenderOptions,
    background: Vec<[u8; 3]>,
}

impl Renderer {
    /// A renderer for `camera`; errors when the camera has no pixels or non-finite or
    /// non-positive focal lengths, or when `opts.near` is not positive.
    pub fn new(camera: &Camera, opts: &RenderOptions) -> Result<Renderer> {
        validate_camera(camera, opts)?;
        Ok(Renderer {
            camera: *camera,
            opts: *opts,
            background: background_image(camera, &opts.background),
        })
    }

    /// The camera rendered from.
    pub fn camera(&self) -> &Camera {
        &self.camera
    }

    /// The options in force.
    pub fn options(&self) -> &RenderOptions {
        &self.opts
    }

    /// Render `objects`; errors when there are more than `u16::MAX − 1` objects, when a pose is
    /// non-finite, or when a mesh face indexes a missing vertex.
    pub fn render(&self, objects: &[RenderObject]) -> Result<Rendered> {
        validate_objects(objects)?;
        let posed: Vec<Posed> = objects.iter().map(Posed::new).collect();
        let tris = setup_triangles(&self.camera, objects, &posed, &self.opts);
        let frags = rasterize(&self.camera, &tris);
        Ok(self.resolve(&posed, objects, &tris, &frags))
    }

    /// Stage 3: shade the visible pixels over the background, parallel over rows.
    fn resolve(
        &self,
        posed: &[Posed],
        objects: &[RenderObject],
        tris: &[Tri],
        frags: &[Frag],
    ) -> Rendered {
        let (w, n) = (self.camera.width as usize, frags.len());
        let mut out = Rendered {
            width: self.camera.width,
            height: self.camera.height,
            depth: vec![0.0; n],
            index: vec![0; n],
            rgb: self.background.clone(),
            cos_incidence: vec![0.0; n],
        };
        out.depth
            .par_chunks_mut(w)
            .zip(out.index.par_chunks_mut(w))
            .zip(out.rgb.par_chunks_mut(w))
            .zip(out.cos_incidence.par_chunks_mut(w))
            .zip(frags.par_chunks(w))
            .for_each(|((((depth, index), rgb), cos), row)| {
                for (x, f) in row.iter().enumerate().filter(|(_, f)| f.tri != u32::MAX) {
                    let s = shade(posed, objects, &tris[f.tri as usize], f, self.opts.ambient);
                    (depth[x], index[x], rgb[x], cos[x]) = (s.z, s.index, s.rgb, s.cos);
                }
            });
        out
    }
}

/// The background image alone (what a render shows where there is no object).
pub fn background_image(camera: &Camera, background: &Background) -> Vec<[u8; 3]> {
    let w = camera.width as usize;
    let mut out = vec![[0u8; 3]; w * camera.height as usize];
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(v, row)| {
            for (u, px) in row.iter_mut().enumerate() {
                *px = background_pixel(background, u, v);
            }
        });
    out
}

fn validate_camera(camera: &Camera, opts: &RenderOptions) -> Result<()> {
    if camera.width == 0 || camera.height == 0 {
        return Err(Error::param(
            "camera size",
            format!("{}x{}", camera.width, camera.height),
            "must be positive",
        ));
    }
    let k = [camera.fx, camera.fy, camera.cx, camera.cy];
    if k.iter().any(|x| !x.is_finite()) || camera.fx <= 0.0 || camera.fy <= 0.0 {
        return Err(Error::param(
            "camera intrinsics",
            format!("{k:?}"),
            "need finite fx, fy > 0",
        ));
    }
    if !(opts.near > 0.0 && opts.near.is_finite()) {
        return Err(Error::param(
            "near",
            opts.near,
            "must be positive and finite",
        ));
    }
    Ok(())
}

fn validate_objects(objects: &[RenderObject]) -> Result<()> {
    if objects.len() >= u16::MAX as usize {
        return Err(Error::param(
            "object count",
            objects.len(),
            "at most 65534 objects per frame",
        ));
    }
    for (k, o) in objects.iter().enumerate() {
        let h = o.pose.to_homogeneous();
        if h.iter().any(|x| !x.is_finite()) {
            return Err(Error::param(
                format!("pose of object {k}"),
                format!("{:?}", o.pose),
                "non-finite",
            ));
        }
        let nv = o.mesh.vertices.len();
        if let Some(f) = o
            .mesh
            .faces
            .iter()
            .find(|f| f.iter().any(|&i| i as usize >= nv))
        {
            return Err(Error::Shape {
                what: format!("mesh of object {k}: face {f:?}"),
                expected: format!("vertex indices < {nv}"),
                got: format!("{f:?}"),
            });
        }
    }
    Ok(())
}

/// A mesh moved to the camera frame.
struct Posed {
    /// Camera-frame vertex positions.
    v: Vec<Vector3<f64>>,
    /// Camera-frame vertex normals (empty when the mesh has none per vertex).
    n: Vec<Vector3<f64>>,
}

impl Posed {
    fn new(o: &RenderObject) -> Posed {
        let v = o
            .mesh
            .vertices
            .iter()
            .map(|p| (o.pose * p).coords)
            .collect();
        let n = if o.mesh.normals.len() == o.mesh.vertices.len() {
            o.mesh.normals.iter().map(|n| o.pose.rotation * n).collect()
        } else {
            Vec::new()
        };
        Posed { v, n }
    }
}

/// A projected (possibly clipped) triangle.
#[derive(Clone, Copy, Debug)]
struct Tri {
    /// Pixel coordinates of the three vertices, with positive signed area.
    p: [[f64; 2]; 3],
    /// `1/z` at the three vertices.
    inv_z: [f64; 3],
    /// Barycentric coordinates of each vertex in the original (unclipped) face.
    bary: [[f64; 3]; 3],
    /// Twice the signed screen area (> 0).
    area: f64,
    /// Object index and face index in its mesh.
    object: u32,
    face: u32,
    /// Inclusive pixel bounding box, clamped to the image.
    x0: i32,
    x1: i32,
    y0: i32,
    y1: i32,
}

/// A clip-space vertex: camera-frame position and barycentrics in the original face.
#[derive(Clone, Copy)]
struct ClipVert {
    p: Vector3<f64>,
    b: [f64; 3],
}

/// Faces per parallel setup job.
const FACE_CHUNK: usize = 2048;

/// Stage 1: transform, cull, clip and project every face, in (object, face) order.
fn setup_triangles(
    camera: &Camera,
    objects: &[RenderObject],
    posed: &[Posed],
    opts: &RenderOptions,
) -> Vec<Tri> {
    let mut tris = Vec::new();
    for (k, (obj, pm)) in objects.iter().zip(posed).enumerate() {
        let chunks: Vec<Vec<Tri>> = obj
            .mesh
            .faces
            .par_chunks(FACE_CHUNK)
            .enumerate()
            .map(|(c, faces)| {
                let mut out = Vec::with_capacity(faces.len());
                for (i, f) in faces.iter().enumerate() {
                    let id = FaceId {
                        object: k as u32,
                        face: (c * FACE_CHUNK + i) as u32,
                    };
                    face_triangles(camera, pm, f, id, opts, &mut out);
                }
                out
            })
            .collect();
        tris.extend(chunks.into_iter().flatten());
    }
    tris
}

/// Which face of which object a triangle comes from.
#[derive(Clone, Copy, Debug)]
struct FaceId {
    object: u32,
    face: u32,
}

/// Cull, clip and project one face, pushing 0–2 screen triangles.
fn face_triangles(
    camera: &Camera,
    pm: &Posed,
    f: &[u32; 3],
    id: FaceId,
    opts: &RenderOptions,
    out: &mut Vec<Tri>,
) {
    let [a, b, c] = f.map(|i| pm.v[i as usize]);
    if opts.cull_back_faces && (b - a).cross(&(c - a)).dot(&a) >= 0.0 {
        return;
    }
    let corners = [
        ClipVert {
            p: a,
            b: [1.0, 0.0, 0.0],
        },
        ClipVert {
            p: b,
            b: [0.0, 1.0, 0.0],
        },
        ClipVert {
            p: c,
            b: [0.0, 0.0, 1.0],
        },
    ];
    let (poly, n) = clip_near(corners, opts.near);
    for i in 1..n.saturating_sub(1) {
        if let Some(t) = project_triangle(camera, [poly[0], poly[i], poly[i + 1]], id) {
            out.push(t);
        }
    }
}

/// Sutherland–Hodgman clipping of a triangle against the half-space `z ≥ near`.
///
/// Returns the clipped convex polygon (0, 3 or 4 vertices). A crossing edge `a→b` is cut at
/// `t = (near − z_a)/(z_b − z_a)`, interpolating position and barycentrics linearly (exact in
/// camera space).
fn clip_near(tri: [ClipVert; 3], near: f64) -> ([ClipVert; 4], usize) {
    let mut out = [tri[0]; 4];
    let mut n = 0;
    for i in 0..3 {
        let (cur, next) = (tri[i], tri[(i + 1) % 3]);
        let (cin, nin) = (cur.p.z >= near, next.p.z >= near);
        if cin {
            out[n] = cur;
            n += 1;
        }
        if cin != nin {
            let t = (near - cur.p.z) / (next.p.z - cur.p.z);
            out[n] = ClipVert {
                p: cur.p + (next.p - cur.p) * t,
                b: std::array::from_fn(|j| cur.b[j] + (next.b[j] - cur.b[j]) * t),
            };
            n += 1;
        }
    }
    (out, n)
}

/// Twice the signed area of `(a, b, p)`: the edge function of edge `a→b` at `p`.
#[inline]
fn edge(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// Project a clipped triangle (all `z ≥ near > 0`) to pixels; `None` when degenerate or off-image.
fn project_triangle(camera: &Camera, mut v: [ClipVert; 3], id: FaceId) -> Option<Tri> {
    let proj = |c: &ClipVert| {
        [
            camera.fx * c.p.x / c.p.z + camera.cx,
            camera.fy * c.p.y / c.p.z + camera.cy,
        ]
    };
    let mut p = [proj(&v[0]), proj(&v[1]), proj(&v[2])];
    let mut area = edge(p[0], p[1], p[2]);
    if !area.is_finite() || area.abs() < 1e-12 {
        return None;
    }
    if area < 0.0 {
        p.swap(1, 2);
        v.swap(1, 2);
        area = -area;
    }
    let (w, h) = (camera.width as f64 - 1.0, camera.height as f64 - 1.0);
    let lo = |i: usize, max: f64| {
        p.iter()
            .map(|q| q[i])
            .fold(f64::INFINITY, f64::min)
            .ceil()
            .max(0.0)
            .min(max + 1.0)
    };
    let hi = |i: usize, max: f64| {
        p.iter()
            .map(|q| q[i])
            .fold(f64::NEG_INFINITY, f64::max)
            .floor()
            .min(max)
            .max(-1.0)
    };
    let (x0, x1, y0, y1) = (lo(0, w), hi(0, w), lo(1, h), hi(1, h));
    if x0 > x1 || y0 > y1 {
        return None;
    }
    Some(Tri {
        p,
        inv_z: v.map(|c| 1.0 / c.p.z),
        bary: v.map(|c| c.b),
        area,
        object: id.object,
        face: id.face,
        x0: x0 as i32,
        x1: x1 as i32,
        y0: y0 as i32,
        y1: y1 as i32,
    })
}

/// Rows per rasterization band (the unit of parallel work).
const BAND: usize = 16;

/// The nearest fragment of a pixel: depth, triangle and screen barycentrics `λ₁, λ₂`.
#[derive(Clone, Copy, Debug)]
struct Frag {
    z: f32,
    tri: u32,
    l1: f32,
    l2: f32,
}

impl Frag {
    const EMPTY: Frag = Frag {
        z: f32::INFINITY,
        tri: u32::MAX,
        l1: 0.0,
        l2: 0.0,
    };
}

/// Stage 2: z-buffered rasterization, parallel over bands of [`BAND`] rows.
fn rasterize(camera: &Camera, tris: &[Tri]) -> Vec<Frag> {
    let (w, h) = (camera.width as usize, camera.height as usize);
    let mut bins: Vec<Vec<u32>> = vec![Vec::new(); h.div_ceil(BAND)];
    for (i, t) in tris.iter().enumerate() {
        for bin in &mut bins[t.y0 as usize / BAND..=t.y1 as usize / BAND] {
            bin.push(i as u32);
        }
    }
    let mut frags = vec![Frag::EMPTY; w * h];
    frags
        .par_chunks_mut(w * BAND)
        .zip(bins.par_iter())
        .enumerate()
        .for_each(|(b, (buf, bin))| {
            for &ti in bin {
                raster_triangle(&tris[ti as usize], ti, b * BAND, w, buf);
            }
        });
    frags
}

/// Rasterize one triangle into the band starting at row `row0` (`buf` holds whole rows of width `w`).
fn raster_triangle(t: &Tri, ti: u32, row0: usize, w: usize, buf: &mut [Frag]) {
    let rows = buf.len() / w;
    let y0 = (t.y0 as usize).max(row0);
    let y1 = (t.y1 as usize).min(row0 + rows - 1);
    for y in y0..=y1 {
        let line = &mut buf[(y - row0) * w + t.x0 as usize..=(y - row0) * w + t.x1 as usize];
        for (f, x) in line.iter_mut().zip(t.x0..) {
            let q = [x as f64, y as f64];
            let l0 = edge(t.p[1], t.p[2], q);
            let l1 = edge(t.p[2], t.p[0], q);
            let l2 = edge(t.p[0], t.p[1], q);
            if l0 < 0.0 || l1 < 0.0 || l2 < 0.0 {
                continue;
            }
            let inv_z = (l0 * t.inv_z[0] + l1 * t.inv_z[1] + l2 * t.inv_z[2]) / t.area;
            let z = (1.0 / inv_z) as f32;
            if z < f.z {
                *f = Frag {
                    z,
                    tri: ti,
                    l1: (l1 / t.area) as f32,
                    l2: (l2 / t.area) as f32,
                };
            }
        }
    }
}

/// A shaded visible pixel.
#[derive(Clone, Copy, Debug)]
struct Shaded {
    z: f32,
    index: u16,
    rgb: [u8; 3],
    cos: f32,
}

/// Shade one fragment: perspective-correct barycentrics `βᵢ = (λᵢ/zᵢ)/Σⱼ λⱼ/zⱼ` mapped back to the
/// original face, interpolated normal and colour, Lambertian headlight `I = a + (1 − a)·|n·ω|`.
fn shade(posed: &[Posed], objects: &[RenderObject], t: &Tri, f: &Frag, ambient: f64) -> Shaded {
    let (l1, l2) = (f.l1 as f64, f.l2 as f64);
    let q = [
        (1.0 - l1 - l2) * t.inv_z[0],
        l1 * t.inv_z[1],
        l2 * t.inv_z[2],
    ];
    let s = q[0] + q[1] + q[2];
    let beta: [f64; 3] = std::array::from_fn(|j| (0..3).map(|i| q[i] / s * t.bary[i][j]).sum());
    let (obj, pm) = (&objects[t.object as usize], &posed[t.object as usize]);
    let face = obj.mesh.faces[t.face as usize].map(|i| i as usize);
    let interp =
        |a: &[Vector3<f64>]| beta[0] * a[face[0]] + beta[1] * a[face[1]] + beta[2] * a[face[2]];
    let p = interp(&pm.v);
    let face_n = (pm.v[face[1]] - pm.v[face[0]]).cross(&(pm.v[face[2]] - pm.v[face[0]]));
    let n = if pm.n.is_empty() {
        face_n
    } else {
        interp(&pm.n)
    };
    let n = n
        .try_normalize(1e-12)
        .or_else(|| face_n.try_normalize(1e-300))
        .unwrap_or(-p);
    let cos = n.dot(&-p).abs() / p.norm().max(1e-300);
    let base: [f64; 3] = match &obj.mesh.colors {
        Some(c) if c.len() == obj.mesh.vertices.len() => {
            std::array::from_fn(|ch| (0..3).map(|j| beta[j] * c[face[j]][ch] as f64).sum())
        }
        _ => obj.color.map(|c| c as f64),
    };
    let intensity = ambient + (1.0 - ambient) * cos.min(1.0);
    Shaded {
        z: f.z,
        index: t.object as u16 + 1,
        rgb: base.map(|c| (c * intensity).round().clamp(0.0, 255.0) as u8),
        cos: cos.min(1.0) as f32,
    }
}

/// Background colour at pixel `(u, v)`.
fn background_pixel(bg: &Background, u: usize, v: usize) -> [u8; 3] {
    match *bg {
        Background::Solid(c) => c,
        Background::Texture { seed } => texture_pixel(seed, u as i64, v as i64),
    }
}

/// Procedural texture: tiles of 64 px with random tints, modulated by two octaves of value noise
/// (cells of 48 and 12 px): `c = tint · (0.5 + 0.7·(0.6·N₄₈ + 0.4·N₁₂))`.
fn texture_pixel(seed: u64, u: i64, v: i64) -> [u8; 3] {
    let n = 0.6 * value_noise(seed, u, v, 48.0) + 0.4 * value_noise(seed ^ 0x5555, u, v, 12.0);
    let tile =
        |ch: u64| 60.0 + 150.0 * hash01(seed ^ (0xA0 + ch), u.div_euclid(64), v.div_euclid(64));
    let tint = [tile(0), tile(1), tile(2)];
    tint.map(|c| (c * (0.5 + 0.7 * n)).round().clamp(0.0, 255.0) as u8)
}

/// Smoothly interpolated lattice noise in `[0, 1)` with lattice spacing `cell` pixels.
fn value_noise(seed: u64, u: i64, v: i64, cell: f64) -> f64 {
    let (x, y) = (u as f64 / cell, v as f64 / cell);
    let (ix, iy) = (x.floor(), y.floor());
    let smooth = |t: f64| t * t * (3.0 - 2.0 * t);
    let (fx, fy) = (smooth(x - ix), smooth(y - iy));
    let h = |dx: i64, dy: i64| hash01(seed, ix as i64 + dx, iy as i64 + dy);
    let top = h(0, 0) + (h(1, 0) - h(0, 0)) * fx;
    let bottom = h(0, 1) + (h(1, 1) - h(0, 1)) * fx;
    top + (bottom - top) * fy
}

/// A hash of `(seed, x, y)` to `[0, 1)` (SplitMix64 finaliser).
fn hash01(seed: u64, x: i64, y: i64) -> f64 {
    let mut z = seed
        ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Translation3, UnitQuaternion};

    fn camera() -> Camera {
        Camera {
            fx: 500.0,
            fy: 520.0,
            cx: 160.0,
            cy: 120.0,
            width: 320,
            height: 240,
        }
    }

    fn pose(t: [f64; 3], axis_angle: [f64; 3]) -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(t[0], t[1], t[2]),
            UnitQuaternion::from_scaled_axis(Vector3::from(axis_angle)),
        )
    }

    fn one(mesh: &Mesh, pose: Isometry3<f64>) -> Rendered {
        let obj = RenderObject {
            mesh,
            pose,
            color: [200, 100, 50],
        };
        render(&camera(), &[obj], &RenderOptions::default()).unwrap()
    }

    /// Analytic depth (z) where the ray through pixel `(u, v)` meets the plane `n·(X − X₀) = 0`.
    fn plane_depth(cam: &Camera, n: Vector3<f64>, x0: Vector3<f64>, u: f64, v: f64) -> f64 {
        let d = Vector3::new((u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, 1.0);
        n.dot(&x0) / n.dot(&d)
    }

    #[test]
    fn fronto_parallel_cuboid_depth_equals_plane_distance() {
        let mesh = Mesh::cuboid(0.1, 0.1, 0.1).unwrap();
        let r = one(&mesh, pose([0.0, 0.0, 0.5], [0.0; 3]));
        let d = r.depth_at(160, 120).unwrap();
        assert!((d - 0.45).abs() < 1e-6, "depth {d}");
        assert_eq!(r.index[120 * 320 + 160], 1);
        assert_eq!(r.depth_at(2, 2), Some(0.0));
    }

    #[test]
    fn tilted_cuboid_depth_is_perspective_correct() {
        let mesh = Mesh::cuboid(0.2, 0.2, 0.2).unwrap();
        let p = pose([0.01, -0.02, 0.8], [0.1, 0.5, 0.0]);
        let r = one(&mesh, p);
        let cam = camera();
        let n = p.rotation * Vector3::new(0.0, 0.0, -1.0);
        let x0 = (p * nalgebra::Point3::new(0.0, 0.0, -0.1)).coords;
        let mut checked = 0;
        for (u, v) in [(160, 120), (150, 110), (175, 125), (140, 135)] {
            let expect = plane_depth(&cam, n, x0, u as f64, v as f64);
            let got = r.depth_at(u, v).unwrap() as f64;
            assert!((got - expect).abs() < 1e-5, "({u},{v}): {got} vs {expect}");
            assert!(r.cos_incidence[(v * 320 + u) as usize] > 0.5);
            checked += 1;
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn silhouette_area_matches_projected_square() {
        let mesh = Mesh::cuboid(0.1, 0.1, 0.1).unwrap();
        let r = one(&mesh, pose([0.0, 0.0, 0.6], [0.0; 3]));
        let cam = camera();
        let expect = (cam.fx * 0.1 / 0.55) * (cam.fy * 0.1 / 0.55);
        let got = r.pixel_count(0) as f64;
        assert!((got - expect).abs() / expect < 0.01, "{got} vs {expect}");
    }

    #[test]
    fn nearer_object_occludes_regardless_of_order() {
        let mesh = Mesh::cuboid(0.1, 0.1, 0.1).unwrap();
        let near = pose([0.0, 0.0, 0.5], [0.0; 3]);
        let far = pose([0.05, 0.0, 0.8], [0.0, 0.3, 0.0]);
        let cam = camera();
        let objs = |a: Isometry3<f64>, b: Isometry3<f64>| {
            [
                RenderObject {
                    mesh: &mesh,
                    pose: a,
                    color: [255, 0, 0],
                },
                RenderObject {
                    mesh: &mesh,
                    pose: b,
                    color: [0, 255, 0],
                },
            ]
        };
        let r1 = render(&cam, &objs(near, far), &RenderOptions::default()).unwrap();
        let r2 = render(&cam, &objs(far, near), &RenderOptions::default()).unwrap();
        let centre = 120 * 320 + 160;
        assert_eq!(r1.index[centre], 1);
        assert_eq!(r2.index[centre], 2);
        assert!((r1.depth[centre] - 0.45).abs() < 1e-6);
        assert_eq!(r1.depth, r2.depth);
        // the far box is partly visible to the right of the near one, and smaller than alone
        let far_alone = one(&mesh, far).pixel_count(0);
        let far_visible = r1.pixel_count(1);
        assert!(
            far_visible > 0 && far_visible < far_alone,
            "{far_visible} / {far_alone}"
        );
        assert_eq!(r1.pixel_count(1), r2.pixel_count(0));
    }

    #[test]
    fn near_plane_clipping_and_inside_view() {
        let mesh = Mesh::cuboid(0.4, 0.4, 0.4).unwrap();
        // straddles the near plane: only the part beyond `near` renders
        let opts = RenderOptions {
            near: 0.1,
            cull_back_faces: false,
            ..Default::default()
        };
        let obj = RenderObject {
            mesh: &mesh,
            pose: pose([0.0, 0.0, 0.15], [0.0; 3]),
            color: [9; 3],
        };
        let r = render(&camera(), &[obj], &opts).unwrap();
        assert!(r.depth.iter().all(|&d| d == 0.0 || d >= 0.1 - 1e-6));
        // from inside the box with back faces kept, the far wall fills the whole view
        assert!(
            r.depth.iter().all(|&d| (d - 0.35).abs() < 1e-5),
            "{:?}",
            &r.depth[..3]
        );
        // with culling, the inside is invisible
        let culled = render(
            &camera(),
            &[obj],
            &RenderOptions {
                near: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(culled.pixel_count(0), 0);
    }

    #[test]
    fn rendered_pixels_agree_with_camera_projection() {
        let mesh = Mesh::cuboid(0.01, 0.01, 0.01).unwrap();
        let cam = camera();
        let p = pose([0.03, -0.02, 0.5], [0.0; 3]);
        let uv = cam
            .project(&nalgebra::Point3::from(p.translation.vector))
            .unwrap();
        let r = one(&mesh, p);
        let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
        for (i, &k) in r.index.iter().enumerate() {
            if k == 1 {
                su += (i % 320) as f64;
                sv += (i / 320) as f64;
                n += 1.0;
            }
        }
        assert!(n > 50.0);
        assert!(
            (su / n - uv.x).abs() < 0.3 && (sv / n - uv.y).abs() < 0.3,
            "{} {} vs {uv}",
            su / n,
            sv / n
        );
    }

    #[test]
    fn shading_and_background() {
        let mesh = Mesh::cylinder(0.05, 0.1, 32).unwrap();
        let r = one(&mesh, pose([0.0, 0.0, 0.5], [1.2, 0.0, 0.0]));
        assert!(r.pixel_count(0) > 1000);
        let centre = r.rgb[120 * 320 + 160];
        assert!(centre[0] > centre[1] && centre[1] > centre[2]);
        // background texture is deterministic and not flat
        let bg = background_image(&camera(), &Background::Texture { seed: 3 });
        assert_eq!(
            bg,
            background_image(&camera(), &Background::Texture { seed: 3 })
        );
        assert_ne!(bg[0], bg[100 * 320 + 300]);
        assert_eq!(
            r.rgb[0],
            background_image(&camera(), &Background::Texture { seed: 0 })[0]
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut mesh = Mesh::cuboid(0.1, 0.1, 0.1).unwrap();
        mesh.faces.push([0, 1, 99]);
        let obj = RenderObject {
            mesh: &mesh,
            pose: Isometry3::identity(),
            color: [0; 3],
        };
        assert!(render(&camera(), &[obj], &RenderOptions::default()).is_err());
        let cam = Camera {
            width: 0,
            ..camera()
        };
        assert!(render(&cam, &[], &RenderOptions::default()).is_err());
    }

    /// Timing at 640×480 (run with `cargo test --release --lib render_timing -- --ignored
    /// --nocapture`; YCB-V meshes from `$YCBV_MINI`, default `../shared/datasets/ycbv-mini`).
    #[test]
    #[ignore]
    fn render_timing() {
        let cam = Camera {
            fx: 1066.778,
            fy: 1067.487,
            cx: 312.9869,
            cy: 241.3109,
            width: 640,
            height: 480,
        };
        let root = std::env::var("YCBV_MINI").unwrap_or_else(|_| {
            crate::core::datasets::shared("ycbv-mini")
                .display()
                .to_string()
        });
        let ycb: Vec<Mesh> = [3, 6, 9, 13]
            .iter()
            .filter_map(|id| Mesh::load_ply(format!("{root}/models/obj_{id:06}.ply")).ok())
            .collect();
        let prims = vec![
            Mesh::cuboid(0.1, 0.07, 0.05).unwrap(),
            Mesh::cylinder(0.035, 0.1, 64).unwrap(),
        ];
        for (name, meshes) in [("primitives", &prims), ("ycb", &ycb)] {
            for n in 1..=meshes.len() {
                let objs: Vec<RenderObject> = meshes[..n]
                    .iter()
                    .enumerate()
                    .map(|(k, m)| RenderObject {
                        mesh: m,
                        pose: pose(
                            [-0.12 + 0.08 * k as f64, 0.0, 0.7],
                            [0.4, 0.3 * k as f64, 0.1],
                        ),
                        color: [180, 120, 60],
                    })
                    .collect();
                let tris: usize = objs.iter().map(|o| o.mesh.faces.len()).sum();
                let renderer = Renderer::new(&cam, &RenderOptions::default()).unwrap();
                renderer.render(&objs).unwrap();
                let reps = 50;
                let (t, cpu) = (std::time::Instant::now(), process_cpu_seconds());
                for _ in 0..reps {
                    std::hint::black_box(renderer.render(&objs).unwrap());
                }
                let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
                let cpu_ms = (process_cpu_seconds() - cpu) * 1e3 / reps as f64;
                println!("{name}: {n} objects, {tris} triangles: {ms:.2} ms wall, {cpu_ms:.2} ms CPU per 640x480 frame");
            }
        }
    }

    /// User + system CPU time of this process (Linux `/proc/self/stat`, 100 ticks per second).
    fn process_cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (tick(11) + tick(12)) / 100.0
    }
}
