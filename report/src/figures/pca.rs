//! Principal components of weight snapshots, for optimization paths (2.1).
//! With far fewer snapshots than weights, the eigenvectors of the small
//! Gram matrix of the centred snapshots give the projections directly.

use nalgebra::{DMatrix, SymmetricEigen};

/// Snapshots on their first two principal components.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    /// One point per snapshot, in order.
    pub points: Vec<(f64, f64)>,
    /// The fraction of the variance each component explains.
    pub explained: [f64; 2],
}

/// `None` with fewer than two snapshots or snapshots of different lengths.
pub fn project(snapshots: &[Vec<f32>]) -> Option<Projection> {
    let count = snapshots.len();
    let width = snapshots.first()?.len();
    if count < 2 || snapshots.iter().any(|s| s.len() != width) {
        return None;
    }
    let mut mean = vec![0.0f64; width];
    for snapshot in snapshots {
        for (m, &w) in mean.iter_mut().zip(snapshot) {
            *m += f64::from(w) / count as f64;
        }
    }
    let centred: Vec<Vec<f64>> = snapshots
        .iter()
        .map(|s| {
            s.iter()
                .zip(&mean)
                .map(|(&w, m)| f64::from(w) - m)
                .collect()
        })
        .collect();
    let gram = DMatrix::from_fn(count, count, |i, j| {
        centred[i]
            .iter()
            .zip(&centred[j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
    });
    let eigen = SymmetricEigen::new(gram);
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let total: f64 = eigen.eigenvalues.iter().map(|v| v.max(0.0)).sum();
    // Scores on component k are the Gram eigenvector scaled by sqrt(λk).
    let score = |k: usize, i: usize| {
        let value = eigen.eigenvalues[order[k]].max(0.0);
        eigen.eigenvectors[(i, order[k])] * value.sqrt()
    };
    let points = (0..count).map(|i| (score(0, i), score(1, i))).collect();
    let explained = [0, 1].map(|k| {
        if total > 0.0 {
            eigen.eigenvalues[order[k]].max(0.0) / total
        } else {
            0.0
        }
    });
    Some(Projection { points, explained })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_on_a_line_project_onto_one_component_with_their_distances() {
        // Four points along (3, 4, 0) spaced 5 apart, plus a constant offset.
        let snapshots: Vec<Vec<f32>> = (0..4)
            .map(|i| vec![1.0 + 3.0 * i as f32, 2.0 + 4.0 * i as f32, 7.0])
            .collect();
        let Projection { points, explained } = project(&snapshots).unwrap();
        assert!((explained[0] - 1.0).abs() < 1e-9, "{explained:?}");
        let first: Vec<f64> = points.iter().map(|p| p.0).collect();
        for pair in first.windows(2) {
            assert!(((pair[1] - pair[0]).abs() - 5.0).abs() < 1e-9, "{first:?}");
        }
        assert!(points.iter().all(|p| p.1.abs() < 1e-6), "{points:?}");
        assert!(first.iter().sum::<f64>().abs() < 1e-9, "centred");
    }

    #[test]
    fn too_few_or_ragged_snapshots_have_no_projection() {
        assert!(project(&[vec![1.0, 2.0]]).is_none());
        assert!(project(&[vec![1.0, 2.0], vec![1.0]]).is_none());
    }
}
