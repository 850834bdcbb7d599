//! The adapter's practical f32 multiply-add peak, for the benchmark (`salient bench
//! --gpu-matmul`): a dedicated tiled kernel (`shaders/matmul_peak.wgsl`), as the page's bench
//! measures wasm's. The engine reads no clock: the caller times [`Gpu::peak_products`].

use super::{Buf, Gpu};
use crate::engine::error::{EngineError, Result};

/// Two square matrices of order `n` and their product's buffer.
pub struct PeakOperands {
    n: usize,
    a: Buf,
    b: Buf,
    c: Buf,
}

impl Gpu {
    /// Operands A and B, row-major, of order `n`, a multiple of 64 (the kernel's tile).
    pub fn peak_operands(&self, n: usize, a: &[f32], b: &[f32]) -> Result<PeakOperands> {
        if n == 0 || !n.is_multiple_of(64) || a.len() != n * n || b.len() != n * n {
            return Err(EngineError::InvalidRequest(format!(
                "operands of order {n} (a multiple of 64) must hold n² values"
            )));
        }
        Ok(PeakOperands { n, a: self.upload(a)?, b: self.upload(b)?, c: self.zeros(n * n)? })
    }

    /// `repeats` products of `operands`, submitted together and waited for: 2·n³ FLOPs each.
    /// Returns the first 64 values of the product's first row.
    pub async fn peak_products(&self, operands: &PeakOperands, repeats: usize) -> Result<Vec<f32>> {
        let source = || include_str!("shaders/matmul_peak.wgsl").into();
        let pipeline = self.pipeline("matmul-peak", source);
        let groups = (operands.n / 64) as u32;
        let buffers = [&operands.a.buffer, &operands.b.buffer, &operands.c.buffer];
        let mut step = self.step();
        for _ in 0..repeats {
            let params = [operands.n as u32, 0, 0, 0];
            self.dispatch(&mut step.encoder, &pipeline, &buffers, &params, [groups, groups]);
        }
        // Reading 64 values of the product waits for all of them, not for a copy of n².
        let corner = self.zeros(64)?;
        step.encoder.copy_buffer_to_buffer(&operands.c.buffer, 0, &corner.buffer, 0, 256);
        self.submit(step);
        self.read(&corner).await
    }
}
