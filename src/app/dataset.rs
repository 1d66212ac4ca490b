//! `hdpf dataset synth`: render a synthetic BOP-format RGB-D sequence from command-line flags.

use crate::core::error::{Error, Result};
use crate::domains::pose::synth::{
    generate_with_progress, ycbv_camera, Motion, ObjectSource, SensorNoise, SynthConfig,
};
use std::path::PathBuf;

/// `hdpf dataset synth`: render a synthetic BOP-format RGB-D sequence.
#[derive(clap::Args, Clone, Debug)]
pub struct SynthArgs {
    /// Output dataset directory (writes OUT/models and OUT/SPLIT/SCENE).
    #[arg(long)]
    pub out: PathBuf,
    /// Objects, comma-separated: built-in `box`, `cylinder`, or BOP object ids from --models.
    #[arg(long, value_delimiter = ',', default_value = "box,cylinder")]
    pub objects: Vec<ObjectSource>,
    /// BOP model folder (obj_XXXXXX.ply, mm) for numeric object ids.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Number of frames.
    #[arg(long, default_value_t = 50)]
    pub frames: usize,
    /// Motion profile.
    #[arg(long, value_enum, default_value_t = Motion::Slow)]
    pub motion: Motion,
    /// Random seed (trajectories, noise, background).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image width; the YCB-V intrinsics are scaled to it.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Image height; the YCB-V intrinsics are scaled to it.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Split directory name.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Scene id.
    #[arg(long, default_value_t = 1)]
    pub scene: u32,
    /// Occluder bar in front of the objects (default: only with --motion fast).
    #[arg(long)]
    pub occluder: Option<bool>,
    /// A static plate hiding the left FRACTION of object OBJ (its position in --objects, from 1)
    /// over image ids FIRST-LAST, 5 cm in front of it: `OBJ,FRACTION,FIRST-LAST`, e.g. `1,0.5,10-25`.
    #[arg(long)]
    pub hide: Option<String>,
    /// Ideal sensor: no depth noise, no holes, no RGB noise.
    #[arg(long)]
    pub clean: bool,
}

impl SynthArgs {
    /// The configuration these arguments describe.
    pub fn config(&self) -> Result<SynthConfig> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::param(
                "--width/--height",
                format!("{}x{}", self.width, self.height),
                "must be positive",
            ));
        }
        // A split is one folder name under --out: a path would write elsewhere (`/abs`).
        let plain = std::path::Path::new(&self.split).components().count() == 1;
        if !plain || matches!(self.split.as_str(), "" | "." | "..") || self.split.contains('/') {
            let why = "must be one folder name under --out, e.g. test";
            return Err(Error::param("split", &self.split, why));
        }
        Ok(SynthConfig {
            objects: self.objects.clone(),
            models_dir: self.models.clone(),
            frames: self.frames,
            motion: self.motion,
            seed: self.seed,
            camera: ycbv_camera(self.width, self.height),
            noise: if self.clean {
                SensorNoise::none()
            } else {
                SensorNoise::default()
            },
            occluder: self.occluder,
            hide: self.hide.as_deref().map(str::parse).transpose()?,
            split: self.split.clone(),
            scene_id: self.scene,
            ..SynthConfig::new(&self.out)
        })
    }
}

/// Runs `hdpf dataset synth`: writes the sequence with a progress bar, then prints the summary.
pub fn run(args: &SynthArgs) -> Result<()> {
    let cfg = args.config()?;
    let bar = indicatif::ProgressBar::new(cfg.frames as u64);
    let style = indicatif::ProgressStyle::with_template(
        "synth {bar:40} {pos}/{len} frames [{elapsed_precise} < {eta}]",
    );
    bar.set_style(style.unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    let summary = generate_with_progress(&cfg, &|| bar.inc(1));
    bar.finish_and_clear();
    crate::outln!("{}", summary?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_arguments() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            synth: SynthArgs,
        }
        let parse = |args: &[&str]| <Cli as clap::Parser>::try_parse_from(args).map(|c| c.synth);
        let a = parse(&[
            "synth",
            "--out",
            "/tmp/x",
            "--objects",
            "box,3",
            "--models",
            "/m",
            "--frames",
            "7",
        ])
        .unwrap();
        let a = SynthArgs {
            motion: Motion::Fast,
            ..a
        };
        let cfg = a.config().unwrap();
        assert_eq!(cfg.objects, vec![ObjectSource::Box, ObjectSource::Model(3)]);
        assert_eq!(
            (cfg.frames, cfg.camera.width, cfg.split.as_str()),
            (7, 640, "test")
        );
        assert!(cfg.occluder_enabled());
        let b = parse(&[
            "synth",
            "--out",
            "o",
            "--motion",
            "fast",
            "--occluder",
            "false",
            "--width",
            "160",
            "--height",
            "120",
            "--clean",
        ])
        .unwrap();
        let cfg = b.config().unwrap();
        assert!(!cfg.occluder_enabled() && cfg.noise == SensorNoise::none());
        assert!((cfg.camera.fx - 1066.778 / 4.0).abs() < 1e-9);
        assert!(parse(&["synth", "--out", "o", "--objects", "sphere"]).is_err());
        assert!(parse(&["synth", "--out", "o", "--motion", "medium"]).is_err());
    }
}
