//! The one place that turns a device name into a burn device.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use sweep_proto::{Backend, DeviceKind};

/// Why a device cannot be used, with the device's name.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device {0:?}: expected cpu, cuda or cuda:N")]
    Name(String),
    #[error("device {device}: {why}")]
    NotBuiltIn {
        device: DeviceChoice,
        why: &'static str,
    },
    #[error("device {device} is not usable: {why}")]
    Unusable { device: DeviceChoice, why: String },
}

/// Where a worker trains: `cpu` or `cuda[:N]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, DeviceError> {
        match text {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|index| index.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Name(other.to_string())),
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
    pub fn kind(self) -> DeviceKind {
        match self {
            Self::Cpu => DeviceKind::Cpu,
            Self::Cuda(_) => DeviceKind::Cuda,
        }
    }

    /// The burn backend that serves this choice in this build.
    pub fn backend(self) -> Backend {
        match self {
            Self::Cpu if cfg!(feature = "flex") => Backend::Flex,
            _ => Backend::Tch,
        }
    }

    /// The burn device (without autodiff; training adds it). CPU work goes to
    /// flex when it is built in, CUDA to LibTorch (the `tch` feature).
    #[allow(deprecated)] // burn-tch is marked deprecated upstream; it is our CUDA path.
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            #[cfg(feature = "flex")]
            Self::Cpu => Ok(Device::flex()),
            #[cfg(all(feature = "tch", not(feature = "flex")))]
            Self::Cpu => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            Self::Cuda(index) => Ok(Device::libtorch_cuda(index)),
            #[cfg(not(feature = "tch"))]
            Self::Cuda(_) => Err(DeviceError::NotBuiltIn {
                device: self,
                why: "this worker was built without CUDA support; \
                      rebuild it with `--features tch` (LibTorch) to train on a GPU",
            }),
            #[allow(unreachable_patterns)]
            _ => Err(DeviceError::NotBuiltIn {
                device: self,
                why: "this worker was built with no backend for it",
            }),
        }
    }
}

impl DeviceChoice {
    /// The device, checked by computing on it once, so that a worker asked
    /// for a GPU it cannot use says so at start instead of failing every
    /// task (LibTorch panics on an unusable CUDA device).
    pub fn open(self) -> Result<Device, DeviceError> {
        let device = self.device()?;
        let probe = std::panic::catch_unwind(|| {
            let one = burn::tensor::Tensor::<1>::from_data(
                burn::tensor::TensorData::new(vec![1.0f32], [1]),
                &device,
            );
            (one.clone() + one).into_data().try_to_vec::<f32>()
        });
        let why = match probe {
            Ok(Ok(values)) if values == [2.0] => return Ok(device),
            Ok(Ok(values)) => format!("1 + 1 gave {values:?}"),
            Ok(Err(err)) => format!("cannot read a result back: {err:?}"),
            Err(panic) => crate::error::panic_message(panic.as_ref()),
        };
        Err(DeviceError::Unusable { device: self, why })
    }
}

/// Keeps LibTorch's CPU kernels on the calling task's share of the cores:
/// its intra-op pool is per calling thread (OpenMP) and would otherwise use
/// every core in every slot at once. flex computes on the pool its tasks
/// share (see [`crate::threads`]), so without `tch` there is nothing to do.
pub fn limit_threads(threads: usize) {
    #[cfg(feature = "tch")]
    tch::set_num_threads(threads.max(1) as i32);
    #[cfg(not(feature = "tch"))]
    let _ = threads;
}

/// What a worker tells the coordinator about its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    pub name: String,
    pub memory_bytes: u64,
}

impl DeviceChoice {
    /// The device's model and memory: for CUDA as `nvidia-smi` reports
    /// them, for the CPU the architecture, thread count and system memory.
    /// Unknown values stay empty rather than failing registration.
    pub fn describe(self) -> Description {
        match self {
            Self::Cpu => Description {
                name: format!(
                    "{} ({} threads)",
                    std::env::consts::ARCH,
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                ),
                memory_bytes: meminfo_total().unwrap_or(0),
            },
            Self::Cuda(index) => nvidia_smi(index).unwrap_or(Description {
                name: self.to_string(),
                memory_bytes: 0,
            }),
        }
    }
}

fn meminfo_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

/// `MemTotal:  24581232 kB` in bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn nvidia_smi(index: usize) -> Option<Description> {
    let output = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
            &format!("--id={index}"),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    parse_nvidia_smi(&String::from_utf8_lossy(&output.stdout))
}

/// `NVIDIA H100 80GB HBM3, 81559` (MiB) as a description.
fn parse_nvidia_smi(text: &str) -> Option<Description> {
    let (name, mib) = text.lines().next()?.rsplit_once(',')?;
    Some(Description {
        name: name.trim().to_string(),
        memory_bytes: mib.trim().parse::<u64>().ok()? << 20,
    })
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
        let parse = |text: &str| text.parse::<DeviceChoice>().ok();
        assert_eq!(parse("cpu"), Some(DeviceChoice::Cpu));
        assert_eq!(parse("cuda"), Some(DeviceChoice::Cuda(0)));
        assert_eq!(parse("cuda:3"), Some(DeviceChoice::Cuda(3)));
        let err = "gpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert_eq!(err, "device \"gpu\": expected cpu, cuda or cuda:N");
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn device_descriptions_parse() {
        let meminfo = "MemTotal:       24581232 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(24_581_232 * 1024));
        let smi = "NVIDIA H100 80GB HBM3, 81559\n";
        assert_eq!(
            parse_nvidia_smi(smi),
            Some(Description {
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_bytes: 81_559 << 20,
            })
        );
        assert_eq!(parse_nvidia_smi("garbage"), None);
        assert!(DeviceChoice::Cpu.describe().memory_bytes > 0);
    }

    #[test]
    fn the_cpu_opens_and_computes() {
        assert!(DeviceChoice::Cpu.open().is_ok());
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn cuda_without_tch_says_how_to_get_it() {
        let err = DeviceChoice::Cuda(0).device().unwrap_err().to_string();
        assert!(err.contains("--features tch"), "{err}");
    }
}
