//! rerun inspection, behind the cargo feature `rerun` (without it nothing of rerun is compiled
//! and asking for a rerun sink is an error).
//!
//! Entity tree (camera frame = world frame, OpenCV axes: x right, y down, z forward):
//! ```text
//! world                                   ViewCoordinates RDF (static)
//! world/camera                            Pinhole (intrinsics, resolution)
//! world/camera/rgb                        Image (RGB)
//! world/camera/depth                      DepthImage (metres)
//! world/objects/<obj_id>/gt               Transform3D (ground truth)
//! world/objects/<obj_id>/gt/mesh          Mesh3D (static)
//! world/objects/<obj_id>/<tracker>        Transform3D (estimate)
//! world/objects/<obj_id>/<tracker>/mesh   Mesh3D (static)
//! world/particles/<tracker>/<obj_id>      Points3D (particle translations, coloured by loss)
//! metrics/<tracker>/latency_ms            Scalars (capture → publish)
//! metrics/<tracker>/<obj_id>/spread_mm    Scalars (particle spread)
//! metrics/<tracker>/<obj_id>/ess          Scalars (effective sample size)
//! metrics/<tracker>/<obj_id>/add_mm       Scalars (ADD against ground truth)
//! metrics/<tracker>/<obj_id>/quality      Scalars (the tracker's quality judgement, when judged)
//! metrics/<tracker>/<obj_id>/visible      Scalars (its visible fraction, when judged)
//! metrics/<tracker>/<obj_id>/held         Scalars (1 when the loss trigger fired, else 0)
//! metrics/<tracker>/<obj_id>/lost         Scalars (1 when judged lost, else 0)
//! ```
//! Timelines: `frame` (stream position) and `capture_time` (seconds on the pipeline clock).

use crate::core::error::Result;
use crate::runtime::pipeline::plugin::{SinkContext, SinkPlugin, SpecError};
use crate::runtime::pipeline::{MeshLibrary, ModelPoints, ObjectEstimate, Sink};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// `[sinks.rerun]`: exactly one of `save`, `spawn`, `connect`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerunSpec {
    /// Save to this `.rrd` file.
    pub save: Option<PathBuf>,
    /// Spawn a viewer (needs `rerun` on PATH).
    #[serde(default)]
    pub spawn: bool,
    /// Connect to a running viewer, e.g. `rerun+http://127.0.0.1:9876/proxy`.
    pub connect: Option<String>,
    /// Log particle clouds (when the tracker exposes them).
    #[serde(default = "default_true")]
    pub particles: bool,
    /// Log the depth image too.
    #[serde(default = "default_true")]
    pub depth: bool,
}

fn default_true() -> bool {
    true
}

impl SinkPlugin for RerunSpec {
    fn check(&self) -> std::result::Result<(), SpecError> {
        let targets = [self.save.is_some(), self.spawn, self.connect.is_some()];
        match targets.iter().filter(|&&t| t).count() {
            1 => Ok(()),
            _ => Err(SpecError::table(
                "[sinks.rerun] needs exactly one of save = \"FILE.rrd\", spawn = true, connect = \"URL\"",
            )),
        }
    }

    /// Without the `rerun` feature: a warning, and the run goes on without it.
    fn open(&self, ctx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        if !cfg!(feature = "rerun") {
            eprintln!(
                "warning: [sinks.rerun] skipped: hdpf was built without the `rerun` feature \
                 (build with --features rerun)"
            );
            return Ok(None);
        }
        rerun_sink(self, ctx.meshes.clone(), ctx.models.clone()).map(Some)
    }
}

/// The sink `spec` asks for (save to a file, spawn a viewer, or connect to one).
#[cfg(not(feature = "rerun"))]
pub fn rerun_sink(
    spec: &RerunSpec,
    meshes: Arc<MeshLibrary>,
    points: ModelPoints,
) -> Result<Box<dyn Sink>> {
    let _ = (spec, meshes, points);
    Err(crate::core::error::Error::Other(
        "[sinks.rerun] needs hdpf built with the `rerun` feature (cargo build --features rerun)"
            .into(),
    ))
}

/// The sink `spec` asks for (save to a file, spawn a viewer, or connect to one).
#[cfg(feature = "rerun")]
pub fn rerun_sink(
    spec: &RerunSpec,
    meshes: Arc<MeshLibrary>,
    points: ModelPoints,
) -> Result<Box<dyn Sink>> {
    let rec = imp::open(spec)?;
    let opts = RerunOptions {
        particles: spec.particles,
        depth: spec.depth,
        viewer: spec.save.is_none(),
    };
    Ok(Box::new(imp::RerunSink::new(rec, meshes, points, opts)))
}

/// What the rerun sink logs besides images, poses and metrics.
#[derive(Clone, Copy, Debug)]
pub struct RerunOptions {
    /// Particle clouds.
    pub particles: bool,
    /// Depth images.
    pub depth: bool,
    /// Whether the recording goes to a viewer (spawned or connected) rather than a file.
    pub viewer: bool,
}

impl Default for RerunOptions {
    fn default() -> Self {
        Self {
            particles: true,
            depth: true,
            viewer: false,
        }
    }
}

#[cfg(feature = "rerun")]
pub use imp::{entity_counts, RerunSink};

/// The scalars the rerun sink logs per object under `metrics/<tracker>/<obj_id>/` (module docs):
/// name and value, flags as 0 or 1, the ADD (mm) where the ground truth gives one; a value that
/// is not finite (not judged, no spread) is left out.
pub fn object_scalars(o: &ObjectEstimate, add_mm: Option<f64>) -> Vec<(&'static str, f64)> {
    let flag = |b: bool| f64::from(u8::from(b));
    let series = [
        ("spread_mm", o.spread * 1e3),
        ("ess", o.diagnostics.ess),
        ("quality", o.judgement.quality),
        ("visible", o.judgement.visible),
        ("held", flag(o.judgement.held)),
        ("lost", flag(o.judgement.lost)),
    ];
    let add = add_mm.map(|a| ("add_mm", a));
    (series.into_iter().chain(add))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The judgement goes out as logged: quality and visible where judged, each flag as 0 or 1
    /// under its own name, the ADD where given.
    #[test]
    fn object_scalars_carry_the_judgement() {
        let mut o = ObjectEstimate::judged(0.25, f64::NAN, true, false);
        o.spread = 0.25;
        o.diagnostics.ess = 100.0;
        let s = object_scalars(&o, Some(1.5));
        let want = [
            ("spread_mm", 250.0),
            ("ess", 100.0),
            ("quality", 0.25),
            ("held", 1.0),
            ("lost", 0.0),
            ("add_mm", 1.5),
        ];
        assert_eq!(s, want);
        assert!(!object_scalars(&o, None).iter().any(|(n, _)| *n == "add_mm"));
    }
}

#[cfg(feature = "rerun")]
mod imp {
    use super::RerunOptions;
    use super::RerunSpec;
    use crate::core::error::{Error, Result};
    use crate::domains::pose::frame::RgbdFrame;
    use crate::domains::pose::mesh::Mesh;
    use crate::runtime::pipeline::summary::add_error;
    use crate::runtime::pipeline::{
        EstimateMsg, FrameMsg, MeshLibrary, ModelPoints, ObjectEstimate, Sink, SinkMsg,
    };
    use nalgebra::Isometry3;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    fn err(e: impl std::fmt::Display) -> Error {
        Error::Other(format!("rerun: {e}"))
    }

    /// Open the recording stream of `spec`.
    pub fn open(spec: &RerunSpec) -> Result<rerun::RecordingStream> {
        let b = rerun::RecordingStreamBuilder::new("hdpf");
        let rec = match (&spec.save, spec.spawn, &spec.connect) {
            (Some(path), false, None) => b.save(path),
            (None, true, None) => b.spawn(),
            (None, false, Some(url)) => b.connect_grpc_opts(url.clone()),
            _ => {
                return Err(Error::param(
                    "sinks.rerun",
                    "",
                    "give exactly one of save, spawn, connect",
                ))
            }
        };
        rec.map_err(err)
    }

    /// Logs frames, poses, meshes, particles and metrics to a rerun recording.
    pub struct RerunSink {
        rec: rerun::RecordingStream,
        meshes: Arc<MeshLibrary>,
        points: ModelPoints,
        opts: RerunOptions,
        logged_meshes: BTreeSet<String>,
        camera: Option<crate::core::geometry::Camera>,
    }

    impl RerunSink {
        /// A sink logging to `rec`.
        pub fn new(
            rec: rerun::RecordingStream,
            meshes: Arc<MeshLibrary>,
            points: ModelPoints,
            opts: RerunOptions,
        ) -> Self {
            Self {
                rec,
                meshes,
                points,
                opts,
                logged_meshes: BTreeSet::new(),
                camera: None,
            }
        }

        /// A sink logging to memory (for tests), with the storage to inspect.
        pub fn memory(
            meshes: Arc<MeshLibrary>,
            points: ModelPoints,
        ) -> Result<(Self, rerun::sink::MemorySinkStorage)> {
            let (rec, storage) = rerun::RecordingStreamBuilder::new("hdpf")
                .memory()
                .map_err(err)?;
            Ok((
                Self::new(rec, meshes, points, RerunOptions::default()),
                storage,
            ))
        }

        fn set_time(&self, seq: u64, capture: f64) {
            self.rec.set_time_sequence("frame", seq as i64);
            self.rec.set_duration_secs("capture_time", capture);
        }

        fn log_frame(&mut self, m: &FrameMsg) -> Result<()> {
            let Some(frame) = m.decoded() else {
                return Ok(());
            };
            self.set_time(m.seq, m.capture);
            if self.camera.is_none() {
                self.rec
                    .log_static("world", &rerun::ViewCoordinates::RDF())
                    .map_err(err)?;
            }
            self.log_camera(frame)?;
            if let Some(rgb) = &frame.rgb {
                let (w, h) = rgb.dimensions();
                let rgb = rerun::Image::from_rgb24(rgb.as_raw().clone(), [w, h]);
                self.rec.log("world/camera/rgb", &rgb).map_err(err)?;
            }
            if self.opts.depth {
                self.log_depth(frame)?;
            }
            for g in m.gt.iter() {
                let path = format!("world/objects/{}/gt", g.obj_id);
                self.log_pose(&path, &g.pose, [40, 200, 80])?;
            }
            Ok(())
        }

        fn log_camera(&mut self, frame: &RgbdFrame) -> Result<()> {
            let c = frame.camera;
            if self.camera == Some(c) {
                return Ok(());
            }
            let pinhole = rerun::Pinhole::from_focal_length_and_resolution(
                [c.fx as f32, c.fy as f32],
                [c.width as f32, c.height as f32],
            )
            .with_principal_point([c.cx as f32, c.cy as f32]);
            self.rec.log("world/camera", &pinhole).map_err(err)?;
            self.camera = Some(c);
            Ok(())
        }

        fn log_depth(&self, frame: &RgbdFrame) -> Result<()> {
            let Some(d) = &frame.depth else {
                return Ok(());
            };
            let bytes: Vec<u8> = d.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let img = rerun::DepthImage::from_data_type_and_bytes(
                bytes,
                [d.width as u32, d.height as u32],
                rerun::ChannelDatatype::F32,
            )
            .with_meter(1.0);
            self.rec.log("world/camera/depth", &img).map_err(err)
        }

        /// A pose as Transform3D at `path` and its object's mesh (once) at `path/mesh`.
        fn log_pose(&mut self, path: &str, pose: &Isometry3<f64>, color: [u8; 3]) -> Result<()> {
            let t = pose.translation.vector;
            let q = pose.rotation.quaternion();
            let tf = rerun::Transform3D::from_translation_rotation(
                [t.x as f32, t.y as f32, t.z as f32],
                rerun::Quaternion::from_xyzw([q.i as f32, q.j as f32, q.k as f32, q.w as f32]),
            );
            self.rec.log(path, &tf).map_err(err)?;
            let obj_id = path.split('/').nth(2).and_then(|s| s.parse::<u32>().ok());
            if let Some(mesh) = obj_id.and_then(|id| self.meshes.get(&id)).cloned() {
                if self.logged_meshes.insert(path.to_string()) {
                    let mesh_path = format!("{path}/mesh");
                    self.rec
                        .log_static(mesh_path, &mesh3d(&mesh, color))
                        .map_err(err)?;
                }
            }
            Ok(())
        }

        fn log_estimate(&mut self, m: &EstimateMsg) -> Result<()> {
            self.set_time(m.seq, m.capture);
            let tr = &m.tracker;
            self.rec
                .log(
                    format!("metrics/{tr}/latency_ms"),
                    &rerun::Scalars::single(m.latency() * 1e3),
                )
                .map_err(err)?;
            for o in &m.objects {
                let color = tracker_color(tr);
                self.log_pose(&format!("world/objects/{}/{tr}", o.obj_id), &o.pose, color)?;
                self.log_object_metrics(m, o)?;
                if let Some(cloud) = o.particles.as_ref().filter(|_| self.opts.particles) {
                    let pts = rerun::Points3D::new(cloud.translations.iter().copied())
                        .with_colors(loss_colors(&cloud.losses))
                        .with_radii([0.001f32]);
                    self.rec
                        .log(format!("world/particles/{tr}/{}", o.obj_id), &pts)
                        .map_err(err)?;
                }
            }
            Ok(())
        }

        fn log_object_metrics(&self, m: &EstimateMsg, o: &ObjectEstimate) -> Result<()> {
            let base = format!("metrics/{}/{}", m.tracker, o.obj_id);
            let gt = m.gt.iter().find(|g| g.obj_id == o.obj_id);
            let add_mm = match (gt, self.points.get(&o.obj_id)) {
                (Some(g), Some(pts)) => Some(add_error(pts, &o.pose, &g.pose) * 1e3),
                _ => None,
            };
            for (name, v) in super::object_scalars(o, add_mm) {
                self.rec
                    .log(format!("{base}/{name}"), &rerun::Scalars::single(v))
                    .map_err(err)?;
            }
            Ok(())
        }
    }

    fn mesh3d(mesh: &Mesh, color: [u8; 3]) -> rerun::Mesh3D {
        let pos = mesh
            .vertices
            .iter()
            .map(|p| [p.x as f32, p.y as f32, p.z as f32]);
        let nrm = mesh
            .normals
            .iter()
            .map(|n| [n.x as f32, n.y as f32, n.z as f32]);
        let mut m = rerun::Mesh3D::new(pos).with_triangle_indices(mesh.faces.iter().copied());
        if mesh.normals.len() == mesh.vertices.len() {
            m = m.with_vertex_normals(nrm);
        }
        m.with_albedo_factor(rerun::Rgba32::from_unmultiplied_rgba(
            color[0], color[1], color[2], 160,
        ))
    }

    /// A stable colour per tracker name.
    fn tracker_color(name: &str) -> [u8; 3] {
        const PALETTE: [[u8; 3]; 4] = [
            [230, 80, 60],
            [60, 120, 230],
            [220, 180, 40],
            [170, 70, 200],
        ];
        let h = name
            .bytes()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
        PALETTE[h % PALETTE.len()]
    }

    /// Low loss blue, high loss red (min–max normalised).
    fn loss_colors(losses: &[f32]) -> Vec<rerun::Color> {
        let (lo, hi) = losses
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &l| (a.min(l), b.max(l)));
        let span = (hi - lo).max(1e-12);
        losses
            .iter()
            .map(|&l| {
                let x = ((l - lo) / span).clamp(0.0, 1.0);
                rerun::Color::from_rgb((255.0 * x) as u8, 40, (255.0 * (1.0 - x)) as u8)
            })
            .collect()
    }

    impl Sink for RerunSink {
        fn name(&self) -> &str {
            "rerun"
        }

        fn wants_frames(&self) -> bool {
            true
        }

        fn handle(&mut self, msg: &SinkMsg) -> Result<()> {
            match msg {
                SinkMsg::Frame(f) => self.log_frame(f),
                SinkMsg::Estimate(m) => self.log_estimate(m),
                SinkMsg::Skipped(_) => Ok(()),
            }
        }

        fn finish(&mut self) -> Result<()> {
            self.rec.flush_blocking().map_err(err)
        }

        /// A viewer that goes away is dropped and the run goes on; a `.rrd` file that cannot be
        /// written ends the run like any results file.
        fn on_failure(&self) -> crate::runtime::pipeline::SinkFailure {
            match self.opts.viewer {
                true => crate::runtime::pipeline::SinkFailure::Drop,
                false => crate::runtime::pipeline::SinkFailure::EndRun,
            }
        }
    }

    /// Rows logged per entity path in a memory recording (for tests).
    pub fn entity_counts(
        storage: &rerun::sink::MemorySinkStorage,
    ) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for msg in storage.take() {
            if let rerun::log::LogMsg::ArrowMsg(_, arrow) = msg {
                let chunk = rerun::log::Chunk::from_arrow_msg(&arrow).map_err(err)?;
                *counts.entry(chunk.entity_path().to_string()).or_insert(0) += chunk.num_rows();
            }
        }
        Ok(counts)
    }
}
