//! `sweep data fetch`: the whole MNIST or Fashion-MNIST, which the full-scale
//! specs train on and the repository does not ship. Each file comes from the
//! first mirror that serves it, continues a partial download (`FILE.part`,
//! an HTTP range request) instead of starting over, and is kept only when
//! its SHA-256 is the one committed below. The files land in `DIR/NAME/`,
//! where workers started with `--data-dir DIR` look for dataset `NAME`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

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
    pub file: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

/// The datasets `fetch` knows. The digests are those every mirror serves
/// (and that PyTorch, TensorFlow and Keras check against).
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
            },
            Remote {
                file: "train-labels-idx1-ubyte.gz",
                size: 28_881,
                sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            },
            Remote {
                file: "t10k-images-idx3-ubyte.gz",
                size: 1_648_877,
                sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            },
            Remote {
                file: "t10k-labels-idx1-ubyte.gz",
                size: 4_542,
                sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
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
            },
            Remote {
                file: "train-labels-idx1-ubyte.gz",
                size: 29_515,
                sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            },
            Remote {
                file: "t10k-images-idx3-ubyte.gz",
                size: 4_422_102,
                sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            },
            Remote {
                file: "t10k-labels-idx1-ubyte.gz",
                size: 5_148,
                sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
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
    let path = dir.join(remote.file);
    if path.is_file() && sha256(&path)? == remote.sha256 {
        eprintln!("{}: already there, checksum verified", remote.file);
        return Ok(());
    }
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
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
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
                assert_eq!(remote.sha256.len(), 64, "{}", remote.file);
                assert!(remote.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
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
