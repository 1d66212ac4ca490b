//! Scene and model JSON files (`scene_camera.json`, `scene_gt.json`, `scene_gt_info.json`,
//! `models_info.json`, `camera.json`): every read error names the file and the field; poses in
//! mm on disk, metres here.

use super::*;

/// Reads and parses a JSON file.
pub(super) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(path, json_error(&text, &e)))
}

/// A JSON syntax error with the text where it stands, and a hint for the non-numbers (`NaN`,
/// `Infinity`) that some writers emit but JSON does not have.
pub(super) fn json_error(text: &str, e: &serde_json::Error) -> String {
    let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
    let start = line
        .char_indices()
        .nth(e.column().saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    let near: String = line[start..].chars().take(12).collect();
    let word = near.trim_start_matches('-');
    let hint = if ["NaN", "nan", "Infinity", "inf"]
        .iter()
        .any(|w| word.starts_with(w))
    {
        ": JSON has no NaN or infinity; a finite number is needed here"
    } else {
        ""
    };
    format!("invalid JSON: {e}, at '{}'{hint}", near.trim_end())
}

/// `v` as an object, or an error naming `what`.
pub(super) fn as_object<'a>(
    path: &Path,
    v: &'a Value,
    what: &str,
) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Error::format(path, format!("{what}: expected a JSON object")))
}

/// A JSON object key that is an id (`"12"`).
pub(super) fn parse_id(path: &Path, key: &str, what: &str) -> Result<u32> {
    key.parse().map_err(|_| {
        Error::format(
            path,
            format!("{what}: key '{key}' is not a non-negative integer id"),
        )
    })
}

/// Field `key` of `obj` as a number.
pub(super) fn get_f64(path: &Path, obj: &Map<String, Value>, key: &str, what: &str) -> Result<f64> {
    obj.get(key)
        .ok_or_else(|| Error::format(path, format!("{what}: missing field '{key}'")))?
        .as_f64()
        .ok_or_else(|| Error::format(path, format!("{what}: field '{key}' is not a number")))
}

/// Field `key` of `obj` as an array of exactly `N` numbers.
pub(super) fn get_array<const N: usize>(
    path: &Path,
    obj: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<[f64; N]> {
    let bad = || {
        Error::format(
            path,
            format!("{what}: field '{key}' must be an array of {N} numbers"),
        )
    };
    let arr = obj
        .get(key)
        .ok_or_else(|| Error::format(path, format!("{what}: missing field '{key}'")))?
        .as_array()
        .filter(|a| a.len() == N)
        .ok_or_else(bad)?;
    let mut out = [0.0; N];
    for (o, v) in out.iter_mut().zip(arr) {
        *o = v.as_f64().filter(|x| x.is_finite()).ok_or_else(bad)?;
    }
    Ok(out)
}

/// A rotation from a row-major 3×3 matrix that is orthonormal (within 10⁻³) with determinant +1.
pub fn rotation_from_row_major(r: &[f64; 9]) -> Option<UnitQuaternion<f64>> {
    let m = Matrix3::from_row_slice(r);
    let ok =
        (m.transpose() * m - Matrix3::identity()).norm() < ROTATION_TOL && m.determinant() > 0.0;
    ok.then(|| UnitQuaternion::from_matrix(&m))
}

/// The row-major 3×3 matrix of a rotation.
pub fn rotation_to_row_major(q: &UnitQuaternion<f64>) -> [f64; 9] {
    let m = q.to_rotation_matrix().into_inner();
    std::array::from_fn(|i| m[(i / 3, i % 3)])
}

/// A pose from BOP's `R` (row-major 9) and `t` (mm) fields of `obj`.
pub(super) fn get_pose(
    path: &Path,
    obj: &Map<String, Value>,
    r_key: &str,
    t_key: &str,
    what: &str,
) -> Result<Isometry3<f64>> {
    let r = get_array::<9>(path, obj, r_key, what)?;
    let t = get_array::<3>(path, obj, t_key, what)?;
    let q = rotation_from_row_major(&r).ok_or_else(|| {
        Error::format(
            path,
            format!("{what}: field '{r_key}' is not a rotation matrix"),
        )
    })?;
    Ok(Isometry3::from_parts(
        Translation3::new(t[0] * MM, t[1] * MM, t[2] * MM),
        q,
    ))
}

/// Writes `{"id": value, ...}` with one id per line, as BOP files are.
pub(super) fn write_id_map(path: &Path, entries: impl Iterator<Item = (u32, Value)>) -> Result<()> {
    let lines: Vec<String> = entries.map(|(id, v)| format!("  \"{id}\": {v}")).collect();
    let text = format!("{{\n{}\n}}\n", lines.join(",\n"));
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

// ---------------------------------------------------------------------------------------------
// scene_camera.json, scene_gt.json

/// Parsed `scene_camera.json`: cameras and the optional world-to-camera poses.
pub(super) type SceneCameras = (BTreeMap<u32, FrameCamera>, BTreeMap<u32, Isometry3<f64>>);

/// Parses `scene_camera.json` for images of `width × height` pixels (BOP stores no image size).
pub(super) fn parse_scene_camera(path: &Path, width: u32, height: u32) -> Result<SceneCameras> {
    let json = read_json(path)?;
    let (mut cams, mut w2c) = (BTreeMap::new(), BTreeMap::new());
    for (key, v) in as_object(path, &json, "top level")? {
        let id = parse_id(path, key, "top level")?;
        let what = format!("image {key}");
        let obj = as_object(path, v, &what)?;
        let k = get_array::<9>(path, obj, "cam_K", &what)?;
        let camera = Camera::from_k(&k, width, height)
            .map_err(|e| Error::format(path, format!("{what}: {e}")))?;
        let depth_scale = get_f64(path, obj, "depth_scale", &what)?;
        if !(depth_scale.is_finite() && depth_scale > 0.0) {
            return Err(Error::format(
                path,
                format!("{what}: field 'depth_scale' = {depth_scale} must be positive"),
            ));
        }
        cams.insert(
            id,
            FrameCamera {
                camera,
                depth_scale,
            },
        );
        if obj.contains_key("cam_R_w2c") {
            w2c.insert(id, get_pose(path, obj, "cam_R_w2c", "cam_t_w2c", &what)?);
        }
    }
    Ok((cams, w2c))
}

/// Reads `scene_camera.json` (`cam_K`, `depth_scale` per image id); BOP stores no image size, so
/// it is given.
pub fn read_scene_camera(
    path: impl AsRef<Path>,
    width: u32,
    height: u32,
) -> Result<BTreeMap<u32, FrameCamera>> {
    parse_scene_camera(path.as_ref(), width, height).map(|(cams, _)| cams)
}

/// Writes `scene_camera.json` (`cam_K` row-major, `depth_scale`), readable by [`read_scene_camera`].
pub fn write_scene_camera(
    path: impl AsRef<Path>,
    cameras: &BTreeMap<u32, FrameCamera>,
) -> Result<()> {
    write_id_map(
        path.as_ref(),
        cameras.iter().map(|(&id, c)| {
            (
                id,
                serde_json::json!({"cam_K": c.camera.k_row_major(), "depth_scale": c.depth_scale}),
            )
        }),
    )
}

/// Reads a per-image file of entry lists (`scene_gt.json`, `scene_gt_info.json`): per image id,
/// `entry(obj, what)` of each entry object, `what` naming the image and entry for errors;
/// `entries` names the lists (`GT poses`).
fn read_per_image<T>(
    path: &Path,
    entries: &str,
    entry: impl Fn(&Map<String, Value>, &str) -> Result<T>,
) -> Result<BTreeMap<u32, Vec<T>>> {
    let json = read_json(path)?;
    let mut out = BTreeMap::new();
    for (key, v) in as_object(path, &json, "top level")? {
        let id = parse_id(path, key, "top level")?;
        let list = v.as_array().ok_or_else(|| {
            Error::format(path, format!("image {key}: expected a list of {entries}"))
        })?;
        let items = (list.iter().enumerate())
            .map(|(i, e)| {
                let what = format!("image {key}, entry {i}");
                entry(as_object(path, e, &what)?, &what)
            })
            .collect::<Result<Vec<_>>>()?;
        out.insert(id, items);
    }
    Ok(out)
}

/// Reads `scene_gt.json`: per image id, the list of `{obj_id, cam_R_m2c, cam_t_m2c (mm)}`.
pub fn read_scene_gt(path: impl AsRef<Path>) -> Result<BTreeMap<u32, Vec<GtPose>>> {
    let path = path.as_ref();
    read_per_image(path, "GT poses", |obj, what| {
        let obj_id = obj
            .get("obj_id")
            .and_then(Value::as_u64)
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| {
                Error::format(path, format!("{what}: field 'obj_id' missing or not an id"))
            })?;
        let pose = get_pose(path, obj, "cam_R_m2c", "cam_t_m2c", what)?;
        Ok(GtPose { obj_id, pose })
    })
}

/// Reads `scene_gt_info.json`: per image id, the visible fraction (`visib_fract`, in `[0, 1]`) of
/// each GT instance, in the order of `scene_gt.json`.
pub fn read_scene_visibility(path: impl AsRef<Path>) -> Result<BTreeMap<u32, Vec<f64>>> {
    let path = path.as_ref();
    read_per_image(path, "GT infos", |obj, what| {
        let f = get_f64(path, obj, "visib_fract", what)?;
        match (0.0..=1.0).contains(&f) {
            true => Ok(f),
            false => Err(Error::format(
                path,
                format!("{what}: visib_fract {f} is not a fraction in [0, 1]"),
            )),
        }
    })
}

/// Writes `scene_gt.json` (translations in mm), readable by [`read_scene_gt`].
pub fn write_scene_gt(path: impl AsRef<Path>, gt: &BTreeMap<u32, Vec<GtPose>>) -> Result<()> {
    let entry = |g: &GtPose| {
        let t = g.pose.translation.vector / MM;
        serde_json::json!({
            "cam_R_m2c": rotation_to_row_major(&g.pose.rotation),
            "cam_t_m2c": [t.x, t.y, t.z],
            "obj_id": g.obj_id,
        })
    };
    write_id_map(
        path.as_ref(),
        gt.iter()
            .map(|(&id, list)| (id, Value::Array(list.iter().map(entry).collect()))),
    )
}

/// Writes `models/models_info.json` (lengths in mm, symmetries as BOP stores them), readable by
/// [`BopDataset::models_info`].
pub fn write_models_info(path: impl AsRef<Path>, info: &BTreeMap<u32, ModelInfo>) -> Result<()> {
    let mm = |v: &Vector3<f64>| [v.x / MM, v.y / MM, v.z / MM];
    let entry = |m: &ModelInfo| {
        let (min, size) = (mm(&m.min), mm(&m.size));
        let mut v = serde_json::json!({
            "diameter": m.diameter / MM,
            "min_x": min[0], "min_y": min[1], "min_z": min[2],
            "size_x": size[0], "size_y": size[1], "size_z": size[2],
        });
        if !m.symmetries_discrete.is_empty() {
            let sym = |t: &Isometry3<f64>| -> Vec<f64> {
                let mut h = t.to_homogeneous();
                h.fixed_view_mut::<3, 1>(0, 3).unscale_mut(MM);
                (0..16).map(|i| h[(i / 4, i % 4)]).collect()
            };
            v["symmetries_discrete"] = m.symmetries_discrete.iter().map(sym).collect();
        }
        if !m.symmetries_continuous.is_empty() {
            v["symmetries_continuous"] = m
                .symmetries_continuous
                .iter()
                .map(|c| serde_json::json!({"axis": [c.axis.x, c.axis.y, c.axis.z], "offset": mm(&c.offset.coords)}))
                .collect();
        }
        v
    };
    write_id_map(path.as_ref(), info.iter().map(|(&id, m)| (id, entry(m))))
}

/// Writes BOP's root `camera.json` (`fx, fy, cx, cy, width, height, depth_scale`).
pub fn write_camera_json(path: impl AsRef<Path>, camera: &Camera, depth_scale: f64) -> Result<()> {
    let path = path.as_ref();
    let v = serde_json::json!({
        "cx": camera.cx, "cy": camera.cy, "depth_scale": depth_scale, "fx": camera.fx, "fy": camera.fy,
        "height": camera.height, "width": camera.width,
    });
    std::fs::write(path, format!("{v:#}\n")).map_err(|e| Error::io(path, e))
}

/// Reads the `(width, height)` of BOP's root `camera.json`.
pub(super) fn read_camera_json_size(path: &Path) -> Result<(u32, u32)> {
    let json = read_json(path)?;
    let obj = as_object(path, &json, "top level")?;
    let size = |key| {
        obj.get(key)
            .and_then(Value::as_u64)
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| {
                Error::format(path, format!("field '{key}' missing or not a pixel count"))
            })
    };
    Ok((size("width")?, size("height")?))
}
