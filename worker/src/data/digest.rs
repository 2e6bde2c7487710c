//! What a dataset's files hash to: the data part of a task's result key
//! (see `sweep_spec::result_key`). The digest covers the four files' names
//! and bytes as they are on disk, so any change to a file, compressed or
//! not, is a new digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use sweep_spec::result_key::hex;

use super::{FILES, SAMPLE_FILES, Source, find_file, locate};
use crate::error::DataError;

/// The digest of the dataset `name` resolves to (SHA-256, hex).
pub fn digest(name: &str, data_dir: Option<&Path>) -> Result<String, DataError> {
    match locate(name, data_dir)? {
        Source::Sample => Ok(sample().clone()),
        Source::Dir(dir) => dir_digest(&dir),
    }
}

fn sample() -> &'static String {
    static SAMPLE: OnceLock<String> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let mut hasher = Sha256::new();
        for (file, bytes) in FILES.iter().zip(SAMPLE_FILES) {
            add(&mut hasher, &format!("{file}.gz"), bytes);
        }
        hex(&hasher.finalize())
    })
}

/// Each file's name, size and modification time when it was hashed.
type Stamps = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// A worker hashes each dataset once (a fraction of a second for the full
/// MNIST), not once per task, and again when a file's size or time changes.
static HASHED: LazyLock<Mutex<HashMap<PathBuf, (Stamps, String)>>> =
    LazyLock::new(Default::default);

fn dir_digest(dir: &Path) -> Result<String, DataError> {
    let paths = FILES
        .iter()
        .map(|stem| {
            find_file(dir, stem)
                .ok_or_else(|| DataError::io(&dir.join(stem), std::io::ErrorKind::NotFound.into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stamps = paths
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).map_err(|err| DataError::io(path, err))?;
            Ok((path.clone(), meta.len(), meta.modified().ok()))
        })
        .collect::<Result<Stamps, DataError>>()?;
    // Held while hashing, so that slots starting on one dataset hash it once.
    let mut hashed = HASHED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((seen, digest)) = hashed.get(dir)
        && *seen == stamps
        && stamps.iter().all(|(_, _, time)| time.is_some())
    {
        return Ok(digest.clone());
    }
    let mut hasher = Sha256::new();
    for path in &paths {
        let bytes = std::fs::read(path).map_err(|err| DataError::io(path, err))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        add(&mut hasher, &name, &bytes);
    }
    let digest = hex(&hasher.finalize());
    hashed.insert(dir.to_path_buf(), (stamps, digest.clone()));
    Ok(digest)
}

/// One file: its name and length first, so that bytes cannot move from one
/// file to the next unseen.
fn add(hasher: &mut Sha256, name: &str, bytes: &[u8]) {
    hasher.update(format!("{name}\n{}\n", bytes.len()).as_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_sample(dir: &Path) {
        for (file, bytes) in FILES.iter().zip(SAMPLE_FILES) {
            std::fs::write(dir.join(format!("{file}.gz")), bytes).unwrap();
        }
    }

    #[test]
    fn the_same_files_hash_alike_and_a_changed_byte_does_not() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        copy_sample(a.path());
        copy_sample(b.path());
        let first = digest(a.path().to_str().unwrap(), None).unwrap();
        assert_eq!(first, digest(b.path().to_str().unwrap(), None).unwrap());
        assert_eq!(first, digest(crate::data::SAMPLE, None).unwrap());
        assert_eq!(first.len(), 64);
        let labels = b.path().join("t10k-labels-idx1-ubyte.gz");
        let mut bytes = std::fs::read(&labels).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&labels, &bytes).unwrap();
        assert_ne!(digest(b.path().to_str().unwrap(), None).unwrap(), first);
    }
}
