//! The one place that turns a device name into a burn device.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// Where a worker trains: `cpu` or `cuda[:N]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|index| index.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("device {other:?}: expected cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl DeviceChoice {
    /// The kind the coordinator matches task requirements against.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda(_) => "cuda",
        }
    }

    /// The burn backend that serves this choice in this build.
    pub fn backend(self) -> &'static str {
        match self {
            Self::Cpu if cfg!(feature = "flex") => "flex",
            _ => "tch",
        }
    }

    /// The burn device (without autodiff; training adds it). CPU work goes to
    /// flex when it is built in, CUDA to LibTorch (the `tch` feature).
    #[allow(deprecated)] // burn-tch is marked deprecated upstream; it is our CUDA path.
    pub fn device(self) -> Result<Device, String> {
        match self {
            #[cfg(feature = "flex")]
            Self::Cpu => Ok(Device::flex()),
            #[cfg(all(feature = "tch", not(feature = "flex")))]
            Self::Cpu => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            Self::Cuda(index) => Ok(Device::libtorch_cuda(index)),
            #[cfg(not(feature = "tch"))]
            Self::Cuda(_) => Err(format!(
                "device {self}: this worker was built without CUDA support; \
                 rebuild it with `--features tch` (LibTorch) to train on a GPU"
            )),
            #[allow(unreachable_patterns)]
            _ => Err(format!(
                "device {self}: this worker was built with no backend for it"
            )),
        }
    }
}

/// The CPU device the tests build models on.
#[cfg(test)]
pub fn test_device() -> Device {
    DeviceChoice::Cpu
        .device()
        .expect("a CPU backend is built in")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().contains("gpu"));
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn cuda_without_tch_says_how_to_get_it() {
        let err = DeviceChoice::Cuda(0).device().unwrap_err();
        assert!(err.contains("--features tch"), "{err}");
    }
}
