//! Spec parsing, validation and grid expansion, including the report's exact
//! parameter counts.

use sweep_spec::SpecError;
use sweep_spec::SweepSpec;
use sweep_spec::planner::{self, Plan};
use sweep_spec::{ExperimentKind, ModelShape};

fn plan(toml: &str) -> Result<Plan, SpecError> {
    planner::plan(&SweepSpec::from_toml(toml)?)
}

fn counts(plan: &Plan) -> Vec<(String, u64)> {
    plan.tasks
        .iter()
        .map(|t| (t.params.model_name.clone(), t.params.param_count))
        .collect()
}

/// Asserts that the spec is refused and that the message names every part.
fn refused(toml: &str, parts: &[&str]) {
    let err = plan(toml)
        .expect_err("the spec should be refused")
        .to_string();
    for part in parts {
        assert!(err.contains(part), "{err:?} should mention {part:?}");
    }
}

const DEEP_VS_SHALLOW_FIT: &str = r#"
name = "1.1"
experiment = "fit"
train = { lr = 0.005, steps = 2000 }

[[models]]
name = "deep"
kind = "mlp"
shape = [0.5, 1, 1, 1, 1, 1, 0.5]

[[models]]
name = "shallow"
kind = "mlp"
shape = [1]

[grid]
params = [571]
seed = [0, 1]
"#;

#[test]
fn the_budget_solver_gives_571_for_both_deep_and_shallow_fit_nets() {
    let plan = plan(DEEP_VS_SHALLOW_FIT).unwrap();
    assert_eq!(plan.experiment, ExperimentKind::Fit);
    assert_eq!(
        counts(&plan),
        vec![
            ("deep".into(), 571),
            ("deep".into(), 571),
            ("shallow".into(), 571),
            ("shallow".into(), 571)
        ]
    );
    let deep = &plan.tasks[0].params;
    assert_eq!(
        deep.model,
        ModelShape::Mlp {
            input: 1,
            hidden: vec![5, 10, 10, 10, 10, 10, 5],
            output: 1
        }
    );
    assert_eq!(deep.budget, Some(571));
    assert_eq!(plan.tasks[2].params.width, Some(190));
    assert_eq!(plan.tasks[1].params.seed, 1);
    assert!(
        plan.tasks[0].params.batch_size.is_none(),
        "fit is full batch"
    );
}

#[test]
fn the_budget_solver_gives_the_report_counts_for_the_mnist_nets() {
    let spec = r#"
name = "1.2"
experiment = "classify"
dataset = "mnist"
train = { lr = 1e-4, epochs = 5, batch_size = 64 }
models = [
  { name = "dnn1", kind = "mlp", shape = [0.5, 1, 1, 1, 1, 1, 0.5] },
  { name = "dnn2", kind = "mlp", shape = [1] },
]
[grid]
params = [280610]
"#;
    let plan = plan(spec).unwrap();
    assert_eq!(
        counts(&plan),
        vec![("dnn1".into(), 280_610), ("dnn2".into(), 280_645)]
    );
    assert_eq!(plan.tasks[0].params.width, Some(200));
    assert_eq!(plan.tasks[1].params.width, Some(353));
    assert_eq!(plan.tasks[0].params.batch_size, Some(64));
}

#[test]
fn a_width_sweep_gives_the_report_formula() {
    let spec = r#"
name = "3.2"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = 5 }
train = { lr = 1e-4, epochs = 9, batch_size = 64 }
[grid]
width = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
"#;
    let plan = plan(spec).unwrap();
    let got: Vec<u64> = plan.tasks.iter().map(|t| t.params.param_count).collect();
    let want: Vec<u64> = (1..=10)
        .map(|i| 10 * i)
        .map(|w| 4 * w * w + 799 * w + 10)
        .collect();
    assert_eq!(got, want);
    assert_eq!(got[0], 8_400);
    assert_eq!(got[9], 119_910);
}

#[test]
fn the_report_cnns_have_the_report_counts() {
    let spec = r#"
name = "1.3"
experiment = "classify"
dataset = "mnist"
train = { lr = 1e-4, epochs = 5, batch_size = 64 }
models = [
  { name = "cnn1", kind = "cnn", convs = [16, 36], fc = [128] },
  { name = "cnn2", kind = "cnn", convs = [16, 36, 144], fc = [128] },
]
"#;
    let plan = plan(spec).unwrap();
    assert_eq!(
        counts(&plan),
        vec![("cnn1".into(), 242_062), ("cnn2".into(), 311_902)]
    );
}

#[test]
fn the_grid_is_the_cross_product_of_its_axes() {
    let spec = r#"
name = "cross"
experiment = "classify"
dataset = "fashion-mnist"
model = { kind = "mlp", hidden = [32] }
train = { epochs = 1 }
[grid]
batch_size = [16, 64, 256]
lr = [1e-3, 1e-4]
seed = [0, 1, 2, 3]
"#;
    let plan = plan(spec).unwrap();
    assert_eq!(plan.tasks.len(), 24);
    let mut seen: Vec<(u64, String, u64)> = plan
        .tasks
        .iter()
        .map(|t| {
            (
                t.params.batch_size.unwrap(),
                t.params.lr.to_string(),
                t.params.seed,
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 24, "no grid point twice");
    assert!(plan.tasks.iter().all(|t| t.depends_on.is_empty()));
}

#[test]
fn interpolation_adds_one_task_per_pair_that_waits_for_both() {
    let spec = r#"
name = "3.3"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", shape = [0.5, 1, 1, 1, 1, 1, 0.5] }
train = { lr = 1e-4, epochs = 2 }
classify = { test_subset = 1000 }
[interpolate]
between = "batch_size"
alpha = { from = -1.0, to = 2.0, step = 0.25 }
[grid]
width = [200]
batch_size = [64, 1024]
seed = [0, 1]
"#;
    let plan = plan(spec).unwrap();
    assert_eq!(plan.tasks.len(), 6);
    for (i, task) in plan.tasks[..4].iter().enumerate() {
        let classify = task.params.experiment.classify().unwrap();
        assert!(classify.save_weights, "task {i} must keep its weights");
    }
    let interpolations = &plan.tasks[4..];
    for task in interpolations {
        assert_eq!(task.params.kind(), ExperimentKind::Interpolate);
        let [a, b] = task.depends_on[..] else {
            panic!("two dependencies expected")
        };
        let (a, b) = (&plan.tasks[a].params, &plan.tasks[b].params);
        assert_eq!(a.seed, b.seed);
        assert_eq!((a.batch_size, b.batch_size), (Some(64), Some(1024)));
        assert_ne!(
            a.init_seed, b.init_seed,
            "independent starts by default, as the report's code"
        );
        let interpolate = task.params.experiment.interpolate().unwrap();
        assert_eq!(interpolate.alpha_step, 0.25);
        assert_eq!(interpolate.test_subset, Some(1000));
    }
    let same = crate::plan(&spec.replace("[grid]", "same_init = true\n[grid]")).unwrap();
    for task in &same.tasks[4..] {
        let [a, b] = task.depends_on[..] else {
            panic!("two dependencies expected")
        };
        assert_eq!(
            same.tasks[a].params.init_seed,
            same.tasks[b].params.init_seed
        );
    }
    assert_ne!(interpolations[0].depends_on, interpolations[1].depends_on);
}

const VALID: &str = r#"
name = "ok"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = [10] }
train = { lr = 1e-4, epochs = 1, batch_size = 64 }
"#;

#[test]
fn the_valid_base_spec_plans() {
    assert_eq!(plan(VALID).unwrap().tasks.len(), 1);
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    refused(&format!("colour = \"red\"\n{VALID}"), &["colour"]);
    refused(
        &VALID.replace("epochs = 1", "epochs = 1, momentun = 0.9"),
        &["momentun"],
    );
}

#[test]
fn a_wrong_type_is_refused_with_the_field_and_value() {
    refused(
        &VALID.replace("lr = 1e-4", "lr = \"fast\""),
        &["lr", "fast"],
    );
}

#[test]
fn an_empty_axis_is_refused() {
    refused(&format!("{VALID}[grid]\nseed = []\n"), &["grid.seed", "[]"]);
}

#[test]
fn a_zero_batch_size_is_refused() {
    let spec = VALID.replace(", batch_size = 64", "");
    refused(
        &format!("{spec}[grid]\nbatch_size = [64, 0]\n"),
        &["grid.batch_size", "= 0"],
    );
    refused(
        &VALID.replace("batch_size = 64", "batch_size = 0"),
        &["train.batch_size", "= 0"],
    );
}

#[test]
fn the_checkpoint_interval_is_a_duration() {
    let every = |toml: &str| plan(toml).unwrap().tasks[0].params.checkpoint_every_ms;
    assert_eq!(every(VALID), None, "the worker's default");
    let with = |value: &str| {
        VALID.replace(
            "epochs = 1",
            &format!("epochs = 1, checkpoint_every = {value}"),
        )
    };
    assert_eq!(every(&with("\"2m30s\"")), Some(150_000));
    assert_eq!(every(&with("\"0s\"")), Some(0));
    refused(
        &with("\"10 minutes\""),
        &["train.checkpoint_every", "10 minutes", "10m"],
    );
    refused(&with("600"), &["checkpoint_every"]);
}

#[test]
fn keeping_the_final_checkpoint_is_asked_for_and_kept_out_of_stored_json_otherwise() {
    let params = |toml: &str| plan(toml).unwrap().tasks[0].params.clone();
    let plain = params(VALID);
    assert!(!plain.keep_checkpoint);
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("keep_checkpoint"), "{json}");
    let kept = params(&VALID.replace("epochs = 1", "epochs = 1, keep_checkpoint = true"));
    assert!(kept.keep_checkpoint);
    refused(
        &VALID.replace("epochs = 1", "epochs = 1, keep_checkpoint = \"yes\""),
        &["keep_checkpoint"],
    );
}

#[test]
fn a_negative_learning_rate_is_refused() {
    refused(
        &VALID.replace("lr = 1e-4", "lr = -0.001"),
        &["train.lr", "-0.001"],
    );
}

#[test]
fn a_budget_no_width_can_meet_is_refused() {
    let spec = VALID.replace("hidden = [10]", "hidden = 3");
    refused(
        &format!("{spec}[grid]\nparams = [5]\n"),
        &["grid.params", "= 5", "width 1"],
    );
}

#[test]
fn other_mistakes_name_their_field() {
    let cases: [(&str, &[&str]); 9] = [
        (
            &VALID.replace("classify", "regress"),
            &["experiment", "regress"],
        ),
        (
            &VALID.replace("dataset = \"mnist\"\n", ""),
            &["dataset", "missing"],
        ),
        (&VALID.replace("\"mlp\"", "\"rnn\""), &["model.kind", "rnn"]),
        (
            &VALID.replace("hidden = [10]", "hidden = [10, -3]"),
            &["model.hidden"],
        ),
        (
            &VALID.replace("hidden = [10]", "hidden = 5"),
            &["grid.width", "missing"],
        ),
        (
            &VALID.replace("epochs = 1", "epochs = 0"),
            &["train.epochs", "= 0"],
        ),
        (
            &format!("max_attempts = 0\n{VALID}"),
            &["max_attempts", "= 0"],
        ),
        (
            &format!("requires = \"tpu\"\n{VALID}"),
            &["requires", "tpu"],
        ),
        (
            &format!(
                "{}[grid]\nseed = [{}]\nlr = [{}]\n",
                VALID.replace("lr = 1e-4, ", ""),
                vec!["1"; 2_000].join(","),
                vec!["1e-4"; 1_000].join(",")
            ),
            &["grid", "1000000"],
        ),
    ];
    for (spec, parts) in cases {
        refused(spec, parts);
    }
}

#[test]
fn names_and_paths_are_plain_text_of_a_sane_length() {
    let cases: [(String, &[&str]); 5] = [
        (
            VALID.replace("name = \"ok\"", "name = \"a\\u0000b\""),
            &["name = \"a\\0b\"", "control characters"],
        ),
        (
            VALID.replace("name = \"ok\"", &format!("name = \"{}\"", "n".repeat(201))),
            &["name = ", "201 characters"],
        ),
        (
            VALID.replace("\"mnist\"", "\"mni\\u0007st\""),
            &["dataset", "control characters"],
        ),
        (
            VALID.replace("kind = \"mlp\"", "name = \"deep\\tnet\", kind = \"mlp\""),
            &["model.name", "control characters"],
        ),
        (
            format!("description = \"a\\u0000\"\n{VALID}"),
            &["description", "control characters"],
        ),
    ];
    for (spec, parts) in cases {
        refused(&spec, parts);
    }
    let described = format!("description = \"\"\"\ntwo\nlines\"\"\"\n{VALID}");
    assert!(plan(&described).is_ok(), "a description may have lines");
}

#[test]
fn a_model_no_worker_could_hold_is_refused() {
    // The typo that once queued 4.4e12 parameters.
    let absurd = VALID.replace("hidden = [10]", "hidden = 5") + "[grid]\nwidth = [1048576]\n";
    let w: u64 = 1 << 20;
    let count = format!("{} parameters", 4 * w * w + 799 * w + 10);
    refused(&absurd, &["grid.width = 1048576", &count, "1000000000"]);
    let fixed = VALID.replace("hidden = [10]", "hidden = [1000000, 1000000]");
    refused(&fixed, &["model = (its layers)", "parameters"]);
    // The limit is the coordinator's to set.
    let spec = SweepSpec::from_toml(VALID).unwrap();
    let tight = planner::Limits { max_params: 1000 };
    let err = planner::plan_within(&spec, &tight).unwrap_err().to_string();
    assert!(err.contains("7960 parameters, more than the 1000"), "{err}");
    assert!(planner::plan_within(&spec, &planner::Limits { max_params: 7960 }).is_ok());
}

#[test]
fn fit_trains_on_the_full_batch() {
    let spec = DEEP_VS_SHALLOW_FIT.replace("steps = 2000", "steps = 2000, batch_size = 32");
    refused(&spec, &["train.batch_size", "full batch"]);
}

#[test]
fn submission_keeps_the_spec_verbatim_and_as_json() {
    let sweep = planner::submission(VALID).unwrap();
    assert_eq!(sweep.spec_toml, VALID);
    let json: serde_json::Value = serde_json::from_str(&sweep.spec_json).unwrap();
    assert_eq!(json["name"], "ok");
    assert_eq!(json["train"]["epochs"], 1);
    assert_eq!(sweep.spec_key, planner::spec_key(VALID));
}

#[test]
fn the_spec_key_is_a_stable_hash_of_the_exact_text() {
    let key = planner::spec_key("name = \"a\"\n");
    // SHA-256 (as `sha256sum` gives it), the same on every machine and release.
    assert_eq!(
        key,
        "368c8ca93e1105e439fd6eb88181582ff854556d1c59ecbf4148120b2933e3e1"
    );
    assert_ne!(planner::spec_key("name = \"a\" \n"), key);
}

#[test]
fn the_hessian_counts_zero_eigenvalues_by_both_tolerances() {
    let hessian = DEEP_VS_SHALLOW_FIT.replace("experiment = \"fit\"", "experiment = \"hessian\"");
    let tolerances = plan_of(&hessian);
    assert_eq!((tolerances.abs_tol, tolerances.rel_tol), (1e-6, 1e-6));
    let given = format!("{hessian}\n[hessian]\nabs_tol = 1e-8\nrel_tol = 1e-4\n");
    let tolerances = plan_of(&given);
    assert_eq!((tolerances.abs_tol, tolerances.rel_tol), (1e-8, 1e-4));
    refused(
        &format!("{hessian}\n[hessian]\nabs_tol = -1.0\n"),
        &["hessian.abs_tol", "-1"],
    );
    // The old single tolerance was relative; it is named now.
    refused(
        &format!("{hessian}\n[hessian]\ntol = 1e-6\n"),
        &["tol", "rel_tol"],
    );
}

fn plan_of(toml: &str) -> sweep_spec::params::HessianParams {
    match &plan(toml).unwrap().tasks[0].params.experiment {
        sweep_spec::Experiment::Hessian { hessian, .. } => hessian.clone(),
        other => panic!("a hessian task expected: {other:?}"),
    }
}

#[test]
fn tasks_stored_with_the_old_tolerance_still_read() {
    let old: sweep_spec::params::HessianParams =
        serde_json::from_str(r#"{ "tol": 1e-5 }"#).unwrap();
    assert_eq!((old.abs_tol, old.rel_tol), (1e-6, 1e-5));
}

#[test]
fn an_interpolation_names_the_two_settings_it_runs_between() {
    let spec = r#"
name = "ends"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = [8] }
train = { epochs = 1, batch_size = 64 }
[interpolate]
between = "lr"
[grid]
lr = [1e-3, 1e-2]
seed = [0]
"#;
    let plan = plan(spec).unwrap();
    let interpolation = plan.tasks[2].params.experiment.interpolate().unwrap();
    assert_eq!(
        interpolation.ends,
        Some(["lr=0.001".to_string(), "lr=0.01".to_string()])
    );
    // Tasks stored before the ends were recorded still read.
    let old: sweep_spec::params::InterpolateParams = serde_json::from_str(
        r#"{ "alpha_from": 0.0, "alpha_to": 1.0, "alpha_step": 0.5, "between": "lr" }"#,
    )
    .unwrap();
    assert_eq!(old.ends, None);
}

/// 1.1 with adaptive seeds instead of `seed = [0, 1]` (a top-level key,
/// so before the tables).
fn adaptive_fit(seeds: &str) -> String {
    seeds.to_string() + &DEEP_VS_SHALLOW_FIT.replace("seed = [0, 1]\n", "")
}

const ADAPTIVE: &str = "seeds = { start = 3, step = 2, max = 9, until = { compare = \"model\", resolution = 0.01 } }\n";

#[test]
fn adaptive_seeds_plan_the_first_seeds_of_each_setting_and_keep_the_rule() {
    let plan = plan(&adaptive_fit(ADAPTIVE)).unwrap();
    let seeds: Vec<(String, u64)> = (plan.tasks.iter())
        .map(|t| (t.params.model_name.clone(), t.params.seed))
        .collect();
    let expected: Vec<(String, u64)> = ["deep", "shallow"]
        .iter()
        .flat_map(|m| (0..3).map(move |s| (m.to_string(), s)))
        .collect();
    assert_eq!(seeds, expected);
    assert_eq!(
        plan.adaptive,
        Some(planner::Adaptive {
            start: 3,
            step: 2,
            max: 9,
            compare: "model".into(),
            metric: "final_loss".into(),
            resolution: 0.01,
            alpha: 0.05,
        })
    );
    let spec = SweepSpec::from_toml(&adaptive_fit(ADAPTIVE)).unwrap();
    let more = planner::plan_with_seeds(&spec, 5, &Default::default()).unwrap();
    assert_eq!(more.tasks.len(), 10);
    assert!(more.adaptive.is_none());
    // The first seeds are the same tasks, so a round adds only the new ones.
    let first: Vec<_> = plan.tasks.iter().map(|t| t.params.identity()).collect();
    let kept = (more.tasks.iter()).filter(|t| first.contains(&t.params.identity()));
    assert_eq!(kept.count(), 6);
}

#[test]
fn bad_adaptive_seeds_are_refused_by_field_and_value() {
    let with = |seeds: &str| adaptive_fit(seeds);
    refused(
        &with("seeds = { start = 3, step = 2, max = 2, until = { compare = \"model\" } }\n"),
        &["seeds.max = 2", "seeds.start (3)"],
    );
    refused(
        &with("seeds = { start = 1, step = 2, max = 9, until = { compare = \"model\" } }\n"),
        &["seeds.start = 1", "two seeds"],
    );
    refused(
        &with("seeds = { start = 3, step = 0, max = 9, until = { compare = \"model\" } }\n"),
        &["seeds.step = 0"],
    );
    refused(
        &with("seeds = { start = 3, step = 2, max = 9, until = { compare = \"lr\" } }\n"),
        &["seeds.until.compare = \"lr\"", "1 value"],
    );
    refused(
        &with("seeds = { start = 3, step = 2, max = 9, until = { compare = \"depth\" } }\n"),
        &["seeds.until.compare = \"depth\"", "expected model"],
    );
    refused(
        &with(
            "seeds = { start = 3, step = 2, max = 9, until = { compare = \"model\", metric = \"test_acc\" } }\n",
        ),
        &["seeds.until.metric = \"test_acc\"", "final_loss"],
    );
    refused(
        &with(
            "seeds = { start = 3, step = 2, max = 9, until = { compare = \"model\", alpha = 1.5 } }\n",
        ),
        &["seeds.until.alpha = 1.5"],
    );
    refused(
        &format!("{ADAPTIVE}{DEEP_VS_SHALLOW_FIT}"),
        &["grid.seed", "not both"],
    );
}
