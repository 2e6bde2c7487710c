//! The report's figures from a sweep's stored results (`sweep plot` writes
//! them to files, the dashboard shows them inline).
//!
//! Figures are computed as data first ([`Figure`]: named series of points)
//! and then drawn by one renderer ([`render`]), so what a figure shows can be
//! checked against the store without reading pictures. [`figures`] loads the
//! sweep's succeeded tasks once (`runs`) and asks each family for its
//! figures: `curves` per setting, `versus` a swept axis (and loss against
//! minimal ratio), `interpolation` paths and optimization `paths`; each
//! figure is left out when the sweep has nothing for it; [`legend`] places
//! a legend where it covers no point. [`pca`] projects
//! weight snapshots onto their two main directions.

mod curves;
mod interpolation;
mod legend;
mod paths;
pub mod pca;
mod render;
mod runs;
mod versus;

use sweep_proto::{Results, SweepId};

use crate::Result;

pub use render::{Image, render, svg};
use versus::Versus;

/// One figure: a title, two axes and named series of (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The file name, without extension.
    pub file: String,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    /// Points only (a scatter), or points joined by lines.
    pub scatter: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub label: String,
    /// Log scale (base 10); every value must be positive.
    pub log: bool,
}

impl Axis {
    pub fn linear(label: &str) -> Self {
        Self {
            label: label.into(),
            log: false,
        }
    }

    pub fn log(label: &str) -> Self {
        Self {
            label: label.into(),
            log: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Text drawn next to each point (empty: none), e.g. a snapshot's
    /// test accuracy.
    pub notes: Vec<String>,
    /// None: a colour of its own, by its place in the figure.
    pub style: Option<Style>,
    /// How far each point is known, as its (low, high): drawn as error
    /// bars, or as a band along a line too long for bars; empty for none.
    /// The figure's title says what they are.
    pub bounds: Vec<(f64, f64)>,
}

/// How a series is drawn when it belongs to a group: the series of one
/// group (a model, a setting) share a colour, and a group's second quantity
/// (its test split) is dashed, so that two models' train and test curves
/// read as two colours in two strokes rather than four unrelated colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Style {
    pub colour: usize,
    pub dashed: bool,
}

impl Series {
    pub fn new(name: String, points: Vec<(f64, f64)>) -> Self {
        Self {
            name,
            points,
            notes: Vec::new(),
            style: None,
            bounds: Vec::new(),
        }
    }

    /// The series with a (low, high) for each of its points.
    pub fn with_bounds(self, bounds: Vec<(f64, f64)>) -> Self {
        debug_assert_eq!(bounds.len(), self.points.len());
        Self { bounds, ..self }
    }

    /// The `quantity`-th series (from 0) of the `group`-th group.
    pub fn of_group(self, group: usize, quantity: usize) -> Self {
        Self {
            style: Some(Style {
                colour: group,
                dashed: quantity > 0,
            }),
            ..self
        }
    }
}

/// Every figure the sweep's succeeded tasks support.
pub async fn figures(results: &dyn Results, sweep: SweepId) -> Result<Vec<Figure>> {
    let runs = runs::load(results, sweep).await?;
    let mut out = curves::curves(&runs);
    out.extend(versus::versus(&runs, Versus::Params));
    out.extend(versus::versus(&runs, Versus::BatchSize));
    out.extend(versus::minimal_ratio(&runs));
    out.extend(interpolation::interpolation(&runs));
    out.extend(paths::paths(&runs));
    Ok(out)
}

/// "Loss" from "loss", for titles.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
