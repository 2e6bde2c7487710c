//! Checkpoints: a task's training state at a step boundary, as bytes that a
//! later attempt (on any worker) continues from.
//!
//! What a checkpoint holds is what decides the rest of the run and cannot be
//! derived again cheaply: the weights, the optimizer's state (Adam's moments
//! and step count, in burn's own format), where training stands (epoch,
//! batches of it done, steps) and the numbers a summary keeps along the way.
//! The data order is not stored: it comes from the task's seed, and the
//! resuming attempt replays the shuffles of the epochs before.
//!
//! The bytes are a magic tag, a JSON header, then the weights (f32, little
//! endian) and the optimizer's bytes; the header names the task they belong
//! to, so a checkpoint of another task, or a damaged one, is refused with a
//! [`CheckpointError`] rather than loaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The first bytes of every checkpoint; the digit is the format's version.
const MAGIC: &[u8; 8] = b"SWEEPCK1";

/// Where training stands at a step boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The epoch in progress, from 1.
    pub epoch: u64,
    /// Batches of that epoch already trained.
    pub batch: u64,
    /// Optimizer steps taken in all.
    pub step: u64,
}

/// A task's training state at a step boundary.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The task it belongs to: [`fingerprint`] of its parameters.
    pub task: String,
    pub position: Position,
    /// Numbers the rest of the run needs (the last evaluation, best-so-far
    /// values), by name.
    pub values: BTreeMap<String, f64>,
    /// The model's weights, flat (see [`crate::model`]).
    pub weights: Vec<f32>,
    /// The optimizer's state as burn writes it.
    pub optimizer: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckpointError {
    #[error("the checkpoint is unreadable: {0}")]
    Unreadable(String),
    #[error("the checkpoint belongs to another task ({found}, this one is {expected})")]
    OtherTask { found: String, expected: String },
    #[error("the checkpoint holds {found} weights; this task's model has {expected}")]
    Shape { found: usize, expected: usize },
}

/// What the header says; the weights and the optimizer's bytes follow it.
#[derive(Serialize, Deserialize)]
struct Header {
    task: String,
    position: Position,
    values: BTreeMap<String, f64>,
    weights: usize,
    optimizer: usize,
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            task: self.task.clone(),
            position: self.position,
            values: self.values.clone(),
            weights: self.weights.len(),
            optimizer: self.optimizer.len(),
        };
        let header = serde_json::to_vec(&header).expect("a header serializes");
        let mut out = Vec::with_capacity(
            MAGIC.len() + 4 + header.len() + self.weights.len() * 4 + self.optimizer.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for weight in &self.weights {
            out.extend_from_slice(&weight.to_le_bytes());
        }
        out.extend_from_slice(&self.optimizer);
        out
    }

    /// Reads a checkpoint for the task whose [`fingerprint`] is `task` and
    /// whose model has `weights` weights.
    pub fn from_bytes(bytes: &[u8], task: &str, weights: usize) -> Result<Self, CheckpointError> {
        let mut reader = Reader(bytes);
        if reader.take(MAGIC.len())? != MAGIC {
            return Err(unreadable("it does not start as a checkpoint does"));
        }
        let length = u32::from_le_bytes(reader.take(4)?.try_into().expect("4 bytes")) as usize;
        let header: Header = serde_json::from_slice(reader.take(length)?)
            .map_err(|err| unreadable(&format!("its header: {err}")))?;
        if header.task != task {
            return Err(CheckpointError::OtherTask {
                found: header.task,
                expected: task.to_string(),
            });
        }
        if header.weights != weights {
            return Err(CheckpointError::Shape {
                found: header.weights,
                expected: weights,
            });
        }
        let floats = reader.take(header.weights.saturating_mul(4))?;
        let optimizer = reader.take(header.optimizer)?.to_vec();
        if !reader.0.is_empty() {
            return Err(unreadable("bytes follow its end"));
        }
        Ok(Self {
            task: header.task,
            position: header.position,
            values: header.values,
            weights: floats
                .chunks_exact(4)
                .map(|w| f32::from_le_bytes(w.try_into().expect("4 bytes")))
                .collect(),
            optimizer,
        })
    }
}

fn unreadable(why: &str) -> CheckpointError {
    CheckpointError::Unreadable(why.to_string())
}

/// The bytes not yet read.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        if n > self.0.len() {
            return Err(unreadable("it is cut short"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }
}

/// A task's identity for its checkpoints: its parameters as the coordinator
/// planned them, hashed (FNV-1a over their JSON). Two tasks share it only if
/// they train the same thing.
pub fn fingerprint(params: &sweep_spec::TaskParams) -> String {
    let json = serde_json::to_vec(params).expect("task parameters serialize");
    let hash = json.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            task: "00ff".into(),
            position: Position {
                epoch: 2,
                batch: 7,
                step: 31,
            },
            values: BTreeMap::from([("test_loss".to_string(), 0.25)]),
            weights: vec![1.5, -0.0, f32::MIN_POSITIVE, 3.0e-7],
            optimizer: vec![9, 8, 7],
        }
    }

    #[test]
    fn a_checkpoint_reads_back_bit_for_bit() {
        let bytes = checkpoint().to_bytes();
        let read = Checkpoint::from_bytes(&bytes, "00ff", 4).unwrap();
        assert_eq!(read, checkpoint());
        let bits = |c: &Checkpoint| c.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&read), bits(&checkpoint()), "-0.0 stays -0.0");
    }

    #[test]
    fn a_checkpoint_of_another_task_or_shape_or_damaged_is_refused() {
        let bytes = checkpoint().to_bytes();
        assert!(matches!(
            Checkpoint::from_bytes(&bytes, "0100", 4),
            Err(CheckpointError::OtherTask { .. })
        ));
        assert_eq!(
            Checkpoint::from_bytes(&bytes, "00ff", 5),
            Err(CheckpointError::Shape {
                found: 4,
                expected: 5
            })
        );
        for cut in [0, 5, 12, 20, bytes.len() - 1] {
            let err = Checkpoint::from_bytes(&bytes[..cut], "00ff", 4).unwrap_err();
            assert!(
                matches!(err, CheckpointError::Unreadable(_)),
                "{cut}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Checkpoint::from_bytes(&longer, "00ff", 4).is_err());
        let mut garbled = bytes;
        garbled[13] ^= 0xff;
        assert!(Checkpoint::from_bytes(&garbled, "00ff", 4).is_err());
    }
}
