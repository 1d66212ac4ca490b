//! The BOP19 results CSV (`scene_id,im_id,obj_id,score,R,t,time`): reading, writing and a
//! streaming [`ResultsWriter`].

use super::*;

/// The header line of a BOP19 results file.
pub const RESULTS_HEADER: &str = "scene_id,im_id,obj_id,score,R,t,time";

/// One CSV row of `r` (R row-major, t in mm, both space-separated).
pub(super) fn format_result(r: &PoseResult) -> String {
    let join = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(" ");
    let t = r.pose.translation.vector / MM;
    format!(
        "{},{},{},{},{},{},{}",
        r.scene_id,
        r.im_id,
        r.obj_id,
        r.score,
        join(&rotation_to_row_major(&r.pose.rotation)),
        join(t.as_slice()),
        r.time
    )
}

/// Parses one CSV row (1-based `line` for messages).
pub(super) fn parse_result(path: &Path, line: usize, text: &str) -> Result<PoseResult> {
    let err =
        |field: &str, msg: &str| Error::format(path, format!("line {line}, field {field}: {msg}"));
    let f: Vec<&str> = text.split(',').map(str::trim).collect();
    if f.len() != 7 {
        return Err(Error::format(
            path,
            format!(
                "line {line}: expected 7 comma-separated fields ({RESULTS_HEADER}), found {}",
                f.len()
            ),
        ));
    }
    let id = |i: usize, name: &str| f[i].parse::<u32>().map_err(|_| err(name, "not an id"));
    let num = |i: usize, name: &str| f[i].parse::<f64>().map_err(|_| err(name, "not a number"));
    let nums = |i: usize, name: &str, n: usize| -> Result<Vec<f64>> {
        let v: Vec<f64> = f[i]
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| err(name, "not a list of numbers"))?;
        if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
            return Err(err(name, &format!("{bad} is not a finite number")));
        }
        (v.len() == n)
            .then_some(v)
            .ok_or_else(|| err(name, &format!("expected {n} numbers, found {}", f[i])))
    };
    let r = nums(4, "R", 9)?;
    let t = nums(5, "t", 3)?;
    let r: [f64; 9] = std::array::from_fn(|i| r[i]);
    let q = rotation_from_row_major(&r).ok_or_else(|| err("R", "not a rotation matrix"))?;
    Ok(PoseResult {
        scene_id: id(0, "scene_id")?,
        im_id: id(1, "im_id")?,
        obj_id: id(2, "obj_id")?,
        score: num(3, "score")?,
        pose: Isometry3::from_parts(Translation3::new(t[0] * MM, t[1] * MM, t[2] * MM), q),
        time: num(6, "time")?,
    })
}

/// Reads a BOP19 results CSV (`scene_id,im_id,obj_id,score,R,t,time`; header optional).
pub fn read_results(path: impl AsRef<Path>) -> Result<Vec<PoseResult>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("scene_id"))
        .map(|(i, l)| parse_result(path, i + 1, l))
        .collect()
}

/// The largest pose difference between two results lists that name the same rows in the same
/// order: `(max ‖t_a − t_b‖ in metres, max ∠(R_a, R_b) in radians)`, or the first row whose
/// scene, image or object ids differ (or a length mismatch) as an error.
pub fn pose_difference(
    a: &[PoseResult],
    b: &[PoseResult],
) -> std::result::Result<(f64, f64), String> {
    if a.len() != b.len() {
        return Err(format!("{} rows against {}", a.len(), b.len()));
    }
    let mut worst = (0.0f64, 0.0f64);
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        let (ix, iy) = (
            (x.scene_id, x.im_id, x.obj_id),
            (y.scene_id, y.im_id, y.obj_id),
        );
        if ix != iy {
            return Err(format!(
                "row {k}: (scene, image, object) {ix:?} against {iy:?}"
            ));
        }
        let dt = (x.pose.translation.vector - y.pose.translation.vector).norm();
        worst = (
            worst.0.max(dt),
            worst.1.max(x.pose.rotation.angle_to(&y.pose.rotation)),
        );
    }
    Ok(worst)
}
/// Writes a BOP19 results CSV with its header (replacing the file).
pub fn write_results(path: impl AsRef<Path>, results: &[PoseResult]) -> Result<()> {
    let mut w = ResultsWriter::create(path)?;
    results.iter().try_for_each(|r| w.write(r))?;
    w.flush()
}

/// An incremental BOP19 results writer: one row per [`ResultsWriter::write`], flushed each time so
/// the file is complete whenever the process stops.
#[derive(Debug)]
pub struct ResultsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ResultsWriter {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: impl AsRef<Path>) -> Result<ResultsWriter> {
        Self::open(path.as_ref(), false)
    }

    /// Opens `path` for appending, writing the header only if the file is new or empty.
    pub fn append(path: impl AsRef<Path>) -> Result<ResultsWriter> {
        Self::open(path.as_ref(), true)
    }

    fn open(path: &Path, append: bool) -> Result<ResultsWriter> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let empty = file.metadata().map_err(|e| Error::io(path, e))?.len() == 0;
        let mut w = ResultsWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        };
        if empty {
            writeln!(w.out, "{RESULTS_HEADER}").map_err(|e| Error::io(path, e))?;
        }
        Ok(w)
    }

    /// Appends one row and flushes.
    pub fn write(&mut self, r: &PoseResult) -> Result<()> {
        writeln!(self.out, "{}", format_result(r)).map_err(|e| Error::io(&self.path, e))?;
        self.flush()
    }

    /// Flushes buffered rows to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}
