//! `sweep data fetch` against a real HTTP server on 127.0.0.1 that serves
//! the bundled sample's IDX files: intact, corrupted, and cut off halfway.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use sweep_cli::fetch::{self, Dataset, Remote};

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

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sample as a fetchable dataset: its real sizes and digests.
fn sample_dataset() -> &'static Dataset {
    let files: Vec<Remote> = FILES
        .iter()
        .map(|file| {
            let bytes = sample(file);
            Remote {
                file,
                size: bytes.len() as u64,
                sha256: Box::leak(hex_sha256(&bytes).into_boxed_str()),
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
