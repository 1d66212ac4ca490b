//! Object models of a synthetic scene: ids, meshes (primitives or a BOP model folder) and
//! the `models/` folder with `models_info.json` written beside the scene.

use super::writer::create_dir;
use super::*;

/// Object ids: model sources keep theirs; primitives take the smallest ids no model uses.
pub(super) fn assign_ids(sources: &[ObjectSource]) -> Vec<(ObjectSource, u32)> {
    let mut distinct: Vec<ObjectSource> = Vec::new();
    for s in sources {
        if !distinct.contains(s) {
            distinct.push(*s);
        }
    }
    let mut used: Vec<u32> = distinct
        .iter()
        .filter_map(|s| match s {
            ObjectSource::Model(id) => Some(*id),
            _ => None,
        })
        .collect();
    distinct
        .into_iter()
        .map(|s| match s {
            ObjectSource::Model(id) => (s, id),
            _ => {
                let id = (1..).find(|i| !used.contains(i)).unwrap_or(1);
                used.push(id);
                (s, id)
            }
        })
        .collect()
}

/// Meshes of the distinct sources, in metres.
pub(super) fn load_models(cfg: &SynthConfig) -> Result<Vec<(ObjectSource, u32, Mesh)>> {
    assign_ids(&cfg.objects)
        .into_iter()
        .map(|(src, id)| {
            let mesh = match src {
                ObjectSource::Box => Mesh::cuboid(0.10, 0.07, 0.05)?,
                ObjectSource::Cylinder => Mesh::cylinder(0.035, 0.11, 48)?,
                ObjectSource::Model(m) => Mesh::load_ply(model_path(cfg, m)?)?,
            };
            Ok((src, id, mesh))
        })
        .collect()
}

/// `models_dir/obj_XXXXXX.ply` (the folder as given, or under the datasets folder:
/// [`crate::core::datasets::resolve`]); an error when no model folder is configured.
pub(super) fn model_path(cfg: &SynthConfig, obj_id: u32) -> Result<PathBuf> {
    let dir = cfg.models_dir.as_ref().ok_or_else(|| {
        Error::param(
            "objects",
            obj_id,
            "numeric object ids need a model folder (--models DIR)",
        )
    })?;
    let dir = crate::core::datasets::resolve_dir(dir, "models folder")?;
    crate::domains::pose::bop::model_file(&dir, obj_id)
}

/// `models_info` entry of a mesh: bounding box, diameter and the symmetries of the primitives
/// (box: 180° about each axis; cylinder: continuous about z plus 180° about x).
pub(super) fn model_info(src: ObjectSource, mesh: &Mesh) -> ModelInfo {
    let (lo, hi) = mesh.bounding_box();
    let half_turn = |axis: Vector3<f64>| {
        Isometry3::from_parts(
            Translation3::identity(),
            UnitQuaternion::from_scaled_axis(axis * std::f64::consts::PI),
        )
    };
    let (symmetries_discrete, symmetries_continuous) = match src {
        ObjectSource::Box => (
            Vec::from([Vector3::x(), Vector3::y(), Vector3::z()].map(half_turn)),
            Vec::new(),
        ),
        ObjectSource::Cylinder => (
            vec![half_turn(Vector3::x())],
            vec![ContinuousSymmetry {
                axis: Vector3::z(),
                offset: nalgebra::Point3::origin(),
            }],
        ),
        ObjectSource::Model(_) => (Vec::new(), Vec::new()),
    };
    ModelInfo {
        diameter: mesh.diameter(),
        min: lo.coords,
        size: hi - lo,
        symmetries_discrete,
        symmetries_continuous,
    }
}

/// Source `models_info.json` entries when the model folder is a BOP `models/` directory.
pub(super) fn source_model_infos(cfg: &SynthConfig) -> BTreeMap<u32, ModelInfo> {
    let dir = cfg.models_dir.as_deref();
    let root = dir
        .filter(|d| d.file_name().is_some_and(|n| n == "models"))
        .and_then(Path::parent);
    let info = root
        .and_then(|r| BopDataset::open(r).ok())
        .and_then(|d| d.models_info().ok());
    info.unwrap_or_default()
}

/// Writes `models/obj_XXXXXX.ply` (primitives written in mm, model files copied) and
/// `models/models_info.json`.
pub(super) fn write_models(synth: &Synthesizer, dir: &Path) -> Result<()> {
    create_dir(dir)?;
    let source_info = source_model_infos(&synth.cfg);
    let mut infos = BTreeMap::new();
    for (src, id, mesh) in synth.models() {
        let path = dir.join(format!("obj_{id:06}.ply"));
        match src {
            ObjectSource::Model(m) => {
                let from = model_path(&synth.cfg, m)?;
                std::fs::copy(&from, &path).map_err(|e| Error::io(&from, e))?;
            }
            _ => mesh.write_ply(&path)?,
        }
        let info = source_info
            .get(&id)
            .cloned()
            .unwrap_or_else(|| model_info(src, mesh));
        infos.insert(id, info);
    }
    bop::write_models_info(dir.join("models_info.json"), &infos)
}
