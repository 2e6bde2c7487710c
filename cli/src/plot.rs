//! `sweep plot`: writes every figure ([`sweep_report::figures`]) that a
//! sweep's results support into a folder.

use std::path::{Path, PathBuf};

use sweep_proto::{Results, SweepRef};
use sweep_report::figures::{self, Image};

use crate::args::ImageFormat;

/// Writes every figure the sweep's results support into `dir` and returns
/// the files written.
pub async fn plot(
    source: &dyn Results,
    which: &SweepRef,
    dir: &Path,
    format: ImageFormat,
) -> anyhow::Result<Vec<PathBuf>> {
    let sweep = source.sweep(which).await?;
    let figures = figures::figures(source, sweep.id).await?;
    anyhow::ensure!(
        !figures.is_empty(),
        "{which} has no results to plot yet (no task has succeeded)"
    );
    std::fs::create_dir_all(dir)
        .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", dir.display()))?;
    let (image, extension) = match format {
        ImageFormat::Svg => (Image::Svg, "svg"),
        ImageFormat::Png => (Image::Png, "png"),
    };
    figures
        .iter()
        .map(|figure| {
            let path = dir.join(format!("{}.{extension}", figure.file));
            figures::render(figure, &path, image)?;
            Ok(path)
        })
        .collect()
}
