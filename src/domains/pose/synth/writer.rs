//! Writing a synthetic sequence as a BOP scene: frames, `scene_*.json` files and the summary.

use super::*;

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    /// Dataset root.
    pub out: PathBuf,
    /// The scene directory `out/<split>/<scene:06>`.
    pub scene_dir: PathBuf,
    /// Frames written.
    pub frames: usize,
    /// Object ids in GT order.
    pub obj_ids: Vec<u32>,
    /// The motion profile.
    pub motion: Motion,
    /// Per-frame steps.
    pub steps: MotionStats,
    /// Smallest and mean visible fraction over objects and frames.
    pub min_visib_fract: f64,
    /// Mean visible fraction.
    pub mean_visib_fract: f64,
    /// Fraction of visible object pixels without sensor depth.
    pub hole_fract: f64,
}

impl fmt::Display for SynthSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.steps;
        write!(
            f,
            "synth: {} frames, obj ids {:?}, motion {:?}: step mean {:.1} mm / {:.2}°, max {:.1} mm / {:.2}°; \
             visible fraction min {:.2}, mean {:.2}; depth holes on objects {:.1} % -> {}",
            self.frames,
            self.obj_ids,
            self.motion,
            s.mean_mm,
            s.mean_deg,
            s.max_mm,
            s.max_deg,
            self.min_visib_fract,
            self.mean_visib_fract,
            100.0 * self.hole_fract,
            self.scene_dir.display()
        )
    }
}

/// Renders the sequence of `cfg` and writes it as a BOP scene under `cfg.out` (see the module
/// docs for the layout). Existing files of the same names are overwritten.
pub fn generate(cfg: &SynthConfig) -> Result<SynthSummary> {
    generate_with_progress(cfg, &|| {})
}

/// [`generate`], calling `progress` once per frame written (from worker threads).
pub fn generate_with_progress(
    cfg: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthSummary> {
    if cfg.out.as_os_str().is_empty() {
        // An empty path would write the dataset into the working directory.
        return Err(Error::param(
            "out",
            "\"\"",
            "generate needs the folder to write the dataset to (SynthConfig::in_memory has none)",
        ));
    }
    let synth = Synthesizer::new(cfg)?;
    let scene_dir = cfg
        .out
        .join(&cfg.split)
        .join(format!("{:06}", cfg.scene_id));
    for sub in ["rgb", "depth", "mask_visib"] {
        create_dir(&scene_dir.join(sub))?;
    }
    write_models(&synth, &cfg.out.join("models"))?;
    let infos: Vec<Vec<GtInfo>> = (0..synth.len())
        .into_par_iter()
        .map(|k| {
            let frame = synth.frame(k)?;
            write_frame(&scene_dir, &frame)?;
            progress();
            Ok(frame.info)
        })
        .collect::<Result<_>>()?;
    write_scene_files(&synth, &scene_dir, &infos)?;
    Ok(summary(&synth, scene_dir, &infos))
}

/// `rgb/`, `depth/` and `mask_visib/` images of one frame.
pub(super) fn write_frame(dir: &Path, f: &SynthFrame) -> Result<()> {
    let id = f.im_id();
    bop::write_rgb_png(dir.join("rgb").join(format!("{id:06}.png")), f.rgb())?;
    bop::write_depth_png(
        dir.join("depth").join(format!("{id:06}.png")),
        f.depth(),
        f.depth_scale,
    )?;
    for k in 0..f.gt.len() {
        let path = dir.join("mask_visib").join(format!("{id:06}_{k:06}.png"));
        f.mask_visib(k)
            .save(&path)
            .map_err(|e| Error::format(&path, format!("cannot write PNG: {e}")))?;
    }
    Ok(())
}

/// `scene_camera.json`, `scene_gt.json`, `scene_gt_info.json`.
pub(super) fn write_scene_files(
    synth: &Synthesizer,
    dir: &Path,
    infos: &[Vec<GtInfo>],
) -> Result<()> {
    let ids = 1..=synth.len() as u32;
    let cam = FrameCamera {
        camera: synth.cfg.camera,
        depth_scale: synth.cfg.depth_scale,
    };
    bop::write_scene_camera(
        dir.join("scene_camera.json"),
        &ids.clone().map(|id| (id, cam)).collect(),
    )?;
    bop::write_scene_gt(
        dir.join("scene_gt.json"),
        &ids.clone()
            .map(|id| (id, synth.gt(id as usize - 1)))
            .collect(),
    )?;
    let entry = |g: &GtInfo| {
        serde_json::json!({
            "bbox_obj": g.bbox_obj, "bbox_visib": g.bbox_visib, "px_count_all": g.px_count_all,
            "px_count_valid": g.px_count_valid, "px_count_visib": g.px_count_visib, "visib_fract": g.visib_fract,
        })
    };
    let lines: Vec<String> = ids
        .zip(infos)
        .map(|(id, list)| {
            format!(
                "  \"{id}\": {}",
                serde_json::Value::Array(list.iter().map(entry).collect())
            )
        })
        .collect();
    let path = dir.join("scene_gt_info.json");
    std::fs::write(&path, format!("{{\n{}\n}}\n", lines.join(",\n")))
        .map_err(|e| Error::io(&path, e))
}

pub(super) fn summary(
    synth: &Synthesizer,
    scene_dir: PathBuf,
    infos: &[Vec<GtInfo>],
) -> SynthSummary {
    let all: Vec<&GtInfo> = infos.iter().flatten().collect();
    let n = all.len().max(1) as f64;
    let visib: usize = all.iter().map(|g| g.px_count_visib).sum();
    let valid: usize = all.iter().map(|g| g.px_count_valid).sum();
    SynthSummary {
        out: synth.cfg.out.clone(),
        scene_dir,
        frames: synth.len(),
        obj_ids: synth.obj_ids(),
        motion: synth.cfg.motion,
        steps: synth.motion_stats(),
        min_visib_fract: all
            .iter()
            .map(|g| g.visib_fract)
            .fold(f64::INFINITY, f64::min)
            .min(1.0),
        mean_visib_fract: all.iter().map(|g| g.visib_fract).sum::<f64>() / n,
        hole_fract: if visib == 0 {
            0.0
        } else {
            1.0 - valid as f64 / visib as f64
        },
    }
}

pub(super) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}
