//! A task's identity: what it trains, without what only says how it runs,
//! in one canonical text. The keys that say "the same task" derive from it
//! ([`TaskParams::task_key`] for the result cache, the checkpoint's
//! fingerprint, the match of an extended sweep's tasks), and so does the
//! key that says "the same setting" ([`TaskParams::setting_key`]: the
//! identity without the seeds), so that they agree with each other and
//! with no layout of the Rust types: object keys are sorted, numbers are
//! written one way (integers as integers, other numbers in Rust's shortest
//! form that reads back to the same f64), and a field added later with its
//! default left out of the JSON leaves every older identity as it was.

use std::fmt::Write;

use serde_json::Value;

use crate::params::TaskParams;
use crate::result_key::hex_digest;

/// The parameters that say how a task runs, not what it trains: a task
/// resumed from a checkpoint ends bit for bit as one that ran without a
/// stop, whatever its checkpoint interval. (`keep_checkpoint` is not one:
/// it decides which artifacts the result has.)
pub const RUN_ONLY: &[&str] = &["checkpoint_every_ms"];

/// What a task's seeds vary: tasks that differ only in these repeat one
/// swept setting.
pub const SEEDS: &[&str] = &["seed", "init_seed"];

/// The version of this encoding, kept beside the keys a database stores
/// (`tasks.key_layout`), so that keys of an older layout are rewritten
/// rather than compared with these. Layout 1 was serde's field order.
pub const KEY_LAYOUT: i64 = 2;

/// The canonical text of what a task trains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity(String);

impl TaskParams {
    pub fn identity(&self) -> Identity {
        Identity::of(self)
    }

    /// What the task's seeds repeat: its identity without the seeds. Tasks
    /// with the same key are repetitions of one swept setting, which
    /// reports aggregate over.
    pub fn setting_key(&self) -> String {
        without(self, &[RUN_ONLY, SEEDS].concat())
    }
}

impl Identity {
    pub fn of(params: &TaskParams) -> Self {
        Self(without(params, RUN_ONLY))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the text, as lowercase hex.
    pub fn digest(&self) -> String {
        hex_digest(self.0.as_bytes())
    }
}

/// The canonical text of `params` without the top-level `fields`.
fn without(params: &TaskParams, fields: &[&str]) -> String {
    let mut value = serde_json::to_value(params).expect("task parameters serialize");
    if let Value::Object(object) = &mut value {
        for field in fields {
            object.remove(*field);
        }
    }
    let mut text = String::new();
    canonical(&value, &mut text);
    text
}

/// `value` as JSON with sorted keys, no spaces and one form per number.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(key, out);
                out.push(':');
                canonical(&fields[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::String(text) => string(text, out),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(integer), _, _) => write!(out, "{integer}").expect("writing to a string"),
            (_, Some(integer), _) => write!(out, "{integer}").expect("writing to a string"),
            (_, _, Some(float)) => write!(out, "{float:?}").expect("writing to a string"),
            _ => out.push_str(&number.to_string()),
        },
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

fn string(text: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(text).expect("a string serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::plan;
    use crate::spec::SweepSpec;

    fn first_task(spec: &str) -> TaskParams {
        let spec = SweepSpec::from_toml(spec).expect("valid spec");
        plan(&spec).expect("plans").tasks.remove(0).params
    }

    const SPEC: &str = r#"
        name = "identity"
        experiment = "classify"
        dataset = "mnist"
        model = { name = "dnn", kind = "mlp", hidden = [16, 8] }
        train = { optimizer = "adam", lr = 1e-4, epochs = 2, batch_size = 64 }
        classify = { test_subset = 500 }
        [grid]
        seed = [3]
    "#;

    /// The bytes every task key, checkpoint fingerprint and extend match
    /// derive from. If this fails, the identity of every stored task
    /// changed: cached results are no longer found, checkpoints taken
    /// before are refused and `sweep extend` adds every task again. Change
    /// it only on purpose, with the result key's layout.
    #[test]
    fn a_tasks_identity_is_pinned_to_its_bytes() {
        let params = first_task(SPEC);
        let identity = Identity::of(&params);
        assert_eq!(
            identity.as_str(),
            r#"{"batch_size":64,"classify":{"epochs":2,"record_every":100,"save_weights":false,"sensitivity":false,"shuffle_labels":false,"test_subset":500},"dataset":"mnist","experiment":"classify","init_seed":3,"lr":0.0001,"model":{"hidden":[16,8],"input":784,"kind":"mlp","output":10},"model_name":"dnn","optimizer":{"epsilon":1e-8,"name":"adam"},"param_count":12786,"seed":3}"#
        );
        assert_eq!(
            identity.digest(),
            "a167fbe5abd250dd5c02fbc96e7160ec70bcacc8c7e27d040450ba3c3e348e8b"
        );
    }

    #[test]
    fn how_a_task_runs_is_not_part_of_what_it_is() {
        let params = first_task(SPEC);
        let identity = Identity::of(&params);
        let run_differently = TaskParams {
            checkpoint_every_ms: Some(1000),
            ..params.clone()
        };
        assert_eq!(Identity::of(&run_differently), identity);
        let keeping = TaskParams {
            keep_checkpoint: true,
            ..params.clone()
        };
        assert_ne!(Identity::of(&keeping), identity, "its artifacts differ");
        let nudged = TaskParams {
            lr: params.lr * (1.0 + f64::EPSILON),
            ..params
        };
        assert_ne!(Identity::of(&nudged), identity, "the last bit of a rate");
    }

    #[test]
    fn the_setting_key_ignores_only_the_seeds_and_how_a_task_runs() {
        let params = first_task(SPEC);
        let reseeded = TaskParams {
            seed: 9,
            init_seed: 11,
            checkpoint_every_ms: Some(1000),
            ..params.clone()
        };
        assert_eq!(params.setting_key(), reseeded.setting_key());
        assert!(
            !params.setting_key().contains("seed"),
            "{}",
            params.setting_key()
        );
        let larger_batch = TaskParams {
            batch_size: Some(128),
            ..params.clone()
        };
        assert_ne!(params.setting_key(), larger_batch.setting_key());
    }

    #[test]
    fn keys_are_sorted_and_numbers_written_one_way() {
        let value = serde_json::json!({"b": [1, -2, 0.5, 1e-8, 2.0], "a": {"d": true, "c": null}});
        let mut text = String::new();
        canonical(&value, &mut text);
        assert_eq!(text, r#"{"a":{"c":null,"d":true},"b":[1,-2,0.5,1e-8,2.0]}"#);
    }
}
