//! Every spec shipped under `sweeps/` plans, and the full-scale ones describe
//! the report's experiments exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sweep_spec::planner::{self, Submission};

use sweep_spec::ExperimentKind;

fn shipped(scale: &str) -> BTreeMap<String, Submission> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sweeps")
        .join(scale);
    let mut sweeps = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let sweep =
            planner::submission(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        // An experiment's variant with adaptive seeds (1.1's) plans, which
        // is all this asks of it; the experiment's own spec is the one kept.
        if sweep.plan.adaptive.is_some() {
            continue;
        }
        let id = path.file_name().unwrap().to_string_lossy()[..3].to_string();
        assert!(!sweeps.contains_key(&id), "two {id} specs in {scale}");
        sweeps.insert(id, sweep);
    }
    sweeps
}

fn models(sweep: &Submission) -> BTreeSet<(String, u64)> {
    sweep
        .plan
        .tasks
        .iter()
        .map(|t| (t.params.model_name.clone(), t.params.param_count))
        .collect()
}

const IDS: [&str; 10] = [
    "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "3.1", "3.2", "3.3", "3.4",
];

#[test]
fn every_experiment_has_a_full_and_a_quick_spec_with_the_same_models() {
    let full = shipped("full");
    let quick = shipped("quick");
    assert_eq!(full.keys().collect::<Vec<_>>(), IDS);
    assert_eq!(quick.keys().collect::<Vec<_>>(), IDS);
    for id in IDS {
        assert_eq!(full[id].plan.experiment, quick[id].plan.experiment, "{id}");
        let (full_models, quick_models) = (models(&full[id]), models(&quick[id]));
        assert!(
            quick_models.is_subset(&full_models),
            "{id}: {quick_models:?} vs {full_models:?}"
        );
    }
}

#[test]
fn the_full_specs_match_the_report() {
    let full = shipped("full");
    let counts = |id: &str| -> Vec<u64> {
        models(&full[id])
            .into_iter()
            .map(|(_, count)| count)
            .collect()
    };
    assert_eq!(counts("1.1"), vec![571, 571]);
    assert_eq!(counts("1.2"), vec![280_610, 280_645]);
    assert_eq!(counts("1.3"), vec![242_062, 311_902]);
    for id in ["2.1", "3.1", "3.3", "3.4"] {
        assert_eq!(counts(id), vec![280_610], "{id}");
    }
    assert_eq!(counts("2.2"), vec![251]);
    assert_eq!(counts("2.3"), vec![251]);
    let widths: Vec<u64> = (1..=10)
        .map(|i| 10 * i)
        .map(|w| 4 * w * w + 799 * w + 10)
        .collect();
    let mut got = counts("3.2");
    got.sort();
    assert_eq!(got, widths);

    let tasks = |id: &str| full[id].plan.tasks.len();
    assert_eq!(tasks("1.1"), 40, "two models, twenty seeds");
    assert_eq!(tasks("2.1"), 8);
    assert_eq!(tasks("2.3"), 100);
    assert_eq!(tasks("3.2"), 30);
    assert_eq!(tasks("3.4"), 5);
    let interpolation = &full["3.3"].plan.tasks;
    assert_eq!(interpolation.len(), 3);
    assert_eq!(interpolation[2].params.kind(), ExperimentKind::Interpolate);
    assert_eq!(interpolation[2].depends_on, vec![0, 1]);
    let epochs = |id: &str| {
        full[id].plan.tasks[0]
            .params
            .experiment
            .classify()
            .unwrap()
            .epochs
    };
    assert_eq!(
        (epochs("1.2"), epochs("2.1"), epochs("3.1"), epochs("3.2")),
        (5, 21, 233, 9)
    );
    let fit = full["2.3"].plan.tasks[0]
        .params
        .experiment
        .fit()
        .cloned()
        .unwrap();
    assert_eq!(fit.steps, 30_000);
    assert_eq!(fit.grad_norm_phase.unwrap().steps, 5_000);
}
