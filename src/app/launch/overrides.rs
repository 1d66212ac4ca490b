//! `--set key=value` overrides applied to the launch text (layout and line numbers kept), and
//! error locations: `FILE: line N, key a.b: message`.

use super::*;

/// Apply `key=value` overrides to the document, keeping its layout (and so its line numbers).
pub(super) fn apply_overrides(path: &Path, text: &str, overrides: &[String]) -> Result<String> {
    if overrides.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let at = e.span().map(|s| s.start);
        located(path, text, at, &[], e.message())
    })?;
    for o in overrides {
        let (key, value) = o
            .split_once('=')
            .ok_or_else(|| Error::param("--set", o, "expected KEY=VALUE"))?;
        let value: toml_edit::Value = value
            .trim()
            .parse()
            .unwrap_or_else(|_| toml_edit::Value::from(value.trim()));
        set_key(&mut doc, key.trim(), value).map_err(|why| Error::param("--set", o, why))?;
    }
    Ok(doc.to_string())
}

pub(super) fn set_key(
    doc: &mut toml_edit::DocumentMut,
    key: &str,
    value: toml_edit::Value,
) -> std::result::Result<(), String> {
    let key = normalize_key(key);
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or("empty key")?;
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    let mut i = 0;
    while i < path.len() {
        let p = path[i];
        if !table.contains_key(p) {
            table.insert(p, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        let item = table.get_mut(p).ok_or_else(|| format!("`{p}` missing"))?;
        if let toml_edit::Item::ArrayOfTables(a) = item {
            let idx: usize = path
                .get(i + 1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    format!("`{p}` is an array of tables: give an index, e.g. {p}.0.KEY")
                })?;
            let len = a.len();
            table = a
                .get_mut(idx)
                .ok_or_else(|| format!("`{p}` has {len} entries, no index {idx}"))?;
            i += 2;
        } else {
            table = item
                .as_table_like_mut()
                .ok_or_else(|| format!("`{p}` is not a table"))?;
            i += 1;
        }
    }
    table.insert(last, toml_edit::Item::Value(value));
    Ok(())
}

/// An error at byte `at` of `text`: `FILE: line N, key a.b: msg`.
pub(super) fn located(
    path: &Path,
    text: &str,
    at: Option<usize>,
    overrides: &[String],
    msg: &str,
) -> Error {
    let Some(at) = at else {
        return Error::format(path, msg.trim());
    };
    let line = text[..at.min(text.len())].matches('\n').count() + 1;
    let key = key_at_line(text, line);
    let from_set = overrides
        .iter()
        .find(|o| o.split('=').next().map(normalize_key).as_deref() == Some(&normalize_key(&key)))
        .map(|o| format!(" (from --set {o})"))
        .unwrap_or_default();
    Error::format(
        path,
        format!("line {line}, key {key}{from_set}: {}", msg.trim()),
    )
}

/// `tracker[1].particles` and `tracker.1.particles` compare equal.
pub(super) fn normalize_key(k: &str) -> String {
    k.replace('[', ".").replace(']', "")
}

/// The dotted key defined on `line` (1-based): the enclosing `[table]` / `[[array]]` header plus
/// the key before `=` on that line (or the header itself).
pub fn key_at_line(text: &str, line: usize) -> String {
    let mut table = String::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (i, raw) in text.lines().enumerate().take(line) {
        let l = raw.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts
                .entry(name.clone())
                .and_modify(|c| *c += 1)
                .or_insert(0);
            table = format!("{name}[{n}]");
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        } else if i + 1 == line {
            if let Some((k, _)) = l.split_once('=') {
                let k = k.trim().trim_matches('"');
                return if table.is_empty() {
                    k.to_string()
                } else {
                    format!("{table}.{k}")
                };
            }
        }
    }
    if table.is_empty() {
        "(top level)".into()
    } else {
        table
    }
}
