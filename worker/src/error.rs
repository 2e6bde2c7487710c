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

/// What a caught panic said, without the C++ backtrace that LibTorch
/// appends to its errors (forty frames of addresses that bury the one line
/// that matters, e.g. "Found no NVIDIA driver on your system").
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    without_backtrace(text)
}

fn without_backtrace(text: String) -> String {
    // The backtrace follows a newline, or an escaped one when the panic
    // printed tch's error with `{:?}` (as `unwrap` does).
    let cut = ["\\nException raised from", "\nException raised from"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min();
    match cut {
        Some(at) => format!("{} [LibTorch's backtrace left out]", text[..at].trim_end()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_backtraces_are_left_out_of_panic_messages() {
        let unwrapped = "called `Result::unwrap()` on an `Err` value: Torch(\"Found no NVIDIA \
                         driver on your system.\\nException raised from device_count_impl at \
                         CUDAFunctions.cpp:40:\\nframe #0: c10::Error::Error + 0x80\")";
        let panic: Box<dyn std::any::Any + Send> = Box::new(unwrapped.to_string());
        let message = panic_message(panic.as_ref());
        assert!(
            message.contains("Found no NVIDIA driver on your system."),
            "{message}"
        );
        assert!(!message.contains("frame #0"), "{message}");
        let plain: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert_eq!(panic_message(plain.as_ref()), "index out of bounds");
    }
}
