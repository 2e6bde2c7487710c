//! How a task's weights travel as artifacts: the flat vector of
//! [`crate::ModelShape::blocks`] as little-endian f32s, under names that
//! interpolation tasks and plots read back.

/// The artifact encoding of flat weights.
pub const FLAT_F32: &str = "f32-le";

/// The weights after the last epoch.
pub const FINAL: &str = "weights/final";

/// The weights after `epoch` (a snapshot for optimization paths).
pub fn snapshot(epoch: u64) -> String {
    format!("weights/epoch-{epoch:03}")
}

/// Little-endian bytes of flat weights, for an artifact.
pub fn to_bytes(flat: &[f32]) -> Vec<u8> {
    flat.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Flat weights from an artifact's bytes; `None` unless they are whole f32s.
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes.len().is_multiple_of(4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip_and_partial_values_are_refused() {
        let flat = [0.5f32, -1.25, f32::MAX];
        assert_eq!(from_bytes(&to_bytes(&flat)).unwrap(), flat);
        assert_eq!(from_bytes(&[0, 0, 0]), None);
        assert_eq!(snapshot(3), "weights/epoch-003");
    }
}
