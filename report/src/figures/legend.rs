//! Where a figure's legend goes: a corner where it covers no point, sized
//! from its entries; the y range grown above the points when every corner
//! would cover one.

use plotters::prelude::SeriesLabelPosition;

use super::render::Scale;

/// The legend's size as shares of the plot's width and height, from its
/// entries: a row per series, as wide as the longest name (estimated from
/// the font's size: the plot is about 856 by 520 pixels of the image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct LegendBox {
    width: f64,
    height: f64,
}

impl LegendBox {
    pub(super) fn of(names: &[&str]) -> Self {
        let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let width = 60.0 + 8.0 * longest as f64;
        let height = 20.0 + 20.0 * names.len() as f64;
        Self {
            width: (width / 856.0).min(1.0),
            height: (height / 520.0).min(1.0),
        }
    }
}

/// A corner of the plot, with the shares of its width and height the
/// legend covers there.
type Corner = (
    SeriesLabelPosition,
    std::ops::RangeInclusive<f64>,
    std::ops::RangeInclusive<f64>,
);

fn corners(legend: LegendBox) -> [Corner; 4] {
    let (right, left) = (1.0 - legend.width..=1.0, 0.0..=legend.width);
    let (top, bottom) = (1.0 - legend.height..=1.0, 0.0..=legend.height);
    [
        (SeriesLabelPosition::UpperRight, right.clone(), top.clone()),
        (SeriesLabelPosition::UpperLeft, left.clone(), top),
        (SeriesLabelPosition::LowerRight, right, bottom.clone()),
        (SeriesLabelPosition::LowerLeft, left, bottom),
    ]
}

/// The points of the plot over `ranges` that a legend in `corner` covers.
fn covered(
    corner: &Corner,
    (xs, ys): (&[f64], &[f64]),
    ranges: (&std::ops::Range<f64>, &std::ops::Range<f64>),
    scales: (Scale, Scale),
) -> usize {
    let (_, across, up) = corner;
    xs.iter()
        .zip(ys)
        .filter(|&(&px, &py)| {
            across.contains(&fraction(px, ranges.0, scales.0))
                && up.contains(&fraction(py, ranges.1, scales.1))
        })
        .count()
}

/// Where `value` lies along `range` as drawn, from 0 to 1.
fn fraction(value: f64, range: &std::ops::Range<f64>, scale: Scale) -> f64 {
    let at = |v: f64| if scale == Scale::Linear { v } else { v.ln() };
    (at(value) - at(range.start)) / (at(range.end) - at(range.start))
}

/// Where the legend goes and the y range to draw: a corner where it
/// covers no point; when every corner would (3.4's sensitivity against
/// batch size at full scale), the top right of a y range grown upwards
/// until the points stay below the legend, unless the legend is so tall
/// that it goes where it covers the fewest.
pub(super) fn legend_place(
    (xs, ys): (&[f64], &[f64]),
    (x, y): (&std::ops::Range<f64>, &std::ops::Range<f64>),
    scales: (Scale, Scale),
    legend: LegendBox,
) -> (SeriesLabelPosition, std::ops::Range<f64>) {
    let corners = corners(legend);
    if let Some(free) = corners
        .iter()
        .find(|corner| covered(corner, (xs, ys), (x, y), scales) == 0)
    {
        return (free.0.clone(), y.clone());
    }
    if legend.height > 0.5 {
        // Room for a legend of so many entries would squash the points:
        // it goes where it covers the fewest.
        let fewest = corners
            .iter()
            .min_by_key(|corner| covered(corner, (xs, ys), (x, y), scales));
        return (
            fewest.map_or(SeriesLabelPosition::UpperRight, |c| c.0.clone()),
            y.clone(),
        );
    }
    // The highest point ends a little below the legend.
    let below = (1.0 - legend.height - 0.03).max(0.2);
    let highest = ys.iter().map(|v| fraction(*v, y, scales.1));
    let share = highest.fold(0.0f64, f64::max) / below;
    let grown = if scales.1 == Scale::Linear {
        y.start..y.start + (y.end - y.start) * share
    } else {
        y.start..y.start * (y.end / y.start).powf(share)
    };
    (SeriesLabelPosition::UpperRight, grown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::render::range;

    /// 3.4's sensitivity against batch size at full scale: points in every
    /// corner, and the legend drawn over one of them.
    #[test]
    fn a_legend_never_covers_a_point() {
        let legend = LegendBox {
            width: 0.5,
            height: 0.35,
        };
        let placed = |ys: &[f64], y, scales| {
            let xs = [0.0, 1.0, 0.0, 1.0, 0.5];
            let x = range(xs.iter().copied(), false);
            let (corner, room) = legend_place((&xs, ys), (&x, &y), scales, legend);
            let at = corners(legend).into_iter().find(|c| c.0 == corner).unwrap();
            (covered(&at, (&xs, ys), (&x, &room), scales), room)
        };
        let linear = (Scale::Linear, Scale::Linear);
        let ys = [0.0, 0.0, 1.0, 1.0, 0.5];
        let y = range(ys.iter().copied(), false);
        let (under, room) = placed(&ys, y.clone(), linear);
        assert_eq!(under, 0);
        assert!(room.start == y.start && room.end > y.end, "{room:?}");
        // The same on a log axis.
        let ys = [1e-3, 1e-3, 1.0, 1.0, 0.03];
        let y = range(ys.iter().copied(), true);
        assert_eq!(placed(&ys, y, (Scale::Linear, Scale::Log10)).0, 0);
        // A free corner is used as it is.
        let ys = [0.0, 0.0, 1.0, 0.1, 0.2];
        let y = range(ys.iter().copied(), false);
        assert_eq!(placed(&ys, y.clone(), linear), (0, y));
    }

    /// 3.1's accuracy at full scale (train climbing to 0.96, test flat at
    /// 0.1) grew its axis to 1.6 for a legend sized as a third of the plot;
    /// two short entries fit above the start of the train curve.
    #[test]
    fn a_legend_is_as_large_as_its_entries() {
        let small = LegendBox::of(&["dnn1 train", "dnn1 test"]);
        assert!(small.width < 0.2 && small.height < 0.15, "{small:?}");
        let epochs: Vec<f64> = (1..=233).map(f64::from).collect();
        let train = epochs.iter().map(|e| 0.96 * (1.0 - (-e / 60.0).exp()));
        let xs: Vec<f64> = epochs.iter().chain(&epochs).copied().collect();
        let ys: Vec<f64> = train.chain(epochs.iter().map(|_| 0.1)).collect();
        let (x, y) = (
            range(xs.iter().copied(), false),
            range(ys.iter().copied(), false),
        );
        let linear = (Scale::Linear, Scale::Linear);
        let (corner, room) = legend_place((&xs, &ys), (&x, &y), linear, small);
        assert_eq!((corner, room), (SeriesLabelPosition::UpperLeft, y));
        let large = LegendBox::of(&["a"; 40]);
        assert_eq!(large.height, 1.0);
    }
}
