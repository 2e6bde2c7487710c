//! Reading and building flex tensors of `f32`.

use std::borrow::Cow;

use burn::backend::DType;
use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;

/// `t`'s values in row-major order, copied only when `t` is a strided view.
pub fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    let len = t.layout().shape().num_elements();
    if t.is_contiguous() {
        let start = t.layout().start_offset();
        Cow::Borrowed(&t.storage::<f32>()[start..start + len])
    } else {
        let t = t.to_contiguous();
        let start = t.layout().start_offset();
        Cow::Owned(t.storage::<f32>()[start..start + len].to_vec())
    }
}

/// The four sizes of an `f32` tensor of rank 4.
pub fn dims4(t: &FlexTensor) -> Option<[usize; 4]> {
    if t.dtype() != DType::F32 {
        return None;
    }
    t.layout().shape().as_slice().try_into().ok()
}

/// A tensor of `shape` over `values`, without copying them.
pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
