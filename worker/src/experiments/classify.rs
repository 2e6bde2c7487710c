//! `classify`: minibatch training on an MNIST-format dataset, with the
//! running minibatch loss and accuracy every k steps and full train and test
//! evaluations after every epoch.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use sweep_spec::metric;
use sweep_spec::params::ClassifyParams;
use sweep_spec::summary::{self, Summary};
use sweep_spec::{ModelShape, TaskParams, weights};

use super::{Context, TaskError, burn_state, check_finite};
use crate::checkpoint::Position;
use crate::data::{self, Split};
use crate::model::Net;
use crate::rng::Rng;

/// Examples per forward pass when evaluating.
const EVAL_BATCH: usize = 1000;

/// A minibatch as tensors on `device`.
fn batch(split: &Split, indices: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let mut pixels = Vec::with_capacity(indices.len() * split.width);
    for &i in indices {
        pixels.extend_from_slice(&split.pixels[i * split.width..(i + 1) * split.width]);
    }
    let labels: Vec<i64> = indices
        .iter()
        .map(|&i| i64::from(split.labels[i]))
        .collect();
    (
        Tensor::from_data(
            TensorData::new(pixels, [indices.len(), split.width]),
            device,
        ),
        Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
    )
}

/// How many of the predictions (argmax of the logits) hit the labels.
fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> usize {
    let predicted: Tensor<1, Int> = logits.argmax(1).flatten(0, 1);
    predicted.equal(labels).int().sum().into_scalar::<i64>() as usize
}

/// Mean loss and accuracy of `model` over a whole split.
pub(crate) fn evaluate(model: &Net, split: &Split, device: &Device) -> (f64, f64) {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut hits) = (0.0, 0);
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        let (x, y) = batch(split, chunk, device);
        let logits = model.forward(x);
        let loss = loss_fn
            .forward(logits.clone(), y.clone())
            .into_scalar::<f32>();
        loss_sum += f64::from(loss) * chunk.len() as f64;
        hits += correct(logits, y);
    }
    let n = split.len().max(1) as f64;
    (loss_sum / n, hits as f64 / n)
}

/// The task's dataset: both splits cut to their subsets, the training labels
/// shuffled by `shuffle_seed` when given (3.1).
pub(crate) fn dataset(
    name: &str,
    subsets: (Option<u64>, Option<u64>),
    shuffle_seed: Option<u64>,
    ctx: &Context<'_>,
) -> Result<data::Dataset, TaskError> {
    let mut data = data::load(name, ctx.data_dir.as_deref())?;
    data.train.truncate(subsets.0);
    data.test.truncate(subsets.1);
    if let Some(seed) = shuffle_seed {
        data.train.shuffle_labels(seed);
    }
    if data.train.is_empty() || data.test.is_empty() {
        return Err(TaskError::InvalidParams(format!(
            "dataset {name:?} has an empty split"
        )));
    }
    Ok(data)
}

pub fn run(
    params: &TaskParams,
    name: &str,
    classify: &ClassifyParams,
    ctx: &Context<'_>,
) -> Result<Summary, TaskError> {
    let subsets = (classify.train_subset, classify.test_subset);
    let data = dataset(
        name,
        subsets,
        classify.shuffle_labels.then_some(params.seed),
        ctx,
    )?;
    let train_device = ctx.device.clone().autodiff();
    let eval_device = ctx.device.clone();
    let batch_size = params.batch_size.unwrap_or(data.train.len() as u64).max(1) as usize;
    let start = ctx.start(params, &train_device);
    let (mut model, mut optim) = (start.model, start.optim);
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let mut shuffler = Rng::derived(params.seed, 0x0bde5);
    // Each epoch shuffles the order the one before left: a resumed run
    // replays the shuffles of the epochs it does not train again.
    let first = start.position.epoch.max(1);
    for _ in 1..first {
        shuffler.shuffle(&mut order);
    }
    let mut step = start.position.step;
    let mut last = ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN));
    for epoch in first..=classify.epochs {
        shuffler.shuffle(&mut order);
        let done = if epoch == first {
            start.position.batch
        } else {
            0
        };
        for (index, chunk) in order.chunks(batch_size).enumerate().skip(done as usize) {
            // Before the batch rather than after it: a stop that comes
            // during an evaluation still gets its checkpoint.
            let position = Position {
                epoch,
                batch: index as u64,
                step,
            };
            ctx.checkpoint(params, position, || burn_state(&model, &optim));
            ctx.check_stop()?;
            step += 1;
            let (x, y) = batch(&data.train, chunk, &train_device);
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            if step.is_multiple_of(classify.record_every) {
                let value = f64::from(loss.clone().into_scalar::<f32>());
                check_finite(step, value)?;
                let accuracy = correct(logits, y) as f64 / chunk.len() as f64;
                ctx.sink
                    .metric(metric::BATCH_LOSS, step as i64, Some(epoch as i64), value);
                ctx.sink
                    .metric(metric::BATCH_ACC, step as i64, Some(epoch as i64), accuracy);
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(params.lr, model, grads);
        }
        let inference = model.valid();
        let train = evaluate(&inference, &data.train, &eval_device);
        let test = evaluate(&inference, &data.test, &eval_device);
        check_finite(step, train.0)?;
        for (name, value) in [
            (metric::TRAIN_LOSS, train.0),
            (metric::TRAIN_ACC, train.1),
            (metric::TEST_LOSS, test.0),
            (metric::TEST_ACC, test.1),
        ] {
            ctx.sink
                .metric(name, epoch as i64, Some(epoch as i64), value);
        }
        if classify
            .snapshot_every
            .is_some_and(|every| epoch % every == 0)
        {
            let name = weights::snapshot(epoch);
            let bytes = weights::to_bytes(&inference.flat());
            ctx.sink.artifact(&name, weights::FLAT_F32, bytes);
        }
        last = (train, test);
    }
    let position = Position {
        epoch: classify.epochs,
        batch: order.len().div_ceil(batch_size) as u64,
        step,
    };
    ctx.keep(params, position, || burn_state(&model, &optim));
    let final_weights = model.valid().flat();
    let mut out = Summary::new();
    if classify.sensitivity {
        let measured = sensitivity(&params.model, &final_weights, &data.test, &train_device);
        for (name, value) in [
            (summary::SENSITIVITY, measured.whole),
            (summary::SENSITIVITY_PER_SAMPLE, measured.mean),
            (summary::SENSITIVITY_RMS, measured.rms),
        ] {
            ctx.sink.metric(name, step as i64, None, value);
            out.set(name, value);
        }
    }
    if classify.save_weights {
        let bytes = weights::to_bytes(&final_weights);
        ctx.sink.artifact(weights::FINAL, weights::FLAT_F32, bytes);
    }
    let ((train_loss, train_acc), (test_loss, test_acc)) = last;
    out.set(summary::TRAIN_LOSS, train_loss)
        .set(summary::TRAIN_ACC, train_acc)
        .set(summary::TEST_LOSS, test_loss)
        .set(summary::TEST_ACC, test_acc)
        .set(summary::STEPS, step as f64)
        .set(
            summary::BATCH_SIZE_USED,
            batch_size.min(data.train.len()) as f64,
        )
        .set(summary::EPOCHS, classify.epochs as f64)
        .set(summary::PARAM_COUNT, params.param_count as f64)
        .set(summary::TRAIN_EXAMPLES, data.train.len() as f64)
        .set(summary::TEST_EXAMPLES, data.test.len() as f64);
    Ok(out)
}

/// The sensitivity of 3.4, three ways.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sensitivity {
    /// ‖∂L/∂X‖_F, L the mean test loss: the report's number; it shrinks
    /// like 1/√n with the test-set size n.
    pub whole: f64,
    /// The mean over test examples of ‖∂ℓᵢ/∂xᵢ‖.
    pub mean: f64,
    /// The root mean square of ‖∂ℓᵢ/∂xᵢ‖, which is `whole`·√n: free of the
    /// test-set size.
    pub rms: f64,
}

/// The gradient of each test example's own loss with respect to its input.
pub fn sensitivity(
    shape: &ModelShape,
    weights: &[f32],
    split: &Split,
    device: &Device,
) -> Sensitivity {
    let model = Net::new(shape, weights, device);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut squares, mut per_sample) = (0.0, 0.0);
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        let (x, y) = batch(split, chunk, device);
        let x = x.require_grad();
        // The mean over the chunk times its size: the summed loss, whose
        // gradient row i is example i's own loss gradient.
        let summed = loss_fn.forward(model.forward(x.clone()), y) * chunk.len() as f32;
        let grads = summed.backward();
        let Some(grad) = x.grad(&grads) else { continue };
        for row in grad
            .into_data()
            .iter::<f32>()
            .collect::<Vec<_>>()
            .chunks(split.width)
        {
            let row_squares: f64 = row.iter().map(|g| f64::from(*g).powi(2)).sum();
            squares += row_squares;
            per_sample += row_squares.sqrt();
        }
    }
    let n = split.len().max(1) as f64;
    Sensitivity {
        whole: squares.sqrt() / n,
        mean: per_sample / n,
        rms: (squares / n).sqrt(),
    }
}
