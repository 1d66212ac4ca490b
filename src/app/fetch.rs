//! `hdpf dataset fetch NAME [--dest DIR]`: downloads a dataset's official archives, resumes an
//! interrupted download (HTTP `Range`), verifies a checksum and unpacks into the BOP layout.
//!
//! - Archives land in `DEST/downloads/` (`X.zip.part` while downloading, `X.zip` when complete),
//!   then unpack into `DEST/<name>/` as the dataset's instructions say (`unzip X -d …`).
//! - Checksum: SHA-256. Where the publisher gives one, [`Archive::sha256`] holds it and a mismatch is
//!   refused. Otherwise the digest of the first complete download is recorded in `X.zip.sha256`
//!   beside the archive, and every later run (re-verification, re-download) must match it.
//! - `DEST` defaults to the shared datasets folder ([`crate::core::datasets::shared_root`]:
//!   `$HDPF_DATASETS` or `../shared/datasets`). Third-party data never enters the repository.
//! - The cards in `datasets/` say what each dataset is, its licence and its size.

use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// BOP's archives on the Hugging Face hub (the download links of bop.felk.cvut.cz/datasets).
pub const BOP_HOST: &str = "https://huggingface.co/datasets/bop-benchmark";

/// `hdpf dataset fetch`.
#[derive(clap::Args, Debug, Clone)]
pub struct FetchArgs {
    /// Dataset: ycbv, lmo, tless (BOP); `hdpf dataset fetch list` lists them.
    pub name: String,
    /// Folder holding the datasets (default: $HDPF_DATASETS or ../shared/datasets).
    #[arg(long)]
    pub dest: Option<PathBuf>,
    /// Only these parts (comma-separated: base, models, test).
    #[arg(long, value_delimiter = ',')]
    pub parts: Option<Vec<String>>,
    /// Replace the publisher's host in every URL (a mirror).
    #[arg(long)]
    pub base_url: Option<String>,
}

/// One archive of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    /// Part name (`base`, `models`, `test`).
    pub part: String,
    /// File name (`ycbv_models.zip`).
    pub file: String,
    /// Download URL.
    pub url: String,
    /// Published SHA-256 (lower-case hex), if the publisher gives one.
    pub sha256: Option<String>,
    /// Folder below DEST to unpack into (`""` = DEST itself).
    pub unpack_into: String,
}

/// A dataset hdpf can fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Name (`ycbv`).
    pub name: String,
    /// Its archives.
    pub archives: Vec<Archive>,
}

/// The BOP datasets hdpf knows: name and test archive (T-LESS's test images are the Primesense ones).
const BOP: [(&str, &str); 3] = [
    ("ycbv", "ycbv_test_bop19.zip"),
    ("lmo", "lmo_test_bop19.zip"),
    ("tless", "tless_test_primesense_bop19.zip"),
];

/// The dataset `name` with its archives at `host` (the publisher's, or a mirror).
pub fn catalogue(name: &str, host: &str) -> Result<Dataset> {
    let host = host.trim_end_matches('/');
    let Some((_, test)) = BOP.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = BOP.iter().map(|(n, _)| *n).collect();
        let why = match name {
            "ycbv-mini" => "assembled from a YCB-Video excerpt, not an official archive: see datasets/ycbv-mini.md".to_string(),
            "digits" => "ships inside scikit-learn: see datasets/digits.md".to_string(),
            _ => format!("fetchable datasets: {}", known.join(", ")),
        };
        return Err(Error::param("dataset", name, why));
    };
    let archive = |part: &str, file: String, into: &str| Archive {
        part: part.into(),
        url: format!("{host}/{name}/resolve/main/{file}"),
        file,
        sha256: None,
        unpack_into: into.into(),
    };
    Ok(Dataset {
        name: name.into(),
        archives: vec![
            // base.zip holds the `<name>/` folder itself; the others unpack into it (BOP's instructions).
            archive("base", format!("{name}_base.zip"), ""),
            archive("models", format!("{name}_models.zip"), name),
            archive("test", test.to_string(), name),
        ],
    })
}

/// Runs `hdpf dataset fetch`.
pub fn run(args: &FetchArgs) -> Result<PathBuf> {
    if args.name == "list" {
        for (n, _) in BOP {
            crate::outln!(
                "{n}: {}",
                catalogue(n, BOP_HOST)?
                    .archives
                    .iter()
                    .map(|a| a.file.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        return Ok(PathBuf::new());
    }
    let mut ds = catalogue(&args.name, args.base_url.as_deref().unwrap_or(BOP_HOST))?;
    if let Some(parts) = &args.parts {
        for p in parts {
            if !ds.archives.iter().any(|a| &a.part == p) {
                return Err(Error::param("--parts", p, "not one of base, models, test"));
            }
        }
        ds.archives.retain(|a| parts.contains(&a.part));
    }
    let dest = args
        .dest
        .clone()
        .unwrap_or_else(crate::core::datasets::shared_root);
    fetch(&ds.archives, &dest, true)?;
    let out = dest.join(&ds.name);
    crate::outln!("fetched {} into {}", ds.name, out.display());
    Ok(out)
}

/// Downloads (resuming), verifies and unpacks `archives` into `dest`.
pub fn fetch(archives: &[Archive], dest: &Path, progress: bool) -> Result<()> {
    let downloads = dest.join("downloads");
    std::fs::create_dir_all(&downloads).map_err(|e| Error::io(&downloads, e))?;
    for a in archives {
        let file = downloads.join(&a.file);
        let marker = downloads.join(format!("{}.unpacked", a.file));
        if !file.exists() {
            download(&a.url, &file, progress)?;
        }
        verify(&file, a.sha256.as_deref())?;
        if marker.exists() {
            continue;
        }
        let into = dest.join(&a.unpack_into);
        unpack(&file, &into)?;
        std::fs::write(&marker, "").map_err(|e| Error::io(&marker, e))?;
    }
    Ok(())
}

/// An agent without timeouts on the body (archives are GBs), no proxy for loopback addresses.
fn agent(url: &str) -> ureq::Agent {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)));
    if loopback {
        cfg = cfg.proxy(None);
    }
    cfg.build().into()
}

/// Downloads `url` to `file` through `file.part`, resuming a partial download with `Range`.
pub fn download(url: &str, file: &Path, progress: bool) -> Result<()> {
    let part = PathBuf::from(format!("{}.part", file.display()));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let net = |e: ureq::Error| Error::Other(format!("download {url}: {e}"));
    let mut req = agent(url).get(url).header("Accept-Encoding", "identity");
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let mut resp = req.call().map_err(net)?;
    let status = resp.status().as_u16();
    let (append, total) = match status {
        // The partial file is already whole.
        416 if have > 0 => return finish_part(&part, file),
        206 => (true, content_length(&resp).map(|n| n + have)),
        200 => (false, content_length(&resp)),
        s => return Err(Error::Other(format!("download {url}: HTTP status {s}"))),
    };
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&part)
        .map_err(|e| Error::io(&part, e))?;
    let bar = if progress {
        ProgressBar::new(total.unwrap_or(0))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar.set_position(if append { have } else { 0 });
    let mut body = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = if append { have } else { 0 };
    loop {
        let n = body.read(&mut buf).map_err(|e| {
            Error::Other(format!(
                "download {url} interrupted after {got} bytes ({e}); run again to resume from {}",
                part.display()
            ))
        })?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
        got += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    out.flush().map_err(|e| Error::io(&part, e))?;
    if let Some(t) = total.filter(|&t| t != got) {
        return Err(Error::Other(format!(
            "download {url} ended after {got} of {t} bytes; run again to resume from {}",
            part.display()
        )));
    }
    finish_part(&part, file)
}

/// The response's `Content-Length`, if given.
fn content_length(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    resp.headers()
        .get("content-length")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Renames the finished `.part` file to its final name.
fn finish_part(part: &Path, file: &Path) -> Result<()> {
    std::fs::rename(part, file).map_err(|e| Error::io(file, e))
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks `file` against the published digest, or against the one recorded at its first download
/// (`file.sha256`, written now if absent). A mismatching archive is renamed `*.corrupt`.
pub fn verify(file: &Path, published: Option<&str>) -> Result<String> {
    let got = sha256_file(file)?;
    let record = PathBuf::from(format!("{}.sha256", file.display()));
    let (want, source) = match published {
        Some(p) => (Some(p.to_ascii_lowercase()), "published".to_string()),
        None => match std::fs::read_to_string(&record) {
            Ok(s) => (
                s.split_whitespace().next().map(str::to_string),
                format!("recorded at the first download in {}", record.display()),
            ),
            Err(_) => (None, String::new()),
        },
    };
    match want {
        Some(w) if w != got => {
            let bad = PathBuf::from(format!("{}.corrupt", file.display()));
            let _ = std::fs::rename(file, &bad);
            Err(Error::format(
                file,
                format!(
                    "SHA-256 mismatch: got {got}, expected {w} ({source}); the archive was moved to {}",
                    bad.display()
                ),
            ))
        }
        Some(_) => Ok(got),
        None => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::write(&record, format!("{got}  {name}\n"))
                .map_err(|e| Error::io(&record, e))?;
            Ok(got)
        }
    }
}

/// Unpacks a zip archive (stored or deflate entries) into `into`, refusing entries that would
/// escape it.
pub fn unpack(file: &Path, into: &Path) -> Result<()> {
    let f = File::open(file).map_err(|e| Error::io(file, e))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| Error::format(file, format!("not a readable zip archive: {e}")))?;
    std::fs::create_dir_all(into).map_err(|e| Error::io(into, e))?;
    zip.extract(into)
        .map_err(|e| Error::format(file, format!("cannot unpack into {}: {e}", into.display())))
}
