//! Training computes with subnormal floats flushed to zero.
//!
//! Adam's first moment decays by β₁ = 0.9 a step wherever a weight's
//! gradient is zero (a dead unit, a border pixel that is almost always 0),
//! and spends about 150 steps in f32's subnormal range (below 1.2e-38) on
//! its way to zero. Intel CPUs compute on subnormals in microcode, many
//! times slower than on normal floats: on a Xeon (family 6 model 106) an
//! epoch of DNN1 at batch 10 took 27 s with them and 11-17 s without, with
//! the same losses and accuracies to the printed digits
//! (docs/BENCHMARKS.md). So a task runs with the x86 control register's
//! flush-to-zero and denormals-are-zero bits set, as TensorFlow and XLA run
//! on CPU: a result that would be subnormal is 0, a subnormal operand reads
//! as 0. Numbers that small are far below anything a loss, a weight or an
//! Adam step can show (Adam's ε is 1e-8), and the rule is the same on every
//! x86-64 CPU, so a task's numbers stay the same from one CPU to the next
//! wherever they were before.
//!
//! The bits are per thread: [`flush_to_zero`] sets them on the calling
//! thread and on every thread of its rayon pool, where flex's ops and the
//! worker's kernels run their parallel parts, so a task's numbers do not
//! depend on which thread computed what. Every later computation of those
//! threads flushes too; in a worker they only train. LibTorch's own threads
//! are LibTorch's. Elsewhere than on x86-64 nothing changes.

/// Flush-to-zero and denormals-are-zero, on the calling thread and on every
/// thread of its rayon pool (the global pool, from a thread outside any).
pub fn flush_to_zero() {
    on_this_thread();
    rayon::broadcast(|_| on_this_thread());
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn on_this_thread() {
    // MXCSR's FTZ (bit 15) and DAZ (bit 6); every x86-64 CPU has both.
    const FLUSH_TO_ZERO: u32 = 1 << 15;
    const DENORMALS_ARE_ZERO: u32 = 1 << 6;
    let mut csr: u32 = 0;
    // SAFETY: `stmxcsr` stores the register's 4 bytes into `csr` and
    // `ldmxcsr` loads them back with two control bits set, both supported
    // on x86-64, so neither can fault. Rust's compiler assumes IEEE
    // defaults when it folds constant float expressions at build time; the
    // only difference that makes here is that a subnormal result folded
    // from constants is kept where the same computation at run time gives
    // 0, and training computes on data, not on subnormal constants.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &raw mut csr, options(nostack, preserves_flags));
        csr |= FLUSH_TO_ZERO | DENORMALS_ARE_ZERO;
        std::arch::asm!(
            "ldmxcsr [{}]",
            in(reg) &raw const csr,
            options(nostack, preserves_flags, readonly)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn on_this_thread() {}
