//! Draws a [`Figure`] with plotters, as SVG or PNG. Log axes are drawn by
//! plotting log10 of the values and labelling the ticks with the values.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::{Figure, ImageFormat};

const SIZE: (u32, u32) = (960, 640);

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

pub fn render(figure: &Figure, path: &Path, format: ImageFormat) -> anyhow::Result<()> {
    register();
    let failed =
        |err: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {err}", path.display());
    match format {
        ImageFormat::Svg => {
            let root = SVGBackend::new(path, SIZE).into_drawing_area();
            draw(figure, &root).map_err(|e| failed(&e))?;
            root.present().map_err(|e| failed(&e))?;
        }
        ImageFormat::Png => {
            let root = BitMapBackend::new(path, SIZE).into_drawing_area();
            draw(figure, &root).map_err(|e| failed(&e))?;
            root.present().map_err(|e| failed(&e))?;
        }
    }
    Ok(())
}

/// A value on an axis as plotted.
fn scaled(value: f64, log: bool) -> f64 {
    if log { value.log10() } else { value }
}

/// The range covering `values`, padded by 5% (a unit around a single value).
fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return 0.0..1.0;
    }
    let pad = if high > low { (high - low) * 0.05 } else { 0.5 };
    (low - pad)..(high + pad)
}

fn tick(value: f64, log: bool) -> String {
    let value = if log { 10f64.powf(value) } else { value };
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e5).contains(&magnitude) {
        format!("{value:.1e}")
    } else if magnitude >= 100.0 || (value.fract() == 0.0) {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

fn draw<DB: DrawingBackend>(
    figure: &Figure,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (x_log, y_log) = (figure.x.log, figure.y.log);
    let points = || figure.series.iter().flat_map(|s| s.points.iter());
    let x_range = range(points().map(|p| scaled(p.0, x_log)));
    let y_range = range(points().map(|p| scaled(p.1, y_log)));
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc(&figure.x.label)
        .y_desc(&figure.y.label)
        .x_label_formatter(&|v| tick(*v, x_log))
        .y_label_formatter(&|v| tick(*v, y_log))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (index, series) in figure.series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let data: Vec<(f64, f64)> = series
            .points
            .iter()
            .map(|&(x, y)| (scaled(x, x_log), scaled(y, y_log)))
            .collect();
        let style = ShapeStyle::from(color).filled();
        let drawn = if figure.scatter {
            chart.draw_series(data.iter().map(|&p| Circle::new(p, 4, style)))?
        } else {
            chart.draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?;
            chart.draw_series(data.iter().map(|&p| Circle::new(p, 3, style)))?
        };
        drawn
            .label(&series.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 14, y + 4)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}
