//! What decides a task's result, as one key: two tasks with the same key
//! train to the same numbers, so one may point at the other's results
//! instead of training.
//!
//! A key is completed in two places. At submit the coordinator hashes the
//! planned parameters into a [`TaskParams::task_key`]. Where the task is
//! about to train, the worker hashes the dataset it would read
//! ([`KeyParts::data`]) and the coordinator adds what the worker registered
//! (its backend and [`KeyParts::result_version`]) and the keys of the task's
//! dependencies, giving [`result_key`]. No part comes from the submitting
//! client.

use sha2::{Digest, Sha256};

use crate::params::TaskParams;

/// The layout of the hashed text; changing what goes into a key changes
/// this, so keys of different layouts never meet.
const LAYOUT: &str = "sweep-result-key/2";

/// SHA-256 of `bytes`, as lowercase hex.
pub fn hex_digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A digest as lowercase hex, the one way digests are written (result
/// keys, data digests, the dataset mirrors' checksums).
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl TaskParams {
    /// The hash of what the task trains: its [`Identity`](crate::Identity).
    pub fn task_key(&self) -> String {
        self.identity().digest()
    }
}

/// Everything besides the parameters that decides a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// [`TaskParams::task_key`] of the task.
    pub task_key: &'a str,
    /// The digest of the dataset's files as the worker read them; empty for
    /// kinds whose data the parameters generate (fit, hessian).
    pub data: &'a str,
    /// The worker's backend and device (`flex/cpu`, `tch/cpu`, `tch/cuda`):
    /// their floating point differs.
    pub backend: &'a str,
    /// The worker's result version: bumped whenever training code changes
    /// what a task with the same parameters produces.
    pub result_version: u32,
    /// The result keys of the task's dependencies, in the order its
    /// parameters use them (an interpolation's two endpoints).
    pub dependencies: &'a [String],
}

/// The result key of a task (SHA-256, hex).
pub fn result_key(parts: &KeyParts<'_>) -> String {
    let mut text = format!(
        "{LAYOUT}\ntask {}\ndata {}\nbackend {}\nversion {}\n",
        parts.task_key, parts.data, parts.backend, parts.result_version
    );
    for dependency in parts.dependencies {
        text.push_str("dependency ");
        text.push_str(dependency);
        text.push('\n');
    }
    hex_digest(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::plan;
    use crate::spec::SweepSpec;

    fn tasks(spec: &str) -> Vec<TaskParams> {
        let spec = SweepSpec::from_toml(spec).expect("valid spec");
        plan(&spec)
            .expect("plans")
            .tasks
            .into_iter()
            .map(|task| task.params)
            .collect()
    }

    const SPEC: &str = r#"
        name = "keys"
        experiment = "fit"
        train = { optimizer = "adam", lr = 1e-3, steps = 10 }
        fit = { target = "x_cos_x", points = 20, x_min = -1.0, x_max = 10.0 }
        [[models]]
        name = "deep"
        kind = "mlp"
        shape = [1, 1]
        [grid]
        params = [50, 100]
        seed = [0, 1]
    "#;

    #[test]
    fn every_trained_parameter_changes_the_task_key_and_how_it_runs_does_not() {
        let planned = tasks(SPEC);
        let keys: std::collections::HashSet<String> =
            planned.iter().map(TaskParams::task_key).collect();
        assert_eq!(
            keys.len(),
            planned.len(),
            "width and seed each change the key"
        );
        let mut task = planned[0].clone();
        let key = task.task_key();
        task.checkpoint_every_ms = Some(5);
        assert_eq!(task.task_key(), key);
        task.keep_checkpoint = true;
        assert_ne!(task.task_key(), key);
        let mut task = planned[0].clone();
        task.lr *= 1.0 + f64::EPSILON;
        assert_ne!(task.task_key(), key, "the last bit of a rate counts");
    }

    #[test]
    fn each_part_of_a_result_key_changes_it() {
        let deps = ["a".to_string(), "b".to_string()];
        let swapped = ["b".to_string(), "a".to_string()];
        let base = KeyParts {
            task_key: "t",
            data: "d",
            backend: "flex/cpu",
            result_version: 1,
            dependencies: &deps,
        };
        let key = result_key(&base);
        assert_eq!(result_key(&base.clone()), key);
        let variants = [
            KeyParts {
                task_key: "u",
                ..base.clone()
            },
            KeyParts {
                data: "e",
                ..base.clone()
            },
            KeyParts {
                backend: "tch/cuda",
                ..base.clone()
            },
            KeyParts {
                result_version: 2,
                ..base.clone()
            },
            KeyParts {
                dependencies: &swapped,
                ..base.clone()
            },
            KeyParts {
                dependencies: &deps[..1],
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(result_key(&variant), key, "{variant:?}");
        }
    }
}
