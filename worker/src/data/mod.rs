//! Datasets in MNIST's IDX format: where to find them, loading, subsets and
//! the seeded label shuffle of experiment 3.1.
//!
//! A dataset name resolves, in order, to: a directory path given as the name;
//! `DATA_DIR/NAME` and `DATA_DIR` for the worker's `--data-dir`
//! (`SWEEP_DATA_DIR`); the system locations in [`SYSTEM_DIRS`] (Debian's
//! `dataset-fashion-mnist` installs under the first). `mnist-sample` is the
//! 10,000-digit MNIST sample built into the worker (see
//! `data/mnist-sample/README.md`), decoded from memory, so a fresh machine
//! trains offline and no file is ever written for it. [`digest`] hashes a
//! dataset's files for the result cache.

mod digest;
mod idx;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::SystemTime;

pub use digest::digest;
pub use idx::Images;

use crate::error::DataError;
use crate::rng::Rng;

pub const SAMPLE: &str = "mnist-sample";
pub const SYSTEM_DIRS: [&str; 2] = ["/usr/share/datasets", "/usr/local/share/datasets"];
const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];
const SAMPLE_FILES: [&[u8]; 4] = [
    include_bytes!("../../../data/mnist-sample/train-images-idx3-ubyte.gz"),
    include_bytes!("../../../data/mnist-sample/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../../data/mnist-sample/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../../data/mnist-sample/t10k-labels-idx1-ubyte.gz"),
];

/// Images scaled to [0, 1] and their labels. The pixels are shared: every
/// slot of a worker training on a dataset reads the one copy its process
/// loaded (188 MB for MNIST's training split), and only a subset copies.
#[derive(Clone, Debug)]
pub struct Split {
    pub pixels: Arc<[f32]>,
    pub labels: Vec<u8>,
    /// Pixels per image.
    pub width: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` examples (all of them when `n` is larger or absent).
    pub fn truncate(&mut self, n: Option<u64>) {
        if let Some(n) = n.map(|n| n as usize).filter(|n| *n < self.len()) {
            self.labels.truncate(n);
            self.pixels = Arc::from(&self.pixels[..n * self.width]);
        }
    }

    /// Permutes the labels with a generator seeded by `seed`, leaving the
    /// images in place: the random-label experiment (3.1).
    pub fn shuffle_labels(&mut self, seed: u64) {
        Rng::derived(seed, 0x1abe1).shuffle(&mut self.labels);
    }
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub train: Split,
    pub test: Split,
}

/// Where the files of a dataset are.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Dir(PathBuf),
    Sample,
}

/// Finds a dataset by name; see the module documentation for the order.
pub fn locate(name: &str, data_dir: Option<&Path>) -> Result<Source, DataError> {
    if name == SAMPLE {
        return Ok(Source::Sample);
    }
    let mut candidates = vec![PathBuf::from(name)];
    if let Some(dir) = data_dir {
        candidates.push(dir.join(name));
        candidates.push(dir.to_path_buf());
    }
    candidates.extend(SYSTEM_DIRS.iter().map(|dir| Path::new(dir).join(name)));
    candidates
        .iter()
        .find(|dir| FILES.iter().all(|file| find_file(dir, file).is_some()))
        .map(|dir| Source::Dir(dir.clone()))
        .ok_or_else(|| DataError::Missing {
            name: name.to_string(),
            looked_in: candidates,
        })
}

fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|file| dir.join(file))
        .find(|path| path.is_file())
}

/// Loads a dataset: the train and test splits, pixels scaled to [0, 1].
pub fn load(name: &str, data_dir: Option<&Path>) -> Result<Dataset, DataError> {
    match locate(name, data_dir)? {
        Source::Sample => sample(),
        Source::Dir(dir) => load_dir(&dir),
    }
}

/// The built-in sample, decoded once per process.
fn sample() -> Result<Dataset, DataError> {
    static SAMPLE_DATA: OnceLock<Arc<Dataset>> = OnceLock::new();
    if let Some(data) = SAMPLE_DATA.get() {
        return Ok(Dataset::clone(data));
    }
    let file = |i: usize| {
        (
            SAMPLE_FILES[i],
            Path::new(SAMPLE).join(format!("{}.gz", FILES[i])),
        )
    };
    let data = Dataset {
        train: split(file(0), file(1))?,
        test: split(file(2), file(3))?,
    };
    Ok(Dataset::clone(SAMPLE_DATA.get_or_init(|| Arc::new(data))))
}

/// The split in a directory's image and label files.
fn load_split(dir: &Path, images: &str, labels: &str) -> Result<Split, DataError> {
    let read = |stem: &str| -> Result<(Vec<u8>, PathBuf), DataError> {
        let path = find_file(dir, stem)
            .ok_or_else(|| DataError::io(&dir.join(stem), std::io::ErrorKind::NotFound.into()))?;
        let bytes = std::fs::read(&path).map_err(|err| DataError::io(&path, err))?;
        Ok((bytes, path))
    };
    let (images, labels) = (read(images)?, read(labels)?);
    split((&images.0, images.1), (&labels.0, labels.1))
}

/// A split from the bytes of its image and label files (and their names,
/// for errors).
fn split(images: (&[u8], PathBuf), labels: (&[u8], PathBuf)) -> Result<Split, DataError> {
    let parsed = idx::images(images.0, &images.1)?;
    let labels_path = labels.1;
    let labels = idx::labels(labels.0, &labels_path)?;
    if labels.len() != parsed.count {
        return Err(DataError::format(
            &labels_path,
            format!("{} labels for {} images", labels.len(), parsed.count),
        ));
    }
    Ok(Split {
        pixels: parsed
            .pixels
            .iter()
            .map(|p| f32::from(*p) / 255.0)
            .collect(),
        labels,
        width: parsed.rows * parsed.cols,
    })
}

/// Datasets this process has read, by directory, with the modification time
/// of their training images when read.
type Loaded = HashMap<PathBuf, (Option<SystemTime>, Arc<Dataset>)>;

/// A worker decompresses and parses each dataset once (seconds for the
/// full Fashion-MNIST), not once per task; a copy costs milliseconds. A
/// dataset whose files are replaced is read again.
static LOADED: LazyLock<Mutex<Loaded>> = LazyLock::new(Default::default);

fn load_dir(dir: &Path) -> Result<Dataset, DataError> {
    let stamp = find_file(dir, FILES[0])
        .and_then(|path| std::fs::metadata(path).ok())
        .and_then(|meta| meta.modified().ok());
    // Held while reading, so that slots starting on the same dataset read
    // it once between them.
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((seen, data)) = loaded.get(dir)
        && stamp.is_some()
        && *seen == stamp
    {
        return Ok(Dataset::clone(data));
    }
    let data = Dataset {
        train: load_split(dir, FILES[0], FILES[1])?,
        test: load_split(dir, FILES[2], FILES[3])?,
    };
    loaded.insert(dir.to_path_buf(), (stamp, Arc::new(data.clone())));
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_sample_loads_with_every_class() {
        let data = load(SAMPLE, None).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (8000, 2000));
        assert_eq!(data.train.width, 784);
        assert_eq!(data.train.pixels.len(), 8000 * 784);
        assert!(data.train.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        for class in 0..10u8 {
            assert!(data.test.labels.iter().filter(|l| **l == class).count() > 150);
        }
    }

    #[test]
    fn a_missing_dataset_says_where_it_looked_and_how_to_get_one() {
        // Not "mnist": a machine may have the whole MNIST installed.
        let dir = tempfile::tempdir().unwrap();
        let err = locate("no-such-digits", Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&dir.path().join("no-such-digits").display().to_string()),
            "{err}"
        );
        assert!(err.contains("/usr/share/datasets/no-such-digits"), "{err}");
        assert!(err.contains("mnist-sample"), "{err}");
        assert!(err.contains("dataset-fashion-mnist"), "{err}");
        assert!(err.contains("sweep data fetch mnist"), "{err}");
    }

    /// A copy of the built-in sample in `dir/name`.
    fn copy_sample(dir: &Path, name: &str) -> PathBuf {
        let target = dir.join(name);
        std::fs::create_dir(&target).unwrap();
        for (stem, bytes) in FILES.iter().zip(SAMPLE_FILES) {
            std::fs::write(target.join(format!("{stem}.gz")), bytes).unwrap();
        }
        target
    }

    #[test]
    fn slots_loading_the_sample_at_once_all_get_it() {
        let loads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| load(SAMPLE, None).map(|d| d.train.len())))
            .collect();
        for handle in loads {
            assert_eq!(handle.join().unwrap().unwrap(), 8000);
        }
        let copy = tempfile::tempdir().unwrap();
        let dir = copy_sample(copy.path(), "same");
        let from_disk = load("same", Some(copy.path())).unwrap();
        assert!(dir.exists());
        assert_eq!(
            from_disk.test.pixels,
            load(SAMPLE, None).unwrap().test.pixels
        );
    }

    #[test]
    fn slots_share_one_copy_of_a_datasets_pixels() {
        let copy = tempfile::tempdir().unwrap();
        copy_sample(copy.path(), "shared");
        let (a, b) = (
            load("shared", Some(copy.path())).unwrap(),
            load("shared", Some(copy.path())).unwrap(),
        );
        assert!(Arc::ptr_eq(&a.train.pixels, &b.train.pixels));
        assert!(Arc::ptr_eq(&a.test.pixels, &b.test.pixels));
        let (c, d) = (load(SAMPLE, None).unwrap(), load(SAMPLE, None).unwrap());
        assert!(Arc::ptr_eq(&c.train.pixels, &d.train.pixels));
        // A subset is a copy of its own; the shared pixels stay whole.
        let mut subset = c.train.clone();
        subset.truncate(Some(10));
        assert_eq!(subset.pixels.len(), 10 * 784);
        assert_eq!(d.train.pixels.len(), 8000 * 784);
    }

    #[test]
    fn a_data_dir_is_searched_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let target = copy_sample(dir.path(), "digits");
        assert_eq!(
            locate("digits", Some(dir.path())).unwrap(),
            Source::Dir(target)
        );
    }

    #[test]
    fn a_dataset_replaced_on_disk_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let target = copy_sample(dir.path(), "digits");
        let first = load("digits", Some(dir.path())).unwrap();
        assert_eq!(first.test.len(), 2000);
        // The test split becomes the training split: other images, a newer file.
        let images = target.join(format!("{}.gz", FILES[0]));
        let labels = target.join(format!("{}.gz", FILES[1]));
        std::fs::copy(target.join(format!("{}.gz", FILES[2])), &images).unwrap();
        std::fs::copy(target.join(format!("{}.gz", FILES[3])), &labels).unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&images)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let second = load("digits", Some(dir.path())).unwrap();
        assert_eq!(second.train.len(), 2000, "read again, not the cached copy");
        assert_eq!(second.train.pixels, first.test.pixels);
        // Unchanged (same modification time), it is not read again: garbage
        // under the old time still loads the copy read before.
        std::fs::write(&images, b"not an idx file").unwrap();
        let file = std::fs::File::options().write(true).open(&images).unwrap();
        file.set_modified(later).unwrap();
        let third = load("digits", Some(dir.path())).unwrap();
        assert_eq!(third.train.pixels, second.train.pixels);
    }

    #[test]
    fn label_shuffling_keeps_the_labels_and_depends_on_the_seed() {
        let data = load(SAMPLE, None).unwrap();
        let mut a = data.train.clone();
        a.truncate(Some(1000));
        let mut b = a.clone();
        a.shuffle_labels(1);
        b.shuffle_labels(2);
        let mut sorted_a = a.labels.clone();
        sorted_a.sort();
        let mut original = data.train.labels[..1000].to_vec();
        original.sort();
        assert_eq!(sorted_a, original, "a permutation");
        assert_ne!(a.labels, b.labels);
        let kept = a
            .labels
            .iter()
            .zip(&data.train.labels)
            .filter(|(x, y)| x == y)
            .count();
        assert!(kept < 200, "about a tenth stay in place, {kept} did");
        assert_eq!(a.pixels[..], data.train.pixels[..1000 * 784]);
    }
}
