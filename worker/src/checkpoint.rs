//! Checkpoints: a task's training state at a step boundary, as bytes that a
//! later attempt (on any worker) continues from.
//!
//! What a checkpoint holds is what decides the rest of the run and cannot be
//! derived again cheaply: the weights, the optimizer's state (Adam's moments
//! and step count, in burn's own format), where training stands (epoch,
//! batches of it done, steps), the numbers a summary keeps along the way and
//! any vectors a kind needs besides (the flattest step's weights, an f64
//! phase's weights and moments). The data order is not stored: it comes from
//! the task's seed, and the resuming attempt replays the shuffles of the
//! epochs before.
//!
//! The bytes are a magic tag, a JSON header, then the weights (f32, little
//! endian), the optimizer's bytes, the values and the vectors (f64, little
//! endian: bit for bit, which JSON's decimals would not promise). The header
//! names the task they belong to, so a checkpoint of another task, or a
//! damaged one, is refused with a [`CheckpointError`] rather than loaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The first bytes of every checkpoint; the digit is the format's version.
const MAGIC: &[u8; 8] = b"SWEEPCK2";

/// Where training stands at a step boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The epoch (or phase) in progress, from 1.
    pub epoch: u64,
    /// Batches of that epoch already trained.
    pub batch: u64,
    /// Optimizer steps taken in all.
    pub step: u64,
}

/// A task's training state at a step boundary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// The task it belongs to: [`fingerprint`] of its parameters.
    pub task: String,
    pub position: Position,
    /// Numbers the rest of the run needs (best-so-far values), by name.
    pub values: BTreeMap<String, f64>,
    /// The burn model's weights, flat (see [`crate::model`]); empty when
    /// training has moved on to f64 weights (kept in `vectors`).
    pub weights: Vec<f32>,
    /// The optimizer's state as burn writes it.
    pub optimizer: Vec<u8>,
    /// Other vectors the rest of the run needs, by name.
    pub vectors: BTreeMap<String, Vec<f64>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckpointError {
    #[error("the checkpoint is unreadable: {0}")]
    Unreadable(String),
    #[error("the checkpoint belongs to another task ({found}, this one is {expected})")]
    OtherTask { found: String, expected: String },
    #[error("the checkpoint's {what} holds {found} numbers; this task's needs {expected}")]
    Shape {
        what: String,
        found: usize,
        expected: usize,
    },
    #[error("the checkpoint lacks {0}")]
    Missing(String),
    #[error("the checkpoint's optimizer state is unreadable: {0}")]
    Optimizer(String),
    #[error("the optimizer's state cannot be written: {0}")]
    Unwritable(String),
}

/// What the header says; the numbers and bytes follow it.
#[derive(Serialize, Deserialize)]
struct Header {
    task: String,
    position: Position,
    weights: usize,
    optimizer: usize,
    /// The values' names, in the order their numbers follow.
    values: Vec<String>,
    /// The vectors' names and lengths, in the order they follow.
    vectors: Vec<(String, usize)>,
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            task: self.task.clone(),
            position: self.position,
            weights: self.weights.len(),
            optimizer: self.optimizer.len(),
            values: self.values.keys().cloned().collect(),
            vectors: self
                .vectors
                .iter()
                .map(|(name, vector)| (name.clone(), vector.len()))
                .collect(),
        };
        let header = serde_json::to_vec(&header).expect("a header serializes");
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + self.size());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for weight in &self.weights {
            out.extend_from_slice(&weight.to_le_bytes());
        }
        out.extend_from_slice(&self.optimizer);
        let numbers = self.values.values().chain(self.vectors.values().flatten());
        for number in numbers {
            out.extend_from_slice(&number.to_le_bytes());
        }
        out
    }

    /// The bytes of its numbers and optimizer state, about its size.
    pub fn size(&self) -> usize {
        let f64s = self.values.len() + self.vectors.values().map(Vec::len).sum::<usize>();
        self.weights.len() * 4 + self.optimizer.len() + f64s * 8
    }

    /// Reads a checkpoint for the task whose [`fingerprint`] is `task`.
    pub fn from_bytes(bytes: &[u8], task: &str) -> Result<Self, CheckpointError> {
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
        let weights = reader
            .take(header.weights.saturating_mul(4))?
            .chunks_exact(4)
            .map(|w| f32::from_le_bytes(w.try_into().expect("4 bytes")))
            .collect();
        let optimizer = reader.take(header.optimizer)?.to_vec();
        let mut values = BTreeMap::new();
        for name in header.values {
            values.insert(name, reader.f64s(1)?[0]);
        }
        let mut vectors = BTreeMap::new();
        for (name, len) in header.vectors {
            vectors.insert(name, reader.f64s(len)?);
        }
        if !reader.0.is_empty() {
            return Err(unreadable("bytes follow its end"));
        }
        Ok(Self {
            task: header.task,
            position: header.position,
            values,
            weights,
            optimizer,
            vectors,
        })
    }

    /// Its burn weights, which must number `expected`.
    pub fn weights(&self, expected: usize) -> Result<&[f32], CheckpointError> {
        shape("weights", self.weights.len(), expected)?;
        Ok(&self.weights)
    }

    /// The value `name`.
    pub fn value(&self, name: &str) -> Result<f64, CheckpointError> {
        self.values
            .get(name)
            .copied()
            .ok_or_else(|| CheckpointError::Missing(format!("the value {name:?}")))
    }

    /// Takes the vector `name`, which must hold `expected` numbers.
    pub fn take_vector(
        &mut self,
        name: &str,
        expected: usize,
    ) -> Result<Vec<f64>, CheckpointError> {
        let vector = self
            .vectors
            .remove(name)
            .ok_or_else(|| CheckpointError::Missing(format!("the vector {name:?}")))?;
        shape(name, vector.len(), expected)?;
        Ok(vector)
    }
}

fn shape(what: &str, found: usize, expected: usize) -> Result<(), CheckpointError> {
    if found == expected {
        Ok(())
    } else {
        Err(CheckpointError::Shape {
            what: what.to_string(),
            found,
            expected,
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

    fn f64s(&mut self, n: usize) -> Result<Vec<f64>, CheckpointError> {
        Ok(self
            .take(n.saturating_mul(8))?
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect())
    }
}

/// A task's name in its checkpoints: the digest of its
/// [`Identity`](sweep_spec::Identity), so that two tasks share it only if
/// they train the same thing, whatever their checkpoint interval.
pub fn fingerprint(params: &sweep_spec::TaskParams) -> String {
    params.identity().digest()
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
            values: BTreeMap::from([
                ("best".to_string(), 0.1 + 0.2),
                ("flattest_step".to_string(), 12.0),
            ]),
            weights: vec![1.5, -0.0, f32::MIN_POSITIVE, 3.0e-7],
            optimizer: vec![9, 8, 7],
            vectors: BTreeMap::from([("flattest".to_string(), vec![1.0 / 3.0, -0.0, 5e-324])]),
        }
    }

    fn bits(c: &Checkpoint) -> (Vec<u32>, Vec<u64>) {
        let f64s = c.values.values().chain(c.vectors.values().flatten());
        (
            c.weights.iter().map(|w| w.to_bits()).collect(),
            f64s.map(|v| v.to_bits()).collect(),
        )
    }

    #[test]
    fn a_checkpoint_reads_back_bit_for_bit() {
        let bytes = checkpoint().to_bytes();
        let mut read = Checkpoint::from_bytes(&bytes, "00ff").unwrap();
        assert_eq!(read, checkpoint());
        assert_eq!(bits(&read), bits(&checkpoint()), "-0.0 and subnormals stay");
        assert_eq!(read.value("best"), Ok(0.1 + 0.2));
        assert_eq!(read.take_vector("flattest", 3).unwrap()[0], 1.0 / 3.0);
    }

    #[test]
    fn a_checkpoint_of_another_task_or_shape_or_damaged_is_refused() {
        let bytes = checkpoint().to_bytes();
        assert!(matches!(
            Checkpoint::from_bytes(&bytes, "0100"),
            Err(CheckpointError::OtherTask { .. })
        ));
        let mut read = Checkpoint::from_bytes(&bytes, "00ff").unwrap();
        assert_eq!(
            read.weights(5).unwrap_err().to_string(),
            "the checkpoint's weights holds 4 numbers; this task's needs 5"
        );
        assert!(matches!(
            read.take_vector("flattest", 4),
            Err(CheckpointError::Shape { .. })
        ));
        assert!(matches!(
            read.value("other"),
            Err(CheckpointError::Missing(_))
        ));
        for cut in [0, 5, 12, 20, bytes.len() - 1] {
            let err = Checkpoint::from_bytes(&bytes[..cut], "00ff").unwrap_err();
            assert!(
                matches!(err, CheckpointError::Unreadable(_)),
                "{cut}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Checkpoint::from_bytes(&longer, "00ff").is_err());
        let mut garbled = bytes;
        garbled[13] ^= 0xff;
        assert!(Checkpoint::from_bytes(&garbled, "00ff").is_err());
    }
}
