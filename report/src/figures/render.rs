//! Draws a [`Figure`] with plotters, as SVG or PNG.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::legend::{LegendBox, legend_place};
use super::{Figure, Style};
use crate::{Error, Result};

/// Narrower than a 900-pixel window, which a figure opened on its own
/// should fit.
const SIZE: (u32, u32) = (864, 576);

/// Series colours: Okabe and Ito's palette, told apart by colour-blind
/// readers too ("Color Universal Design", 2008), without its yellow, which
/// reads badly on white; a figure with more series starts over.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

fn colour(index: usize) -> RGBAColor {
    COLOURS[index % COLOURS.len()].to_rgba()
}

/// The bundled font (DejaVu Sans, see assets/DejaVuSans.LICENSE): text
/// renders the same on every machine, with no system font lookup.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is valid (it is ours); a failure would only lose text.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The image formats figures are drawn in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    Svg,
    Png,
}

/// Draws `figure` into the file at `path`.
pub fn render(figure: &Figure, path: &Path, format: Image) -> Result<()> {
    register();
    let failed = |err: &dyn std::fmt::Display| Error::Draw {
        what: path.display().to_string(),
        message: err.to_string(),
    };
    match format {
        Image::Svg => std::fs::write(path, svg(figure)?).map_err(|e| failed(&e))?,
        Image::Png => {
            let root = BitMapBackend::new(path, SIZE).into_drawing_area();
            draw(figure, &root).map_err(|e| failed(&e))?;
            root.present().map_err(|e| failed(&e))?;
        }
    }
    Ok(())
}

/// `figure` as an SVG document, the same bytes [`render`] writes.
pub fn svg(figure: &Figure) -> Result<String> {
    register();
    let failed = |err: &dyn std::fmt::Display| Error::Draw {
        what: figure.file.clone(),
        message: err.to_string(),
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(figure, &root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(out)
}

/// The range covering `values`, padded by 5% (a unit around a single
/// value); on a log axis the padding is a factor and the range positive.
pub(super) fn range(values: impl Iterator<Item = f64>, log: bool) -> std::ops::Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return if log { 0.1..10.0 } else { 0.0..1.0 };
    }
    if log {
        let pad = if high > low {
            (high / low).powf(0.05)
        } else {
            2.0
        };
        return (low / pad)..(high * pad);
    }
    let pad = if high > low { (high - low) * 0.05 } else { 0.5 };
    (low - pad)..(high + pad)
}

/// Whether an axis over `range` labels its ticks in scientific notation:
/// all of them when any would need it, so that one axis never mixes
/// "0.001" with "5e-4", or "10000" with "1e5".
fn scientific(range: &std::ops::Range<f64>) -> bool {
    [range.start, range.end]
        .iter()
        .any(|v| *v != 0.0 && !(1e-3..1e5).contains(&v.abs()))
}

/// A tick label, as short as its value allows in the axis's notation.
fn tick(value: f64, scientific: bool) -> String {
    if scientific && value != 0.0 {
        // Rust's shortest round-trip form: 1e-4, 2.5e-3, 1.25e5.
        format!("{:e}", on_grid(value))
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A tick's value put back on the grid it was meant for: plotters steps a
/// log axis by multiplying, so 1e-4 arrives as 9.9999999999999e-5. Ten
/// significant digits are more than any axis shows.
fn on_grid(value: f64) -> f64 {
    format!("{value:.9e}").parse().unwrap_or(value)
}

/// How an axis is drawn.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Scale {
    Linear,
    /// Ticks at powers of two (batch sizes), each labelled.
    Log2,
    /// Labels only at 1, 2 and 5 times a power of ten, so they never crowd.
    Log10,
}

impl Scale {
    /// A log axis is used where asked for and where the values are positive
    /// and span more than a factor of ten (or are all powers of two);
    /// within a narrower span a linear axis reads better.
    fn of(log: bool, values: &[f64]) -> Self {
        let positive = values.iter().all(|v| *v > 0.0);
        if !log || !positive || values.is_empty() {
            return Self::Linear;
        }
        let power_of_two = |v: &f64| v.fract() == 0.0 && (*v as u64).is_power_of_two();
        if values.len() > 1 && values.iter().all(power_of_two) {
            return Self::Log2;
        }
        let (low, high) = values.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
        if high / low > 10.0 {
            Self::Log10
        } else {
            Self::Linear
        }
    }

    /// A tick's label; none between the whole numbers of an axis whose
    /// values are all whole (`integer`: epochs, steps, counts).
    fn label(self, value: f64, scientific: bool, integer: bool) -> String {
        let value = on_grid(value);
        if integer && value.fract() != 0.0 {
            return String::new();
        }
        if self == Self::Log10 {
            // Nudged up: log10 of a power of ten may land just below it.
            let mantissa = value / 10f64.powf((value.log10() + 1e-9).floor());
            if ![1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
                return String::new();
            }
        }
        tick(value, scientific)
    }
}

/// Markers on every point unless a line has too many to tell apart.
const MAX_MARKED_POINTS: usize = 60;

/// A dashed line's dash and gap, and the legend's line sample, in pixels.
const DASH: (i32, i32) = (7, 4);
const LEGEND_LINE: i32 = 18;

fn draw<DB: DrawingBackend>(
    figure: &Figure,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    // Bars and bands count, each end at its point's x: the axis and the
    // legend's corner make room for them.
    let (xs, ys): (Vec<f64>, Vec<f64>) = figure
        .series
        .iter()
        .flat_map(|s| {
            let ends = (s.points.iter().zip(&s.bounds))
                .flat_map(|(&(x, _), &(low, high))| [(x, low), (x, high)]);
            s.points.iter().copied().chain(ends)
        })
        .unzip();
    let scales = (Scale::of(figure.x.log, &xs), Scale::of(figure.y.log, &ys));
    let x = range(xs.iter().copied(), scales.0 != Scale::Linear);
    let mut y = range(ys.iter().copied(), scales.1 != Scale::Linear);
    let mut legend = None;
    if figure.series.len() > 1 {
        let names: Vec<&str> = figure.series.iter().map(|s| s.name.as_str()).collect();
        let (corner, room) = legend_place((&xs, &ys), (&x, &y), scales, LegendBox::of(&names));
        (legend, y) = (Some(corner), room);
    }
    let whole = |values: &[f64]| values.iter().all(|v| v.fract() == 0.0);
    let layout = Layout {
        floor: (scales.1 != Scale::Linear).then_some(y.start),
        scales,
        scientific: (scientific(&x), scientific(&y)),
        integer: (whole(&xs), whole(&ys)),
        legend,
    };
    use Scale::*;
    match scales {
        (Linear, Linear) => draw_on(figure, root, &layout, x, y),
        (Linear, Log10) => draw_on(figure, root, &layout, x, y.log_scale()),
        (Linear, Log2) => draw_on(figure, root, &layout, x, y.log_scale().base(2.0)),
        (Log10, Linear) => draw_on(figure, root, &layout, x.log_scale(), y),
        (Log10, Log10) => draw_on(figure, root, &layout, x.log_scale(), y.log_scale()),
        (Log10, Log2) => draw_on(
            figure,
            root,
            &layout,
            x.log_scale(),
            y.log_scale().base(2.0),
        ),
        (Log2, Linear) => draw_on(figure, root, &layout, x.log_scale().base(2.0), y),
        (Log2, Log10) => draw_on(
            figure,
            root,
            &layout,
            x.log_scale().base(2.0),
            y.log_scale(),
        ),
        (Log2, Log2) => draw_on(
            figure,
            root,
            &layout,
            x.log_scale().base(2.0),
            y.log_scale().base(2.0),
        ),
    }
}

/// Where the axes' labels and the legend go.
struct Layout {
    scales: (Scale, Scale),
    /// Whether each axis labels in scientific notation (see [`scientific`]).
    scientific: (bool, bool),
    /// Whether each axis's values are all whole numbers.
    integer: (bool, bool),
    /// None for one series: the title and the axes say what it is.
    legend: Option<SeriesLabelPosition>,
    /// The bottom of a log y axis, where a bar reaching zero or below ends.
    floor: Option<f64>,
}

fn draw_on<DB, X, Y>(
    figure: &Figure,
    root: &DrawingArea<DB, Shift>,
    layout: &Layout,
    x: X,
    y: Y,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(&figure.x.label)
        .y_desc(&figure.y.label)
        .x_label_formatter(&|v| (layout.scales.0).label(*v, layout.scientific.0, layout.integer.0))
        .y_label_formatter(&|v| (layout.scales.1).label(*v, layout.scientific.1, layout.integer.1))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (index, series) in figure.series.iter().enumerate() {
        let style = series.style.unwrap_or(Style {
            colour: index,
            dashed: false,
        });
        let color = colour(style.colour);
        let line = color.stroke_width(2);
        let data = series.points.clone();
        let marked = figure.scatter || data.len() <= MAX_MARKED_POINTS;
        let bounds = series.bounds.iter().map(|&(low, high)| {
            let floor = layout.floor.unwrap_or(f64::NEG_INFINITY);
            (low.max(floor), high)
        });
        if marked {
            let bars = (data.iter().zip(bounds))
                .map(|(&(x, y), (low, high))| ErrorBar::new_vertical(x, low, y, high, line, 8));
            chart.draw_series(bars)?;
        } else if !series.bounds.is_empty() {
            // Too many points for bars: a band between the bounds.
            let (lows, highs): (Vec<_>, Vec<_>) = (data.iter().zip(bounds))
                .map(|(&(x, _), (low, high))| ((x, low), (x, high)))
                .unzip();
            let outline: Vec<(f64, f64)> =
                highs.into_iter().chain(lows.into_iter().rev()).collect();
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.15).filled(),
            )))?;
        }
        if !figure.scatter && style.dashed {
            let dashed = DashedLineSeries::new(data.clone(), DASH.0, DASH.1, line);
            chart.draw_series(dashed)?;
        } else if !figure.scatter {
            chart.draw_series(LineSeries::new(data.clone(), line))?;
        }
        // The legend's sample: a solid line is one dash as long as it.
        let (dash, gap) = if style.dashed { DASH } else { (LEGEND_LINE, 0) };
        let size = if figure.scatter { 4 } else { 3 };
        let marker = if style.dashed { line } else { color.filled() };
        let markers = data
            .into_iter()
            .filter(|_| marked)
            .map(move |p| Circle::new(p, size, marker));
        chart
            .draw_series(markers)?
            .label(&series.name)
            .legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + LEGEND_LINE, y)], dash, gap, line)
            });
        let notes = series
            .points
            .iter()
            .zip(&series.notes)
            .filter(|(_, note)| !note.is_empty())
            .map(|(&point, note)| {
                EmptyElement::at(point) + Text::new(note.clone(), (5, -14), ("sans-serif", 11))
            });
        chart.draw_series(notes)?;
    }
    if let Some(corner) = &layout.legend {
        // Half-transparent, so that points under the legend still show.
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.6))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 14))
            .position(corner.clone())
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
