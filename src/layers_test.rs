//! The layering rule, checked: every `crate::` path of every file under `src/` (in `use` lines,
//! grouped `use crate::{a, b}` and inline paths) may only point to its own layer or one below:
//! `core` < `domains` < `runtime` < `app` (`main.rs` is `app`).

use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: [&str; 4] = ["core", "domains", "runtime", "app"];

/// The layer of a source file (relative to `src/`), or `None` for the crate root.
fn file_layer(rel: &str) -> Option<usize> {
    if rel == "main.rs" {
        return Some(3);
    }
    let top = rel.split('/').next()?;
    LAYERS.iter().position(|l| *l == top)
}

/// The layer a `crate::` path points into (`crate::Error` / `crate::Result` are core's).
fn path_layer(path: &str) -> Option<usize> {
    let first = path.split("::").next()?.trim();
    match first {
        "Error" | "Result" => Some(0),
        _ => LAYERS.iter().position(|l| *l == first),
    }
}

/// `text` with `//` comments blanked out (line numbers kept).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::` path of `text` with its 1-based line; a group `crate::{a, b::c}` gives
/// `a` and `b::c`, each on its own line.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = strip_comments(text);
    let line_of = |i: usize| code[..i].matches('\n').count() + 1;
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = group_body(group);
            let mut at = i + "crate::{".len();
            for item in split_top_level(body) {
                let lead = item.len() - item.trim_start().len();
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| is_path_char(*c))
                    .collect();
                if !name.is_empty() {
                    out.push((line_of(at + lead), name));
                }
                at += item.len() + 1;
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_path_char(*c)).collect();
            out.push((line_of(i), name));
        }
    }
    out
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == ':'
}

/// The text of a `{…}` group up to its matching `}` (the opening brace already consumed).
fn group_body(s: &str) -> &str {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    s
}

/// `s` split at the commas outside nested braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The violations of file `rel` (relative to `src/`) with contents `text`:
/// `file:line: crate::path (layer → higher layer)`.
fn violations(rel: &str, text: &str) -> Vec<String> {
    let Some(own) = file_layer(rel) else {
        return Vec::new();
    };
    crate_paths(text)
        .into_iter()
        .filter_map(|(line, path)| {
            let to = path_layer(&path)?;
            (to > own).then(|| {
                format!(
                    "{rel}:{line}: crate::{path} runs up from {} to {}",
                    LAYERS[own], LAYERS[to]
                )
            })
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let bad: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let rel = f
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            violations(&rel, &std::fs::read_to_string(f).unwrap())
        })
        .collect();
    assert!(
        bad.is_empty(),
        "imports that run up a layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_finds_upward_paths_in_every_form() {
    let text = "use crate::core::error::Result;\n\
                use crate::{\n    core::stats,\n    app::plot::LinePlot,\n};\n\
                // crate::app::viz in a comment is fine\n\
                fn f() { crate::runtime::pipeline::install_ctrlc(); }\n";
    let bad = violations("domains/pose/x.rs", text);
    assert_eq!(
        bad,
        [
            "domains/pose/x.rs:4: crate::app::plot::LinePlot runs up from domains to app",
            "domains/pose/x.rs:7: crate::runtime::pipeline::install_ctrlc runs up from domains to runtime",
        ]
    );
    assert!(violations("app/x.rs", text).is_empty());
    assert_eq!(
        violations("core/x.rs", "use crate::{Error, domains::pose};").len(),
        1
    );
    assert!(violations("lib.rs", "use crate::app::x;").is_empty());
}
