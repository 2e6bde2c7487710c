//! Whatever the text, the parser and the planner never panic, and every
//! refusal is one line that says where the mistake is.

use proptest::prelude::*;
use sweep_spec::planner;

/// One line that starts as every spec error does and is short enough to
/// read (and to travel in a gRPC header).
fn clear(message: &str) -> bool {
    message.starts_with("invalid spec: ") && !message.contains('\n') && message.len() < 1024
}

/// A float as TOML writes it (`nan`, `inf`, `1e-5`).
fn toml_float(value: f64) -> String {
    if value.is_nan() {
        "nan".into()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{value:e}")
    }
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_text_is_planned_or_refused_in_one_line(text in "\\PC{0,300}") {
        if let Err(err) = planner::submission(&text) {
            prop_assert!(clear(&err.to_string()), "{err}");
        }
    }

    #[test]
    fn any_values_are_planned_or_refused_naming_the_field(
        name in "(\\PC|\\p{Cc}){0,30}",
        experiment in prop_oneof![
            Just("fit".to_string()),
            Just("classify".to_string()),
            Just("hessian".to_string()),
            "\\PC{0,10}",
        ],
        kind in prop_oneof![Just("mlp"), Just("cnn"), Just("rnn")],
        hidden in prop_oneof![
            (-3i64..2000).prop_map(|d| d.to_string()),
            proptest::collection::vec(any::<i64>(), 0..4).prop_map(|w| format!("{w:?}")),
        ],
        convs in proptest::collection::vec(-2i64..300, 0..5),
        width in any::<i64>(),
        budget in any::<f64>(),
        batch in any::<i64>(),
        lr in any::<f64>(),
        epochs in any::<i64>(),
        seeds in proptest::collection::vec(any::<i64>(), 0..4),
    ) {
        let model = if kind == "cnn" {
            format!("{{ kind = \"cnn\", convs = {convs:?} }}")
        } else {
            format!("{{ kind = {}, hidden = {hidden} }}", quoted(kind))
        };
        let size = if width % 2 == 0 {
            format!("width = [{width}]")
        } else {
            format!("params = [{}]", toml_float(budget))
        };
        let spec = format!(
            "name = {}\nexperiment = {}\ndataset = \"mnist\"\nmodel = {model}\n\
             train = {{ lr = {}, epochs = {epochs}, steps = {epochs}, batch_size = {batch} }}\n\
             [grid]\n{size}\nseed = {seeds:?}\n",
            quoted(&name),
            quoted(&experiment),
            toml_float(lr),
        );
        match planner::submission(&spec) {
            Ok(sweep) => prop_assert!(!sweep.plan.tasks.is_empty()),
            Err(err) => {
                let message = err.to_string();
                prop_assert!(clear(&message), "{message}");
                prop_assert!(message.contains(" = ") || message.contains("line "), "{message}");
            }
        }
    }
}
