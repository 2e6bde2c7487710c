//! The renderer's tests: axis labels, legends, bars and bands as drawn in the SVG.

use super::*;

#[test]
fn an_axis_labels_its_ticks_in_one_notation() {
    // Down to 5e-4: every label scientific, small ones keep their digits.
    let small = 0.0004..0.3;
    assert!(scientific(&small));
    let labels: Vec<String> = [0.0005, 0.001, 0.0025, 0.01, 0.2]
        .iter()
        .map(|v| Scale::Log10.label(*v, scientific(&small), false))
        .collect();
    assert_eq!(labels, ["5e-4", "1e-3", "", "1e-2", "2e-1"]);
    assert_eq!(tick(0.0025, true), "2.5e-3");
    // Steps up to 200,000: 1e5 and 2e5, and so 5e4, not 50000.
    assert!(scientific(&(0.0..200_000.0)));
    assert_eq!(tick(50_000.0, true), "5e4");
    assert_eq!(tick(125_000.0, true), "1.25e5");
    // Within [0.001, 100000) plain decimals, as many digits as needed.
    let plain = 0.002..50.0;
    assert!(!scientific(&plain));
    assert_eq!(tick(0.002, false), "0.002");
    assert_eq!(tick(0.0025, false), "0.0025");
    assert_eq!(tick(20.0, false), "20");
    assert_eq!(tick(0.5, false), "0.5");
}

fn figure(series: &[&str], xs: &[f64]) -> Figure {
    Figure {
        file: "test".into(),
        title: "test".into(),
        x: crate::figures::Axis::linear("epoch"),
        y: crate::figures::Axis::linear("loss"),
        series: (series.iter().enumerate())
            .map(|(i, name)| {
                let points = xs.iter().map(|x| (*x, x * (i + 1) as f64)).collect();
                crate::figures::Series::new(name.to_string(), points)
            })
            .collect(),
        scatter: false,
    }
}

/// The legend's box is drawn half-transparent (see `draw_on`).
const LEGEND_BOX: &str = "opacity=\"0.6\" fill=\"#FFFFFF\"";

/// 3.4's accuracy against batch size at full scale drew its legend
/// over the last test point, in the lower right; the top right was
/// free.
#[test]
fn a_legend_is_drawn_where_it_covers_no_point() {
    let batches = [10.0, 100.0, 1000.0, 5000.0, 10000.0];
    let train = [0.9997, 0.9998, 1.0, 0.9894, 0.978];
    let test = [0.9829, 0.976, 0.9756, 0.9709, 0.9651];
    let series = |name: &str, ys: &[f64], quantity| {
        let points = batches.iter().copied().zip(ys.iter().copied()).collect();
        crate::figures::Series::new(name.into(), points)
            .with_bounds(ys.iter().map(|y| (*y, *y)).collect())
            .of_group(0, quantity)
    };
    let figure = Figure {
        file: "accuracy-vs-batch-size".into(),
        title: "Accuracy against batch size".into(),
        x: crate::figures::Axis::log("batch size"),
        y: crate::figures::Axis::linear("accuracy"),
        series: vec![
            series("dnn1 train", &train, 0),
            series("dnn1 test", &test, 1),
        ],
        scatter: false,
    };
    let drawn = svg(&figure).unwrap();
    let legend = drawn.split(LEGEND_BOX).next().unwrap();
    let rect = legend.rsplit("<rect").next().unwrap();
    let y: f64 = rect
        .split("y=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(y < 100.0, "the legend at the top: {rect}");
}

/// `grad-norm` and `loss-vs-minimal-ratio` at full scale drew an empty
/// legend box over their one series.
#[test]
fn a_figure_of_one_series_has_no_legend() {
    let one = svg(&figure(&["grad_norm"], &[1.0, 2.0, 3.0])).unwrap();
    assert!(!one.contains(LEGEND_BOX), "{one}");
    let two = svg(&figure(&["train", "test"], &[1.0, 2.0, 3.0])).unwrap();
    assert!(two.contains(LEGEND_BOX), "{two}");
}

/// 1.2's per-epoch figures at full scale drew dnn1 train, dnn1 test,
/// dnn2 train and dnn2 test in four unrelated colours.
#[test]
fn a_groups_series_share_a_colour_and_its_second_is_dashed() {
    let mut grouped = figure(
        &["a train", "a test", "b train", "b test"],
        &[1.0, 2.0, 3.0],
    );
    for (i, series) in grouped.series.iter_mut().enumerate() {
        *series = series.clone().of_group(i / 2, i % 2);
    }
    let drawn = svg(&grouped).unwrap();
    let strokes: std::collections::BTreeSet<&str> = drawn
        .split("<polyline")
        .skip(1)
        .filter(|line| line.contains("stroke-width=\"2\""))
        .filter_map(|line| line.split("stroke=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(strokes.len(), 2, "{strokes:?}");
    // A dashed line is drawn as one polyline per dash.
    let ungrouped = svg(&figure(&["a train", "a test"], &[1.0, 2.0, 3.0])).unwrap();
    assert!(
        drawn.matches("<polyline").count() > ungrouped.matches("<polyline").count() + 4,
        "{drawn}"
    );
}

/// Means over seeds get bars (a vertical line and two caps per point);
/// a curve too long for bars gets a band; a log axis clips a bar that
/// reaches below zero at its floor.
#[test]
fn bounds_draw_as_bars_or_as_a_band() {
    let with_bounds = |count: usize| {
        let xs: Vec<f64> = (1..=count).map(|x| x as f64).collect();
        let mut drawn = figure(&["mean"], &xs);
        let series = drawn.series.remove(0);
        let bounds = series
            .points
            .iter()
            .map(|p| (p.1 - 2.0, p.1 + 0.5))
            .collect();
        drawn.series.push(series.with_bounds(bounds));
        drawn
    };
    // Lines in the series' colour (the mesh's are black).
    let colour = colour(0);
    let stroke = format!(
        "stroke=\"#{:02X}{:02X}{:02X}\"",
        colour.0, colour.1, colour.2
    );
    let bars = |figure: &Figure| {
        let drawn = svg(figure).unwrap();
        (drawn.split("<line").skip(1))
            .filter(|line| line.split('>').next().unwrap().contains(&stroke))
            .count()
    };
    assert_eq!(bars(&figure(&["mean"], &[1.0, 2.0, 3.0])), 0);
    assert_eq!(bars(&with_bounds(3)), 3 * 3);
    assert!(!svg(&with_bounds(3)).unwrap().contains("<polygon"));
    let long = svg(&with_bounds(MAX_MARKED_POINTS + 1)).unwrap();
    assert_eq!(long.matches("<polygon").count(), 1, "one band");
    let mut log = with_bounds(3);
    log.y = crate::figures::Axis::log("loss");
    log.series[0].points[2].1 = 100.0;
    assert!(svg(&log).is_ok(), "a bar from -1 on a log axis");
}

/// A third model's curves were drawn yellow on white. WCAG 2's
/// contrast ratio against white, (1.05) / (L + 0.05) with L the
/// relative luminance: 1.3 for that yellow, at least 2 for every colour
/// now.
#[test]
fn every_series_colour_stands_out_on_white() {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    for (index, &RGBColor(r, g, b)) in COLOURS.iter().enumerate() {
        let luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
        let contrast = 1.05 / (luminance + 0.05);
        assert!(contrast >= 2.0, "colour {index}: contrast {contrast:.2}");
    }
}

/// An epoch axis ticked 1.5 and 2.5 between its epochs.
#[test]
fn an_axis_of_whole_numbers_labels_only_whole_ticks() {
    let drawn = svg(&figure(&["train", "test"], &[1.0, 2.0, 3.0])).unwrap();
    // plotters writes each label on a line of its own.
    assert!(drawn.contains(">\n2\n</text>"), "{drawn}");
    assert!(!drawn.contains(">\n1.5\n</text>"), "{drawn}");
    assert!(!drawn.contains(">\n2.5\n</text>"), "{drawn}");
    assert_eq!(Scale::Linear.label(1.5, false, true), "");
    assert_eq!(Scale::Linear.label(1.5, false, false), "1.5");
    assert_eq!(Scale::Linear.label(2.0, false, true), "2");
}

#[test]
fn a_log_tick_off_by_rounding_reads_as_its_power_of_ten() {
    // plotters steps a log axis by multiplying, so 1e-4 arrives as
    // 9.9999999999999e-5 (3.3's interpolation loss at full scale
    // labelled its axis "9.999999999999e-5").
    let near = 9.999_999_999_999e-5;
    assert_ne!(near, 1e-4);
    assert_eq!(Scale::Log10.label(near, true, false), "1e-4");
    assert_eq!(tick(near, true), "1e-4");
    assert_eq!(tick(2.000_000_000_000_3e-6, true), "2e-6");
    assert_eq!(tick(0.1 + 0.2, false), "0.3");
    // Real digits stay.
    assert_eq!(tick(1.25e-7, true), "1.25e-7");
}
