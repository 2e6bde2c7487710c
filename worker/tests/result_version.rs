//! The guard on `RESULT_VERSION`: a tiny task of each kind that trains
//! (classify with an MLP and with a CNN, fit with its gradient-norm phase,
//! hessian) ends with these exact numbers, bit for bit, on flex.
//!
//! The result cache serves a task's numbers to any later task with the same
//! result key, and the key holds `RESULT_VERSION`, not the code. If this
//! test fails, a change made the same task end with other numbers (a
//! kernel's order of summation, an initialisation, a data order): bump
//! `RESULT_VERSION` in `worker/src/experiments/mod.rs` in the same change,
//! so that no result of the old code is served as the new code's, then pin
//! the numbers this test prints.

mod common;

use common::summary;
use sweep_spec::Summary;
use sweep_worker::experiments::RESULT_VERSION;

const CLASSIFY_MLP: &str = r#"
name = "pinned-mlp"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32, 16] }
train = { lr = 1e-3, epochs = 2, batch_size = 64 }
classify = { train_subset = 512, test_subset = 128 }
"#;

const CLASSIFY_CNN: &str = r#"
name = "pinned-cnn"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "cnn", convs = [4, 8], fc = [16] }
train = { lr = 1e-3, epochs = 1, batch_size = 128 }
classify = { train_subset = 512, test_subset = 128 }
"#;

const FIT: &str = r#"
name = "pinned-fit"
experiment = "fit"
model = { kind = "mlp", hidden = [6, 6] }
train = { optimizer = "adam", lr = 1e-2, steps = 40 }

[fit]
points = 50
record_grad_norm = true
grad_norm_phase = { steps = 20, objective = "norm", scale = 1.0, lr = 1e-3, optimizer = "sgd" }
"#;

const HESSIAN: &str = r#"
name = "pinned-hessian"
experiment = "hessian"
model = { kind = "mlp", hidden = [6, 6] }
train = { optimizer = "adam", lr = 1e-2, steps = 40 }

[fit]
points = 50
record_grad_norm = true
grad_norm_phase = { steps = 20, objective = "norm_squared", scale = 1.0, lr = 1e-3 }
"#;

/// Pinned at `RESULT_VERSION` 1: each number of each summary, as its bits.
/// Version 2 (subnormals flushed to zero) ends these tiny tasks with the
/// same bits; a longer one, whose Adam moments decay into the subnormal
/// range, can end with others.
const PINNED: &[(&str, &[(&str, u64)])] = &[
    (
        "classify-mlp",
        &[
            ("batch_size_used", 0x4050000000000000), // 6.4e1
            ("epochs", 0x4000000000000000),          // 2e0
            ("param_count", 0x40d9368000000000),     // 2.5818e4
            ("steps", 0x4030000000000000),           // 1.6e1
            ("test_acc", 0x3fd1000000000000),        // 2.65625e-1
            ("test_examples", 0x4060000000000000),   // 1.28e2
            ("test_loss", 0x3fffbae3c0000000),       // 1.9831273555755615e0
            ("train_acc", 0x3fd0200000000000),       // 2.51953125e-1
            ("train_examples", 0x4080000000000000),  // 5.12e2
            ("train_loss", 0x3fff745320000000),      // 1.9658995866775513e0
        ],
    ),
    (
        "classify-cnn",
        &[
            ("batch_size_used", 0x4060000000000000), // 1.28e2
            ("epochs", 0x3ff0000000000000),          // 1e0
            ("param_count", 0x40bcca0000000000),     // 7.37e3
            ("steps", 0x4010000000000000),           // 4e0
            ("test_acc", 0x3fc6000000000000),        // 1.71875e-1
            ("test_examples", 0x4060000000000000),   // 1.28e2
            ("test_loss", 0x4002447200000000),       // 2.2834205627441406e0
            ("train_acc", 0x3fc8800000000000),       // 1.9140625e-1
            ("train_examples", 0x4080000000000000),  // 5.12e2
            ("train_loss", 0x40023d1b20000000),      // 2.279836893081665e0
        ],
    ),
    (
        "fit",
        &[
            ("final_loss", 0x405028e35528354f),         // 6.463887528349481e1
            ("min_grad_norm", 0x4007194b384a9546),      // 2.8873505018006282e0
            ("min_grad_norm_step", 0x4024000000000000), // 1e1
            ("min_loss", 0x40501732c0000000),           // 6.436247253417969e1
            ("param_count", 0x404e800000000000),        // 6.1e1
            ("steps", 0x404e000000000000),              // 6e1
        ],
    ),
    (
        "hessian",
        &[
            ("abs_tol", 0x3eb0c6f7a0b5ed8d),               // 1e-6
            ("eigenvalues", 0x404e800000000000),           // 6.1e1
            ("final_loss", 0x405019d4e505f33a),            // 6.440361905652108e1
            ("lambda_max", 0x404b036679234e4b),            // 5.4026564733733345e1
            ("lambda_min", 0xc0041a24d660ff43),            // -2.5127655742980166e0
            ("loss_at_min_grad_norm", 0x4050c3ee6d6b8da3), // 6.706142745497941e1
            ("min_grad_norm", 0x4007194b384a9546),         // 2.8873505018006282e0
            ("min_grad_norm_step", 0x4024000000000000),    // 1e1
            ("min_loss", 0x4050170b725fec94),              // 6.436007365577308e1
            ("minimal_ratio", 0x3fe25c53ef368eb0),         // 5.737704918032787e-1
            ("negative_fraction", 0x3fd0c9714fbcda3b),     // 2.6229508196721313e-1
            ("negative_fraction_rel", 0x3fd0c9714fbcda3b), // 2.6229508196721313e-1
            ("param_count", 0x404e800000000000),           // 6.1e1
            ("positive_fraction", 0x3fd714fbcda3ac11),     // 3.6065573770491804e-1
            ("positive_fraction_rel", 0x3fd4fbcda3ac10c9), // 3.2786885245901637e-1
            ("rel_tol", 0x3eb0c6f7a0b5ed8d),               // 1e-6
            ("steps", 0x404e000000000000),                 // 6e1
            ("zero_fraction", 0x3fd82192e29f79b4),         // 3.770491803278688e-1
            ("zero_fraction_rel", 0x3fda3ac10c9714fc),     // 4.098360655737705e-1
        ],
    ),
];

/// The summary as the table above writes it.
fn bits(summary: &Summary) -> Vec<(String, u64)> {
    summary
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_bits()))
        .collect()
}

#[test]
fn tasks_of_every_kind_end_with_the_numbers_of_this_result_version() {
    let tasks = [
        ("classify-mlp", CLASSIFY_MLP),
        ("classify-cnn", CLASSIFY_CNN),
        ("fit", FIT),
        ("hessian", HESSIAN),
    ];
    let measured: Vec<(&str, Vec<(String, u64)>)> = tasks
        .iter()
        .map(|(name, spec)| (*name, bits(&summary(spec))))
        .collect();
    let pinned: Vec<(&str, Vec<(String, u64)>)> = PINNED
        .iter()
        .map(|(task, numbers)| {
            let numbers = numbers.iter().map(|(n, b)| (n.to_string(), *b)).collect();
            (*task, numbers)
        })
        .collect();
    assert!(
        measured == pinned,
        "the numbers changed at RESULT_VERSION {RESULT_VERSION}: bump RESULT_VERSION \
         (worker/src/experiments/mod.rs) in this change, then pin these:\n{}",
        table(&measured)
    );
}

/// `measured` as Rust source for `PINNED`, each number's value beside it.
fn table(measured: &[(&str, Vec<(String, u64)>)]) -> String {
    let mut out = String::from("const PINNED: &[(&str, &[(&str, u64)])] = &[\n");
    for (task, numbers) in measured {
        out += &format!("    (\n        \"{task}\",\n        &[\n");
        for (name, bits) in numbers {
            let value = f64::from_bits(*bits);
            out += &format!("            (\"{name}\", 0x{bits:016x}), // {value:e}\n");
        }
        out += "        ],\n    ),\n";
    }
    out + "];\n"
}
