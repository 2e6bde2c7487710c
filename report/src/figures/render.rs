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
mod tests;
