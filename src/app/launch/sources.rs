//! `[source]`: the source kinds, their table, their checks and how each is opened (frames,
//! meshes and the ground-truth timeline).

use super::*;

/// Kind of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Recorded BOP scenes.
    Bop,
    /// A BOP scene directory still being written.
    Dir,
    /// A synthetic sequence rendered live in memory (`[source.synth]`).
    Synth,
}

/// `[source]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `bop` or `dir`.
    pub kind: SourceKind,
    /// Dataset root (`bop`), also where meshes come from (`models/`).
    pub dataset: Option<PathBuf>,
    /// Scenes as `"split/scene_id"` (`bop`), e.g. `["test/49"]`.
    #[serde(default)]
    pub scenes: Vec<Spanned<String>>,
    /// Scene directory to watch (`dir`).
    pub path: Option<PathBuf>,
    /// Scene id reported for `dir` frames.
    #[serde(default)]
    pub scene_id: u32,
    /// `dir`: end after this many seconds without a new frame.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: f64,
    /// At most this many frames per scene.
    pub max_frames: Option<usize>,
    /// Render a synthetic sequence into `dataset` first if it does not exist.
    pub synth: Option<SynthSpec>,
}

pub(super) fn default_idle() -> f64 {
    5.0
}

impl Launch {
    pub(super) fn validate_source(&self, s: &SourceSpec) -> Result<()> {
        for sc in &s.scenes {
            parse_scene(sc.get_ref()).map_err(|why| self.error_at(sc, why))?;
        }
        let missing = |k: &str| {
            Error::format(
                &self.path,
                format!("[source] kind = {:?} needs `{k}`", s.kind),
            )
        };
        match s.kind {
            SourceKind::Bop if s.dataset.is_none() => Err(missing("dataset")),
            SourceKind::Bop if s.scenes.is_empty() && s.synth.is_none() => Err(missing("scenes")),
            SourceKind::Dir if s.path.is_none() => Err(missing("path")),
            SourceKind::Synth if s.synth.is_none() => Err(missing("a [source.synth] table")),
            _ => match &s.synth {
                Some(spec) => synth_config(Path::new("."), spec, 0).map(drop),
                None => Ok(()),
            },
        }
    }
}

/// Render the synthetic sequence of `[source.synth]` if the dataset does not exist yet.
pub(super) fn prepare_dataset(launch: &Launch, spec: &SourceSpec) -> Result<()> {
    let (Some(synth), Some(root), SourceKind::Bop) = (&spec.synth, &spec.dataset, spec.kind) else {
        return Ok(());
    };
    if root.exists() {
        return Ok(());
    }
    crate::runtime::pipeline::synthetic::render_dataset(root, synth, launch.file.seed)
}

pub(super) type Opened = (Box<dyn Source>, MeshLibrary, GtTimeline);

pub(super) fn open_source(launch: &Launch, spec: &SourceSpec) -> Result<Opened> {
    let rate = *launch.file.pipeline.rate_hz.get_ref();
    match spec.kind {
        SourceKind::Bop => {
            let root = spec.dataset.clone().unwrap_or_default();
            let scenes = scene_list(spec, &root)?;
            let src =
                crate::runtime::pipeline::SequenceSource::open(&root, &scenes, spec.max_frames)?;
            let ds = BopDataset::open(&root)?;
            let timeline = GtTimeline::from_scenes(&ds, &scenes, spec.max_frames, rate)?;
            let meshes = load_meshes(&ds, &timeline.object_ids())?;
            Ok((Box::new(src), meshes, timeline))
        }
        SourceKind::Synth => {
            let spec = spec
                .synth
                .as_ref()
                .ok_or_else(|| Error::format(&launch.path, "no [source.synth]"))?;
            let root = spec_root(spec);
            let src = SynthSource::new(&synth_config(&root, spec, launch.file.seed)?)?;
            let frames = src
                .ground_truth()
                .into_iter()
                .map(|gt| gt.into_iter().map(|g| (g.obj_id, g.pose)).collect())
                .collect();
            let meshes = src.meshes();
            Ok((Box::new(src), meshes, GtTimeline::new(rate, frames)))
        }
        SourceKind::Dir => {
            let dir = spec.path.clone().unwrap_or_default();
            let idle = std::time::Duration::from_secs_f64(spec.idle_timeout_s.max(0.0));
            let src = crate::runtime::pipeline::DirectorySource::new(dir, spec.scene_id, idle);
            let meshes = match &spec.dataset {
                Some(root) => load_all_meshes(&BopDataset::open(root)?)?,
                None => MeshLibrary::new(),
            };
            Ok((Box::new(src), meshes, GtTimeline::default()))
        }
    }
}

/// Where a live synthetic source would write (it writes nothing).
pub(super) fn spec_root(_spec: &SynthSpec) -> PathBuf {
    std::env::temp_dir().join("hdpf-synth-live")
}

/// The scenes of `[source]`, or every scene of a rendered synthetic dataset.
pub(super) fn scene_list(spec: &SourceSpec, root: &Path) -> Result<Vec<(String, u32)>> {
    if !spec.scenes.is_empty() {
        return spec
            .scenes
            .iter()
            .map(|s| parse_scene(s.get_ref()).map_err(Error::Other))
            .collect();
    }
    crate::runtime::pipeline::synthetic::scenes_of(root)
}

pub(super) fn load_meshes(ds: &BopDataset, ids: &[u32]) -> Result<MeshLibrary> {
    ids.iter()
        .map(|&id| Ok((id, Arc::new(ds.model(id)?))))
        .collect()
}

pub(super) fn load_all_meshes(ds: &BopDataset) -> Result<MeshLibrary> {
    let ids: Vec<u32> = ds.models_info()?.keys().copied().collect();
    load_meshes(ds, &ids)
}
