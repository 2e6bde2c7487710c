//! `sweep plot`: the report's figures from a sweep's stored results.
//!
//! Figures are computed as data first ([`Figure`]: named series of points,
//! in [`figures`]) and then drawn by one renderer ([`render`]), so what a
//! figure shows can be checked against the store without reading pictures.
//! [`pca`] projects weight snapshots onto their two main directions.

mod figures;
pub mod pca;
mod render;

use std::path::{Path, PathBuf};

use sweep_coordinator::store::Store;

pub use figures::figures;
pub use render::render;

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
}

impl Series {
    pub fn new(name: String, points: Vec<(f64, f64)>) -> Self {
        Self {
            name,
            points,
            notes: Vec::new(),
        }
    }
}

/// The image formats figures are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageFormat {
    Svg,
    Png,
}

/// Writes every figure the sweep's results support into `dir` and returns
/// the files written.
pub async fn plot(
    store: &dyn Store,
    sweep: u64,
    dir: &Path,
    format: ImageFormat,
) -> anyhow::Result<Vec<PathBuf>> {
    let figures = figures(store, sweep).await?;
    anyhow::ensure!(
        !figures.is_empty(),
        "sweep {sweep} has no results to plot yet (no task has succeeded)"
    );
    std::fs::create_dir_all(dir)
        .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", dir.display()))?;
    figures
        .iter()
        .map(|figure| {
            let extension = match format {
                ImageFormat::Svg => "svg",
                ImageFormat::Png => "png",
            };
            let path = dir.join(format!("{}.{extension}", figure.file));
            render(figure, &path, format)?;
            Ok(path)
        })
        .collect()
}
