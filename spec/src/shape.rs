//! A model's exact architecture, its parameter count, and the order its
//! weights take in the flat vector that workers store, blend and
//! differentiate (and plots read back).

use serde::{Deserialize, Serialize};

/// A model's exact architecture. Hidden layers use ReLU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelShape {
    /// Fully connected: `input - hidden[0] - ... - output`.
    Mlp {
        input: u64,
        hidden: Vec<u64>,
        output: u64,
    },
    /// Each entry of `convs` is a `kernel`x`kernel` convolution with "same"
    /// padding and that many output channels, followed by a 2x2 max-pool
    /// (the side is halved, rounding down); then fully connected layers `fc`
    /// and the output layer.
    Cnn {
        in_channels: u64,
        image_size: u64,
        kernel: u64,
        convs: Vec<u64>,
        fc: Vec<u64>,
        output: u64,
    },
}

/// One parameter tensor's place in the flat weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// burn's layout: conv `[out, in, k, k]`, dense `[in, out]`, bias `[n]`.
    pub shape: Vec<usize>,
    /// fan-in and fan-out for Glorot initialisation; `None` for a bias.
    pub fans: Option<(usize, usize)>,
}

impl Block {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn weight(shape: Vec<usize>, fans: (usize, usize)) -> Self {
        Self {
            shape,
            fans: Some(fans),
        }
    }

    fn bias(n: usize) -> Self {
        Self {
            shape: vec![n],
            fans: None,
        }
    }
}

impl ModelShape {
    pub fn mlp(input: u64, hidden: &[u64], output: u64) -> Self {
        Self::Mlp {
            input,
            hidden: hidden.to_vec(),
            output,
        }
    }

    /// A CNN for MNIST-format images (1x28x28, ten classes) with 5x5 kernels.
    pub fn mnist_cnn(convs: &[u64], fc: &[u64]) -> Self {
        Self::Cnn {
            in_channels: 1,
            image_size: 28,
            kernel: 5,
            convs: convs.to_vec(),
            fc: fc.to_vec(),
            output: 10,
        }
    }

    /// Weights plus biases.
    pub fn param_count(&self) -> u64 {
        self.blocks().iter().map(|block| block.len() as u64).sum()
    }

    /// The parameter tensors in flat order: for each conv stage, then each
    /// dense layer, the weight then the bias.
    pub fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        match self {
            Self::Mlp {
                input,
                hidden,
                output,
            } => dense_blocks(&mut out, *input as usize, hidden, *output),
            Self::Cnn {
                in_channels,
                image_size,
                kernel,
                convs,
                fc,
                output,
            } => {
                let k = *kernel as usize;
                let (mut channels, mut side) = (*in_channels as usize, *image_size as usize);
                for &c in convs {
                    let c = c as usize;
                    out.push(Block::weight(
                        vec![c, channels, k, k],
                        (channels * k * k, c * k * k),
                    ));
                    out.push(Block::bias(c));
                    channels = c;
                    side /= 2;
                }
                dense_blocks(&mut out, side * side * channels, fc, *output);
            }
        }
        out
    }

    /// Where the `index`-th weight matrix (or convolution kernel; biases are
    /// not counted) lies in the flat weights: index 1 is the kernel into an
    /// MLP's second hidden layer. `None` past the last one.
    pub fn kernel_range(&self, index: usize) -> Option<std::ops::Range<usize>> {
        let mut start = 0;
        let mut kernels = 0;
        for block in self.blocks() {
            if block.fans.is_some() {
                if kernels == index {
                    return Some(start..start + block.len());
                }
                kernels += 1;
            }
            start += block.len();
        }
        None
    }
}

fn dense_blocks(out: &mut Vec<Block>, input: usize, hidden: &[u64], output: u64) {
    let mut fan_in = input;
    for &width in hidden.iter().chain([&output]) {
        let width = width as usize;
        out.push(Block::weight(vec![fan_in, width], (fan_in, width)));
        out.push(Block::bias(width));
        fan_in = width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp(input: u64, hidden: &[u64], output: u64) -> ModelShape {
        ModelShape::mlp(input, hidden, output)
    }

    fn cnn(convs: &[u64]) -> ModelShape {
        ModelShape::mnist_cnn(convs, &[128])
    }

    #[test]
    fn parameter_counts_match_the_report() {
        assert_eq!(mlp(1, &[5, 10, 10, 10, 10, 10, 5], 1).param_count(), 571);
        assert_eq!(mlp(1, &[190], 1).param_count(), 571);
        let dnn1 = [100, 200, 200, 200, 200, 200, 100];
        assert_eq!(mlp(784, &dnn1, 10).param_count(), 280_610);
        assert_eq!(mlp(784, &[353], 10).param_count(), 280_645);
        assert_eq!(mlp(1, &[10, 10, 10], 1).param_count(), 251);
        let dnn1_original = [100, 200, 200, 200, 20, 200, 100];
        assert_eq!(mlp(784, &dnn1_original, 10).param_count(), 208_430);
        assert_eq!(cnn(&[16, 36]).param_count(), 242_062);
        assert_eq!(cnn(&[16, 36, 144]).param_count(), 311_902);
    }

    #[test]
    fn width_sweep_follows_the_report_formula() {
        for w in (10..=100).step_by(10) {
            let count = mlp(784, &[w; 5], 10).param_count();
            assert_eq!(count, 4 * w * w + 799 * w + 10, "width {w}");
        }
    }

    #[test]
    fn blocks_are_a_weight_then_a_bias_per_layer() {
        let blocks = cnn(&[16]).blocks();
        let shapes: Vec<&[usize]> = blocks.iter().map(|b| b.shape.as_slice()).collect();
        let flat = 14 * 14 * 16;
        assert_eq!(
            shapes,
            [
                &[16, 1, 5, 5][..],
                &[16],
                &[flat, 128],
                &[128],
                &[128, 10],
                &[10]
            ]
        );
        assert_eq!(blocks[0].fans, Some((25, 400)));
        assert_eq!(blocks[1].fans, None);
    }

    #[test]
    fn kernel_ranges_skip_the_biases() {
        let shape = mlp(784, &[100, 200], 10);
        assert_eq!(shape.kernel_range(0), Some(0..78_400));
        // After the first kernel and its 100 biases: a 100x200 kernel.
        assert_eq!(shape.kernel_range(1), Some(78_500..98_500));
        assert_eq!(shape.kernel_range(2), Some(98_700..100_700));
        assert_eq!(shape.kernel_range(3), None);
    }
}
