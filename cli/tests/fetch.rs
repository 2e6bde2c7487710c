//! `sweep data fetch` against a real HTTP server on 127.0.0.1 that serves
//! the bundled sample's IDX files: intact, corrupted, and cut off halfway;
//! and `--from`, importing a local copy compressed another way, not at all,
//! or corrupted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sweep_cli::fetch::{self, Dataset, Remote};
use sweep_spec::result_key::hex_digest;

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// How the server treats one file.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    Intact,
    /// One byte flipped.
    Corrupted,
    /// The first response stops halfway and closes; later ones honour ranges.
    CutOnce,
}

/// Each request's path and range start.
type Log = Mutex<Vec<(String, Option<u64>)>>;

/// A one-thread-per-connection HTTP/1.1 server that logs every request.
struct Server {
    url: String,
    requests: Arc<Log>,
}

impl Server {
    fn start(files: HashMap<String, (Vec<u8>, Serve)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/data", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let files = Arc::new(files);
        let cut = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (files, log, cut) = (files.clone(), log.clone(), cut.clone());
                std::thread::spawn(move || answer(stream, &files, &log, &cut));
            }
        });
        Self { url, requests }
    }

    fn ranges(&self, file: &str) -> Vec<Option<u64>> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|(path, _)| path.ends_with(file))
            .map(|(_, range)| *range)
            .collect()
    }
}

fn answer(
    mut stream: TcpStream,
    files: &HashMap<String, (Vec<u8>, Serve)>,
    log: &Log,
    cut: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("range: bytes=") {
            range = value.trim().trim_end_matches('-').parse::<u64>().ok();
        }
    }
    log.lock().unwrap().push((path.clone(), range));
    let name = path.rsplit('/').next().unwrap_or("");
    let Some((bytes, serve)) = files.get(name) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let mut body = bytes.clone();
    if *serve == Serve::Corrupted {
        let middle = body.len() / 2;
        body[middle] ^= 0xff;
    }
    let start = range.unwrap_or(0) as usize;
    let head = match range {
        Some(_) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len() - 1,
            body.len(),
            body.len() - start
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
    };
    stream.write_all(head.as_bytes()).unwrap();
    let rest = &body[start..];
    if *serve == Serve::CutOnce && !cut.swap(true, Ordering::SeqCst) {
        // Half the promised bytes, then the connection drops.
        let _ = stream.write_all(&rest[..rest.len() / 2]);
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let _ = stream.write_all(rest);
}

fn sample(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/mnist-sample")
        .join(file);
    std::fs::read(path).unwrap()
}

/// A sample file decompressed.
fn content(file: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&sample(file)[..])
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The sample as a fetchable dataset: its real sizes and digests, of the
/// files and of their content.
fn sample_dataset() -> &'static Dataset {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let files: Vec<Remote> = FILES
        .iter()
        .map(|file| {
            let (bytes, content) = (sample(file), content(file));
            Remote {
                file,
                size: bytes.len() as u64,
                sha256: leak(hex_digest(&bytes)),
                content_size: content.len() as u64,
                content_sha256: leak(hex_digest(&content)),
            }
        })
        .collect();
    Box::leak(Box::new(Dataset {
        name: "sample",
        mirrors: &[],
        files: Box::leak(files.into_boxed_slice()),
    }))
}

fn serving(special: &[(&str, Serve)]) -> Server {
    let files = FILES
        .iter()
        .map(|file| {
            let serve = special
                .iter()
                .find(|(name, _)| name == file)
                .map_or(Serve::Intact, |(_, s)| *s);
            (file.to_string(), (sample(file), serve))
        })
        .collect();
    Server::start(files)
}

#[test]
fn intact_files_are_fetched_verified_and_not_fetched_again() {
    let server = serving(&[]);
    let dir = tempfile::tempdir().unwrap();
    let set = sample_dataset();
    let target = fetch::fetch(set, dir.path(), std::slice::from_ref(&server.url)).unwrap();
    assert_eq!(target, dir.path().join("sample"));
    for file in FILES {
        assert_eq!(std::fs::read(target.join(file)).unwrap(), sample(file));
        assert!(!target.join(format!("{file}.part")).exists());
    }
    let before = server.requests.lock().unwrap().len();
    fetch::fetch(set, dir.path(), std::slice::from_ref(&server.url)).unwrap();
    assert_eq!(
        server.requests.lock().unwrap().len(),
        before,
        "verified files are not downloaded again"
    );
}

#[test]
fn a_corrupted_file_is_refused_by_name_and_the_next_mirror_is_tried() {
    let bad = serving(&[("t10k-images-idx3-ubyte.gz", Serve::Corrupted)]);
    let dir = tempfile::tempdir().unwrap();
    let set = sample_dataset();
    let err = fetch::fetch(set, dir.path(), std::slice::from_ref(&bad.url))
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    let target = dir.path().join("sample");
    assert!(!target.join("t10k-images-idx3-ubyte.gz").exists());
    assert!(!target.join("t10k-images-idx3-ubyte.gz.part").exists());
    // A good mirror after the bad one completes the set.
    let good = serving(&[]);
    fetch::fetch(set, dir.path(), &[bad.url.clone(), good.url.clone()]).unwrap();
    assert_eq!(
        std::fs::read(target.join("t10k-images-idx3-ubyte.gz")).unwrap(),
        sample("t10k-images-idx3-ubyte.gz")
    );
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let file = "train-images-idx3-ubyte.gz";
    let server = serving(&[(file, Serve::CutOnce)]);
    let dir = tempfile::tempdir().unwrap();
    fetch::fetch(
        sample_dataset(),
        dir.path(),
        std::slice::from_ref(&server.url),
    )
    .unwrap();
    let whole = sample(file);
    assert_eq!(
        std::fs::read(dir.path().join("sample").join(file)).unwrap(),
        whole
    );
    assert_eq!(
        server.ranges(file),
        vec![None, Some(whole.len() as u64 / 2)],
        "the second request asks only for the missing half"
    );
}

#[test]
fn the_command_checks_the_published_digests_and_names_the_dataset() {
    // The sample's files are not the full MNIST: the committed digests
    // refuse them, naming the file.
    let server = serving(&[]);
    let dir = tempfile::tempdir().unwrap();
    let sweep = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sweep"))
            .args(args)
            .env_remove("SWEEP_DATA_DIR")
            .output()
            .unwrap()
    };
    let dir_arg = dir.path().display().to_string();
    let output = sweep(&[
        "data",
        "fetch",
        "mnist",
        "--dir",
        &dir_arg,
        "--mirror",
        &server.url,
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("train-images-idx3-ubyte.gz"), "{stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    let output = sweep(&["data", "fetch", "cifar", "--dir", &dir_arg]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown dataset \"cifar\""), "{stderr}");
}

/// A directory holding the sample as `files` say: (name, bytes).
fn local_copy(files: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// The sample's files as shipped, but for `changed`.
fn shipped_but(changed: &[(&str, String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    FILES
        .iter()
        .map(|file| {
            changed
                .iter()
                .find(|(which, _, _)| which == file)
                .map_or_else(
                    || (file.to_string(), sample(file)),
                    |(_, name, bytes)| (name.clone(), bytes.clone()),
                )
        })
        .collect()
}

#[test]
fn a_local_copy_is_imported_by_its_content_however_it_was_compressed() {
    let set = sample_dataset();
    let recompressed = gzip(&content("train-labels-idx1-ubyte.gz"), 1);
    assert_ne!(recompressed, sample("train-labels-idx1-ubyte.gz"));
    let from = local_copy(&shipped_but(&[
        (
            "train-images-idx3-ubyte.gz",
            "train-images-idx3-ubyte".into(),
            content("train-images-idx3-ubyte.gz"),
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "train-labels-idx1-ubyte.gz".into(),
            recompressed.clone(),
        ),
    ]));
    let dest = tempfile::tempdir().unwrap();
    let target = fetch::import(set, from.path(), dest.path()).unwrap();
    assert_eq!(target, dest.path().join("sample"));
    // Each file as it was in the copy.
    assert_eq!(
        std::fs::read(target.join("train-images-idx3-ubyte")).unwrap(),
        content("train-images-idx3-ubyte.gz")
    );
    assert!(!target.join("train-images-idx3-ubyte.gz").exists());
    assert_eq!(
        std::fs::read(target.join("train-labels-idx1-ubyte.gz")).unwrap(),
        recompressed
    );
    for file in &FILES[2..] {
        assert_eq!(std::fs::read(target.join(file)).unwrap(), sample(file));
    }
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        4,
        "no .part left"
    );
    // Imported files count as there: a download fetches nothing.
    let server = serving(&[]);
    fetch::fetch(set, dest.path(), std::slice::from_ref(&server.url)).unwrap();
    assert!(server.requests.lock().unwrap().is_empty());
    // The copy's NAME subdirectory is looked in too.
    let nested = tempfile::tempdir().unwrap();
    let inner = nested.path().join("sample");
    std::fs::create_dir(&inner).unwrap();
    for file in FILES {
        std::fs::write(inner.join(file), sample(file)).unwrap();
    }
    let dest = tempfile::tempdir().unwrap();
    let target = fetch::import(set, nested.path(), dest.path()).unwrap();
    for file in FILES {
        assert_eq!(std::fs::read(target.join(file)).unwrap(), sample(file));
    }
}

#[test]
fn a_corrupted_local_copy_is_refused_in_one_line_naming_the_file_and_nothing_is_copied() {
    let set = sample_dataset();
    let mut flipped = content("t10k-images-idx3-ubyte.gz");
    flipped[5000] ^= 0x40;
    let dest = tempfile::tempdir().unwrap();
    for (name, bytes, says) in [
        (
            "t10k-images-idx3-ubyte.gz",
            gzip(&flipped, 6),
            "not the published t10k-images-idx3-ubyte",
        ),
        // Cut off halfway: no gzip trailer.
        (
            "t10k-images-idx3-ubyte.gz",
            sample("t10k-images-idx3-ubyte.gz")[..1000].to_vec(),
            "cannot decompress",
        ),
        (
            "t10k-images-idx3-ubyte",
            flipped.clone(),
            "not the published t10k-images-idx3-ubyte",
        ),
    ] {
        let from = local_copy(&shipped_but(&[(
            "t10k-images-idx3-ubyte.gz",
            name.to_string(),
            bytes,
        )]));
        let err = format!(
            "{:#}",
            fetch::import(set, from.path(), dest.path()).unwrap_err()
        );
        assert!(
            err.contains(&format!("{}", from.path().join(name).display())),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            !dest.path().join("sample").exists(),
            "nothing is copied when a file is bad"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let err = fetch::import(set, empty.path(), dest.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no train-images-idx3-ubyte.gz or train-images-idx3-ubyte there"),
        "{err}"
    );
}

#[test]
fn the_command_imports_against_the_published_content_digests() {
    // The sample is not the whole MNIST: its content is refused, by name.
    let from = local_copy(&shipped_but(&[]));
    let dest = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["data", "fetch", "mnist", "--from"])
        .arg(from.path())
        .arg("--dir")
        .arg(dest.path())
        .env_remove("SWEEP_DATA_DIR")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("train-images-idx3-ubyte.gz: not the published train-images-idx3-ubyte"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!dest.path().join("mnist").exists());
}
