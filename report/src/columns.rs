//! Task parameters as listing columns, in one place: the few that tell a
//! sweep's tasks apart (`sweep tasks`, `sweep export`), and every parameter
//! flattened, for the report's columns and the figures' labels.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sweep_spec::TaskParams;

/// The columns that tell a sweep's tasks apart.
pub const IDENTITY: [&str; 5] = ["model", "params", "batch_size", "lr", "seed"];

/// The values of [`IDENTITY`] for one task.
pub fn identity(params: &TaskParams) -> [Value; 5] {
    [
        json!(params.model_name),
        json!(params.param_count),
        json!(params.batch_size),
        json!(params.lr),
        json!(params.seed),
    ]
}

/// Parameters that never make a setting column: the seeds are what a row
/// aggregates over, and the shape is named by the model and its size.
const HIDDEN: &[&str] = &["seed", "init_seed", "model", "model_name", "param_count"];

/// Every parameter as an `a.b.c` key (`classify.epochs`) with its value.
pub fn flatten(params: &TaskParams) -> BTreeMap<String, Value> {
    let value = serde_json::to_value(params).expect("task parameters serialize");
    let mut leaves = BTreeMap::new();
    let mut stack = vec![(String::new(), &value)];
    while let Some((prefix, value)) = stack.pop() {
        match value {
            Value::Object(object) => {
                for (key, inner) in object {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    stack.push((key, inner));
                }
            }
            leaf => {
                leaves.insert(prefix, leaf.clone());
            }
        }
    }
    leaves
}

/// The parameters whose values differ between settings: the swept ones.
pub fn varying(params: &[BTreeMap<String, Value>]) -> Vec<String> {
    let keys: BTreeSet<&String> = params.iter().flat_map(|p| p.keys()).collect();
    keys.into_iter()
        .filter(|key| {
            let top = key.split('.').next().unwrap_or(key);
            !HIDDEN.contains(&top)
        })
        // Absent is not a value: an interpolation next to its trainings
        // has other keys, and those do not make columns.
        .filter(|key| {
            let mut values = params.iter().filter_map(|p| p.get(*key));
            let first = values.next();
            values.any(|v| Some(v) != first)
        })
        .cloned()
        .collect()
}

/// A short name for each setting: its model and the parameters that vary
/// between the settings ("dnn1 batch_size=64"), leaving out `skip` (the
/// parameters a figure puts on its axis).
pub fn setting_labels(params: &[&TaskParams], skip: &[&str]) -> Vec<String> {
    let flat: Vec<BTreeMap<String, Value>> = params.iter().map(|p| flatten(p)).collect();
    let varying: Vec<String> = varying(&flat)
        .into_iter()
        .filter(|key| !skip.contains(&key.split('.').next().unwrap_or(key)))
        .collect();
    params
        .iter()
        .zip(&flat)
        .map(|(params, flat)| {
            let mut label = params.model_name.clone();
            for key in &varying {
                let value = flat.get(key).map(crate::text).unwrap_or_default();
                let short = key.rsplit('.').next().unwrap_or(key);
                label = format!("{label} {short}={value}");
            }
            label.trim().to_string()
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sweep_spec::planner;

    /// The parameters of every task of a classify sweep of `model` over
    /// batch sizes 32 and 64 and `seeds` seeds, in grid order.
    pub(crate) fn planned(model: &str, seeds: usize) -> Vec<TaskParams> {
        let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
        let spec = format!(
            "name = \"t\"\nexperiment = \"classify\"\ndataset = \"mnist\"\nmodel = {model}\n\
             train = {{ lr = 1e-3, epochs = 2 }}\n[grid]\nbatch_size = [32, 64]\nseed = [{}]\n",
            seeds.join(", ")
        );
        let plan = planner::submission(&spec).unwrap().plan;
        plan.tasks.into_iter().map(|t| t.params).collect()
    }

    fn tasks() -> Vec<TaskParams> {
        planned(r#"{ kind = "mlp", hidden = [16] }"#, 2)
    }

    #[test]
    fn only_swept_parameters_vary_and_seeds_never_do() {
        let flat: Vec<_> = tasks().iter().map(flatten).collect();
        assert_eq!(flat[0]["classify.epochs"], json!(2));
        assert_eq!(varying(&flat), ["batch_size"]);
    }

    #[test]
    fn labels_name_the_model_and_what_varies() {
        let tasks = tasks();
        let refs: Vec<&TaskParams> = tasks.iter().collect();
        let labels = setting_labels(&refs, &[]);
        assert_eq!(labels[0], "mlp batch_size=32");
        assert_eq!(setting_labels(&refs, &["batch_size"])[3], "mlp");
        assert_eq!(identity(&tasks[3])[4], json!(1));
    }
}
