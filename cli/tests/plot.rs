//! Each figure kind, computed from results written through the real store
//! (a SQLite file), matches what was stored, and renders to an SVG that
//! draws every series.

use std::collections::HashMap;
use std::sync::Arc;

use sweep_coordinator::store::{self, NewArtifact, Store};
use sweep_proto::{Backend, Completion, Lease, MetricPoint, Registration, SweepId, WorkerId};
use sweep_report::figures::{self, Figure, Image};
use sweep_spec::{TaskParams, planner, weights};

struct Results {
    store: Arc<dyn Store>,
    url: String,
    worker: WorkerId,
    dir: tempfile::TempDir,
}

impl Results {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plot.db").display());
        let store = store::connect(&url).await.unwrap();
        let worker = store
            .register_worker(
                &Registration {
                    name: "w".into(),
                    host: "h".into(),
                    backend: Backend::Flex,
                    devices: Vec::new(),
                    slots: 64,
                    version: "test".into(),
                    result_version: 1,
                },
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
        Self {
            store,
            url,
            worker,
            dir,
        }
    }

    async fn submit(&self, spec: &str) -> SweepId {
        let sweep = planner::submission(spec).unwrap();
        self.store.create_sweep(&sweep).await.unwrap()
    }

    /// Every task that can run now, with its parameters.
    async fn lease(&self) -> Vec<(Lease, TaskParams)> {
        let cpu = store::Capabilities { cuda: false };
        let ttl = std::time::Duration::from_secs(60);
        let leases = self
            .store
            .lease(self.worker.into(), &cpu, 64, ttl)
            .await
            .unwrap();
        leases
            .into_iter()
            .map(|l| {
                let params = l.params.clone();
                (l, params)
            })
            .collect()
    }

    async fn record(&self, lease: &Lease, name: &str, points: &[(i64, f64)]) {
        let points: Vec<MetricPoint> = points
            .iter()
            .map(|&(step, value)| MetricPoint {
                name: name.into(),
                step,
                epoch: None,
                value,
            })
            .collect();
        self.store
            .record_metrics(&lease.to_ref(), &points)
            .await
            .unwrap();
    }

    async fn complete(&self, lease: &Lease, values: &[(&str, f64)]) {
        let completion = Completion {
            lease: lease.to_ref(),
            summary: values.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            points: Vec::new(),
        };
        let outcome = self.store.complete_many(&[completion]).await.unwrap();
        outcome.into_iter().for_each(|done| done.unwrap());
    }

    async fn figures(&self, sweep: SweepId) -> HashMap<String, Figure> {
        let reader = sweep_cli::source::database(&self.url).await.unwrap();
        let figures = figures::figures(reader.as_ref(), sweep).await.unwrap();
        // Every figure renders, and its SVG draws every series.
        for figure in &figures {
            let path = self.dir.path().join(format!("{}.svg", figure.file));
            figures::render(figure, &path, Image::Svg).unwrap();
            assert_draws(figure, &std::fs::read_to_string(&path).unwrap());
        }
        figures.into_iter().map(|f| (f.file.clone(), f)).collect()
    }
}

/// The number of points of each polyline in an SVG.
fn polylines(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|element| {
            let points = element.split("points=\"").nth(1)?.split('"').next()?;
            Some(points.split_whitespace().count())
        })
        .collect()
}

fn assert_draws(figure: &Figure, svg: &str) {
    assert!(svg.len() > 1000, "{}: a near-empty SVG", figure.file);
    assert!(svg.contains(&figure.title), "{}: no title", figure.file);
    let mut lines = polylines(svg);
    let circles = svg.matches("<circle").count();
    let points: usize = figure.series.iter().map(|s| s.points.len()).sum();
    assert!(
        circles >= points,
        "{}: {circles} markers for {points} points",
        figure.file
    );
    for series in &figure.series {
        // One series has no legend: the title and the axes name it.
        assert!(
            figure.series.len() == 1 || svg.contains(&series.name),
            "{}: no legend for {}",
            figure.file,
            series.name
        );
        // A dashed line is drawn dash by dash (render's own test checks it).
        let dashed = series.style.is_some_and(|s| s.dashed);
        if !figure.scatter && !dashed && series.points.len() > 1 {
            let found = lines.iter().position(|n| *n == series.points.len());
            let index = found.unwrap_or_else(|| {
                panic!(
                    "{}: no line with the {} points of {}",
                    figure.file,
                    series.points.len(),
                    series.name
                )
            });
            lines.remove(index);
        }
    }
}

fn series<'a>(figure: &'a Figure, name: &str) -> &'a [(f64, f64)] {
    let names: Vec<&str> = figure.series.iter().map(|s| s.name.as_str()).collect();
    &figure
        .series
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{}: no series {name:?} in {names:?}", figure.file))
        .points
}

/// A synthetic weight snapshot that moves with the epoch.
fn snapshot(count: u64, epoch: u64, base: f64) -> Vec<f32> {
    (0..count)
        .map(|i| ((i as f64 * 0.37 + epoch as f64 * base).sin()) as f32)
        .collect()
}

fn close(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(p, q)| (p.0 - q.0).abs() < 1e-9 && (p.1 - q.1).abs() < 1e-9)
}

#[tokio::test]
async fn classify_curves_batch_size_figures_and_weight_paths() {
    let results = Results::new().await;
    let sweep = results
        .submit(
            r#"
name = "plots"
experiment = "classify"
dataset = "mnist"
model = { name = "tiny", kind = "mlp", hidden = [4] }
train = { lr = 1e-3, epochs = 2 }
classify = { snapshot_every = 1, sensitivity = true }
[grid]
batch_size = [32, 128]
seed = [0, 1]
"#,
        )
        .await;
    for (lease, params) in results.lease().await {
        // Values that differ by batch size and seed, so means are checkable.
        let base = params.batch_size.unwrap() as f64 / 100.0 + params.seed as f64 / 10.0;
        results
            .record(&lease, "train_loss", &[(1, base + 1.0), (2, base + 0.5)])
            .await;
        results
            .record(&lease, "test_loss", &[(1, base + 1.2), (2, base + 0.7)])
            .await;
        results
            .record(&lease, "train_acc", &[(1, 0.5), (2, 0.6 + base / 10.0)])
            .await;
        results
            .record(&lease, "test_acc", &[(1, 0.4), (2, 0.5 + base / 10.0)])
            .await;
        results
            .record(
                &lease,
                "batch_loss",
                &[(10, base + 2.0), (20, base + 1.5), (30, base + 1.0)],
            )
            .await;
        for epoch in 1..=2u64 {
            let artifact = NewArtifact {
                name: weights::snapshot(epoch),
                encoding: weights::FLAT_F32.into(),
                data: weights::to_bytes(&snapshot(params.param_count, epoch, base)),
            };
            results
                .store
                .put_artifact(&lease.to_ref(), artifact)
                .await
                .unwrap();
        }
        let summary = [
            ("train_loss", base + 0.5),
            ("test_loss", base + 0.7),
            ("train_acc", 0.6 + base / 10.0),
            ("test_acc", 0.5 + base / 10.0),
            ("sensitivity", 1.0 + base),
            ("sensitivity_rms", 10.0 + base),
            // As if the training set had 100 examples: a batch of 128 is 100.
            (
                "batch_size_used",
                params.batch_size.unwrap().min(100) as f64,
            ),
            // Two epochs of 100 examples.
            (
                "steps",
                2.0 * (100.0 / params.batch_size.unwrap().min(100) as f64).ceil(),
            ),
        ];
        results.complete(&lease, &summary).await;
    }
    let figures = results.figures(sweep).await;

    // Seeds 0 and 1 add 0 and 0.1: the mean adds 0.05.
    let loss = &figures["loss"];
    assert_eq!(
        loss.title,
        "Loss per epoch (median over 2 seeds; band: middle half of the seeds)"
    );
    assert!(
        figures["sensitivity-vs-batch-size"]
            .title
            .ends_with("(mean over 2 seeds; bars: 95% CI of the mean)")
    );
    assert!(loss.y.log);
    assert!(close(
        series(loss, "tiny batch_size=32 train"),
        &[(1.0, 1.37), (2.0, 0.87)]
    ));
    assert!(close(
        series(loss, "tiny batch_size=128 test"),
        &[(1.0, 2.53), (2.0, 2.03)]
    ));
    assert_eq!(loss.series.len(), 4);
    // Seeds 0 and 1 at 1.32 and 1.42 (epoch 1): the quartiles between them.
    let train = loss
        .series
        .iter()
        .find(|s| s.name == "tiny batch_size=32 train");
    assert!(close(
        &train.unwrap().bounds,
        &[(1.345, 1.395), (0.845, 0.895)]
    ));
    // A setting's train and test share a colour; test is the dashed one.
    let style = |name: &str| {
        let found = loss.series.iter().find(|s| s.name == name);
        found.and_then(|s| s.style).map(|s| (s.colour, s.dashed))
    };
    assert_eq!(style("tiny batch_size=32 train"), Some((0, false)));
    assert_eq!(style("tiny batch_size=32 test"), Some((0, true)));
    assert_eq!(style("tiny batch_size=128 train"), Some((1, false)));
    assert_eq!(style("tiny batch_size=128 test"), Some((1, true)));
    let batch = &figures["batch-loss"];
    assert!(close(
        series(batch, "tiny batch_size=32"),
        &[(10.0, 2.37), (20.0, 1.87), (30.0, 1.37)]
    ));
    assert!(figures.contains_key("accuracy"));

    let sensitivity = &figures["sensitivity-vs-batch-size"];
    assert!(sensitivity.x.log);
    assert_eq!(sensitivity.x.label, "batch size (steps: 8 at 32, 2 at 100)");
    // At the batch each setting trained with: 128 asked, 100 used.
    assert!(close(
        series(sensitivity, "tiny whole test set"),
        &[(32.0, 1.37), (100.0, 2.33)]
    ));
    // 1.32 and 1.42: standard error 0.05, and t(0.975, 1) = 12.706
    // (NIST/SEMATECH e-Handbook, table 1.3.6.7.2) of them either side.
    let whole = sensitivity
        .series
        .iter()
        .find(|s| s.name == "tiny whole test set");
    let (low, high) = whole.unwrap().bounds[0];
    let half = 12.706 * 0.05;
    assert!((low - (1.37 - half)).abs() < 1e-4 && (high - (1.37 + half)).abs() < 1e-4);
    assert!(close(
        series(sensitivity, "tiny per example (rms)"),
        &[(32.0, 10.37), (100.0, 11.33)]
    ));
    let accuracy = &figures["accuracy-vs-batch-size"];
    assert!(close(
        series(accuracy, "tiny test"),
        &[(32.0, 0.537), (100.0, 0.633)]
    ));

    // One path per task, one point per snapshot noting its test accuracy;
    // each run's path length in weight space.
    let paths = &figures["pca-tiny"];
    assert_eq!(paths.series.len(), 4);
    assert!(paths.x.label.starts_with("PC1 ("), "{}", paths.x.label);
    for (batch, seed) in [(32u64, 0u64), (32, 1), (128, 0), (128, 1)] {
        let base = batch as f64 / 100.0 + seed as f64 / 10.0;
        let (first, second) = (snapshot(3190, 1, base), snapshot(3190, 2, base));
        let length: f64 = first
            .iter()
            .zip(&second)
            .map(|(a, b)| f64::from(b - a).powi(2))
            .sum::<f64>()
            .sqrt();
        let last = 0.5 + base / 10.0;
        let name = format!("seed {seed} (path {length:.3}, test acc 0.400 → {last:.3})");
        let path = paths.series.iter().find(|s| s.name == name);
        let path = path.unwrap_or_else(|| panic!("no {name:?} in {:?}", paths.series));
        assert_eq!(path.points.len(), 2);
        assert_eq!(path.notes, [String::new(), format!("{last:.3}")]);
    }
    let layer = &figures["pca-tiny-layer2"];
    assert_eq!(layer.series.len(), 4, "the second kernel's paths too");
    assert!(
        !figures.contains_key("loss-vs-params"),
        "one parameter count: no such figure"
    );
}

#[tokio::test]
async fn parameter_count_figures_follow_the_swept_width() {
    let results = Results::new().await;
    let sweep = results
        .submit(
            r#"
name = "widths"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = 1 }
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
[grid]
width = [10, 20]
seed = [0]
"#,
        )
        .await;
    let mut expected = Vec::new();
    for (lease, params) in results.lease().await {
        let acc = params.width.unwrap() as f64 / 100.0;
        expected.push((params.param_count as f64, acc));
        results
            .complete(&lease, &[("test_acc", acc), ("train_acc", acc + 0.1)])
            .await;
    }
    expected.sort_by(|a, b| a.0.total_cmp(&b.0));
    let figures = results.figures(sweep).await;
    let accuracy = &figures["accuracy-vs-params"];
    assert_eq!(accuracy.x.label, "parameters");
    assert_eq!(
        accuracy.title, "Accuracy against parameters",
        "one seed: nothing to average over"
    );
    assert!(
        close(series(accuracy, "mlp test"), &expected),
        "{accuracy:?}"
    );
}

#[tokio::test]
async fn hessian_runs_give_loss_against_minimal_ratio() {
    let results = Results::new().await;
    let sweep = results
        .submit(
            r#"
name = "ratio"
experiment = "hessian"
model = { kind = "mlp", hidden = [3] }
train = { lr = 1e-3, steps = 10, record_every = 5 }
[fit]
record_grad_norm = true
[grid]
seed = [0, 1, 2]
"#,
        )
        .await;
    let mut expected = Vec::new();
    for (lease, params) in results.lease().await {
        let seed = params.seed as f64;
        results
            .record(&lease, "loss", &[(5, 1.0 + seed), (10, 0.5 + seed)])
            .await;
        results
            .record(&lease, "grad_norm", &[(5, 0.1), (10, 0.01)])
            .await;
        let (ratio, loss) = (0.3 + seed / 10.0, 0.05 * (seed + 1.0));
        expected.push((ratio, loss));
        results
            .complete(
                &lease,
                &[("minimal_ratio", ratio), ("loss_at_min_grad_norm", loss)],
            )
            .await;
    }
    let figures = results.figures(sweep).await;
    let scatter = &figures["loss-vs-minimal-ratio"];
    assert!(scatter.scatter);
    let mut points = series(scatter, "mlp").to_vec();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(close(&points, &expected), "{points:?}");
    assert!(close(
        series(&figures["fit-loss"], "mlp"),
        &[(5.0, 2.0), (10.0, 1.5)]
    ));
    assert!(close(
        series(&figures["grad-norm"], "mlp"),
        &[(5.0, 0.1), (10.0, 0.01)]
    ));
}

#[tokio::test]
async fn interpolation_runs_give_loss_and_accuracy_along_alpha() {
    let results = Results::new().await;
    let sweep = results
        .submit(
            r#"
name = "line"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = [4] }
train = { lr = 1e-3, epochs = 1 }
[interpolate]
between = "batch_size"
alpha = { from = 0.0, to = 1.0, step = 0.5 }
[grid]
batch_size = [32, 256]
seed = [0]
"#,
        )
        .await;
    for (lease, _) in results.lease().await {
        results.complete(&lease, &[("test_acc", 0.9)]).await;
    }
    let interpolations = results.lease().await;
    assert_eq!(
        interpolations.len(),
        1,
        "unblocked once both trainings succeeded"
    );
    let (lease, _) = &interpolations[0];
    let alphas = [0.0, 0.5, 1.0];
    let steps: Vec<i64> = (0..3).collect();
    let at = |values: [f64; 3]| -> Vec<(i64, f64)> { steps.iter().copied().zip(values).collect() };
    results.record(lease, "alpha", &at(alphas)).await;
    results
        .record(lease, "train_loss", &at([0.2, 1.4, 0.3]))
        .await;
    results
        .record(lease, "test_loss", &at([0.3, 1.5, 0.4]))
        .await;
    results
        .record(lease, "train_acc", &at([0.95, 0.4, 0.93]))
        .await;
    results
        .record(lease, "test_acc", &at([0.9, 0.35, 0.91]))
        .await;
    results
        .complete(lease, &[("train_loss_barrier", 1.15)])
        .await;

    let figures = results.figures(sweep).await;
    let loss = &figures["interpolation-loss"];
    assert_eq!(loss.x.label, "α (0: batch_size=32, 1: batch_size=256)");
    assert!(close(
        series(loss, "mlp seed 0 train"),
        &[(0.0, 0.2), (0.5, 1.4), (1.0, 0.3)]
    ));
    let accuracy = &figures["interpolation-accuracy"];
    assert!(close(
        series(accuracy, "mlp seed 0 test"),
        &[(0.0, 0.9), (0.5, 0.35), (1.0, 0.91)]
    ));
}
