//! The worker's errors, and what a caught panic said.

use std::path::{Path, PathBuf};

/// A dataset that cannot be found or read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "dataset {name:?} not found; looked in {}. Put the four IDX files \
         (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], \
         t10k-labels-idx1-ubyte[.gz]) in one of those directories or in --data-dir DIR \
         (SWEEP_DATA_DIR); `sweep data fetch mnist --dir DIR` (or fashion-mnist) downloads \
         one into DIR; `apt-get install dataset-fashion-mnist` installs Fashion-MNIST; \
         dataset = \"mnist-sample\" uses the 10,000 MNIST digits built into the worker",
        looked_in.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Missing {
        name: String,
        looked_in: Vec<PathBuf>,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid IDX file: {problem}")]
    Format { path: PathBuf, problem: String },
}

impl DataError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn format(path: &Path, problem: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// What a caught panic said.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
