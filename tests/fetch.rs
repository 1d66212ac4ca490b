//! `hdpf dataset fetch` against an HTTP server on 127.0.0.1 that the test starts (no other network):
//! an interrupted download resumes with `Range`, the archive unpacks into the BOP layout, the SHA-256
//! recorded at the first download refuses a changed archive, a published one refuses a mismatch.

use hdpf::app::fetch::{self, Archive};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server holds: files by path, the paths whose next response is cut halfway, and the
/// log of (path, Range header) requests.
#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    cut_next: Vec<String>,
    log: Vec<(String, Option<String>)>,
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 supporting `Range: bytes=N-`; stops when dropped or
/// after 60 s.
struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !sp.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &st),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { port, state, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: std::net::TcpStream, state: &Mutex<State>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let mut s = state.lock().unwrap();
    s.log.push((path.clone(), range.clone()));
    let mut out = stream;
    let Some(body) = s.files.get(&path).cloned() else {
        let _ = out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let cut = s
        .cut_next
        .iter()
        .position(|p| *p == path)
        .map(|i| s.cut_next.remove(i))
        .is_some();
    drop(s);
    let from: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    if from >= body.len() && from > 0 {
        let _ = write!(out, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", body.len());
        return;
    }
    let part = &body[from..];
    let status = if range.is_some() {
        format!(
            "206 Partial Content\r\nContent-Range: bytes {from}-{}/{}",
            body.len() - 1,
            body.len()
        )
    } else {
        "200 OK".to_string()
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        part.len()
    );
    let send = if cut { &part[..part.len() / 2] } else { part };
    let _ = out.write_all(send);
    let _ = out.flush();
}

/// A zip in the BOP layout: a deflated scene_gt.json and a stored, incompressible 200 kB image.
fn build_zip(seed: u8) -> (Vec<u8>, String, Vec<u8>) {
    let gt = format!(
        r#"{{"0": [{{"cam_R_m2c": [1,0,0,0,1,0,0,0,1], "cam_t_m2c": [0,0,{seed}], "obj_id": 1}}]}}"#
    );
    let mut state = seed as u32 + 1;
    let img: Vec<u8> = (0..200_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflate = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.add_directory("test/000001/", deflate).unwrap();
    w.start_file("test/000001/scene_gt.json", deflate).unwrap();
    w.write_all(gt.as_bytes()).unwrap();
    w.start_file("test/000001/rgb/000000.png", stored).unwrap();
    w.write_all(&img).unwrap();
    (w.finish().unwrap().into_inner(), gt, img)
}

/// A fresh temporary directory, removed when the test ends.
fn temp_dir(name: &str) -> hdpf::core::scratch::ScratchDir {
    hdpf::core::scratch::ScratchDir::new(&format!("fetch-{name}"))
}

fn archive(server: &Server, sha256: Option<String>) -> Archive {
    Archive {
        part: "test".into(),
        file: "toy_test.zip".into(),
        url: server.url("/toy/resolve/main/toy_test.zip"),
        sha256,
        unpack_into: "toy".into(),
    }
}

fn requests(server: &Server) -> Vec<(String, Option<String>)> {
    server.state.lock().unwrap().log.clone()
}

#[test]
fn interrupted_download_resumes_verifies_and_unpacks() {
    let server = Server::start();
    let (zip_bytes, gt, img) = build_zip(7);
    let path = "/toy/resolve/main/toy_test.zip".to_string();
    {
        let mut s = server.state.lock().unwrap();
        s.files.insert(path.clone(), zip_bytes.clone());
        s.cut_next.push(path.clone());
    }
    let dest = temp_dir("resume");
    let a = archive(&server, None);

    // First attempt: the server closes halfway; the partial file stays.
    let e = fetch::fetch(std::slice::from_ref(&a), &dest, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("run again to resume"), "{e}");
    let part = dest.join("downloads/toy_test.zip.part");
    let have = std::fs::metadata(&part).unwrap().len();
    assert!(have > 0 && (have as usize) < zip_bytes.len(), "{have}");

    // Second attempt resumes from there with a Range request.
    fetch::fetch(std::slice::from_ref(&a), &dest, false).unwrap();
    let log = requests(&server);
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].1.as_deref(), Some(format!("bytes={have}-").as_str()));
    assert_eq!(
        std::fs::read(dest.join("downloads/toy_test.zip")).unwrap(),
        zip_bytes
    );
    assert!(!part.exists());
    // Unpacked into the BOP layout below toy/.
    assert_eq!(
        std::fs::read_to_string(dest.join("toy/test/000001/scene_gt.json")).unwrap(),
        gt
    );
    assert_eq!(
        std::fs::read(dest.join("toy/test/000001/rgb/000000.png")).unwrap(),
        img
    );
    // The digest of the first download is recorded beside the archive.
    let recorded = std::fs::read_to_string(dest.join("downloads/toy_test.zip.sha256")).unwrap();
    let digest = fetch::sha256_file(&dest.join("downloads/toy_test.zip")).unwrap();
    assert!(recorded.starts_with(&digest), "{recorded}");

    // A third run downloads nothing.
    fetch::fetch(std::slice::from_ref(&a), &dest, false).unwrap();
    assert_eq!(requests(&server).len(), 2);

    // The publisher's archive changes (or a mirror serves another): refused against the record.
    std::fs::remove_file(dest.join("downloads/toy_test.zip")).unwrap();
    std::fs::remove_file(dest.join("downloads/toy_test.zip.unpacked")).unwrap();
    server
        .state
        .lock()
        .unwrap()
        .files
        .insert(path, build_zip(8).0);
    let e = fetch::fetch(std::slice::from_ref(&a), &dest, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SHA-256 mismatch") && e.contains("recorded at the first download"),
        "{e}"
    );
    assert!(dest.join("downloads/toy_test.zip.corrupt").exists());
    assert!(!dest.join("downloads/toy_test.zip").exists());
}

#[test]
fn a_published_checksum_that_does_not_match_is_refused() {
    let server = Server::start();
    let (zip_bytes, _, _) = build_zip(3);
    let good = {
        use sha2::Digest;
        sha2::Sha256::digest(&zip_bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    server
        .state
        .lock()
        .unwrap()
        .files
        .insert("/toy/resolve/main/toy_test.zip".into(), zip_bytes);
    let dest = temp_dir("published");
    let e = fetch::fetch(&[archive(&server, Some("0".repeat(64)))], &dest, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SHA-256 mismatch") && e.contains("published"),
        "{e}"
    );
    assert!(
        !dest.join("toy").exists(),
        "nothing unpacked from a refused archive"
    );
    // The right digest passes.
    let dest2 = temp_dir("published-ok");
    fetch::fetch(&[archive(&server, Some(good))], &dest2, false).unwrap();
    assert!(dest2.join("toy/test/000001/scene_gt.json").exists());
}

#[test]
fn catalogue_uses_the_bop_urls_and_explains_what_cannot_be_fetched() {
    let ds = fetch::catalogue("ycbv", fetch::BOP_HOST).unwrap();
    let urls: Vec<&str> = ds.archives.iter().map(|a| a.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://huggingface.co/datasets/bop-benchmark/ycbv/resolve/main/ycbv_base.zip",
            "https://huggingface.co/datasets/bop-benchmark/ycbv/resolve/main/ycbv_models.zip",
            "https://huggingface.co/datasets/bop-benchmark/ycbv/resolve/main/ycbv_test_bop19.zip",
        ]
    );
    assert_eq!(ds.archives[1].unpack_into, "ycbv");
    let t = fetch::catalogue("tless", "http://mirror/").unwrap();
    assert_eq!(
        t.archives[2].url,
        "http://mirror/tless/resolve/main/tless_test_primesense_bop19.zip"
    );
    let e = fetch::catalogue("ycbv-mini", fetch::BOP_HOST)
        .unwrap_err()
        .to_string();
    assert!(e.contains("datasets/ycbv-mini.md"), "{e}");
    let e = fetch::catalogue("nope", fetch::BOP_HOST)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ycbv, lmo, tless"), "{e}");
}
