//! What the kernels' tests share: seeded tensors and a comparison with
//! burn's result.

use burn::tensor::{Device, Tensor, TensorData};

use crate::rng::Rng;

/// Values uniform in [-1, 1) from `seed`: distinct, so no ties in a max.
pub fn random<const D: usize>(dims: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut rng = Rng::derived(seed, 7);
    let len = dims.iter().product();
    let values = (0..len)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// Equal shapes, and every value within 1e-5 of the largest of burn's.
pub fn assert_close<const D: usize>(ours: Tensor<D>, burns: Tensor<D>) {
    let (ours, burns) = (ours.into_data(), burns.into_data());
    assert_eq!(ours.shape(), burns.shape());
    let scale = burns.iter::<f32>().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter::<f32>().zip(burns.iter::<f32>()).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "element {i}: {a} against burn's {b}"
        );
    }
}
