//! Weight matrices on the device, in their file's blocks where the kernels decode them (else
//! decoded once, on the CPU, and sent as F32), cut into chunks of whole rows that each fit one
//! buffer binding: a large model's vocabulary matrix is larger than WebGPU binds by default.

use crate::engine::error::{EngineError, Result};
use crate::engine::gpu::encodings::{encoding, f32 as f32_encoding, Encoding};
use crate::engine::gpu::{Buf, Gpu};
use crate::engine::model::weights::QuantizedMatrix;

/// Rows `first_row..first_row + rows` of a matrix, in one buffer.
pub(crate) struct Chunk {
    pub words: wgpu::Buffer,
    pub first_row: usize,
    pub rows: usize,
}

/// A `rows × cols` matrix on the device.
pub struct GpuMatrix {
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) encoding: &'static Encoding,
    rows: usize,
    cols: usize,
}

impl GpuMatrix {
    /// `matrix` on `gpu`: its file's bytes where the kernels decode its encoding, else its values.
    pub fn upload(gpu: &Gpu, matrix: &QuantizedMatrix) -> Result<Self> {
        let (rows, cols) = (matrix.rows(), matrix.cols());
        let limit = gpu.max_values() as u64 * 4;
        match matrix.encoded_bytes().and_then(|(bytes, dtype)| Some((bytes, encoding(dtype)?))) {
            Some((bytes, encoding)) => {
                let row_bytes = encoding.row_bytes(cols);
                if bytes.len() != rows * row_bytes {
                    return Err(EngineError::Internal(format!(
                        "a {rows} × {cols} {} matrix of {} bytes",
                        encoding.name,
                        bytes.len()
                    )));
                }
                let chunks = Self::chunks(rows, row_bytes, limit)?
                    .map(|(first_row, n)| Chunk {
                        words: gpu
                            .bytes(&bytes[first_row * row_bytes..(first_row + n) * row_bytes]),
                        first_row,
                        rows: n,
                    })
                    .collect();
                Ok(Self { chunks, encoding, rows, cols })
            }
            None => {
                let encoding = f32_encoding();
                let chunks = Self::chunks(rows, encoding.row_bytes(cols), limit)?
                    .map(|(first_row, n)| {
                        let values = matrix.dequantize_rows_f32(first_row..first_row + n)?;
                        let words = gpu.bytes(bytemuck::cast_slice(&values));
                        Ok(Chunk { words, first_row, rows: n })
                    })
                    .collect::<Result<_>>()?;
                Ok(Self { chunks, encoding, rows, cols })
            }
        }
    }

    /// Runs of whole rows of `row_bytes` each, each at most `limit` bytes.
    fn chunks(
        rows: usize,
        row_bytes: usize,
        limit: u64,
    ) -> Result<impl Iterator<Item = (usize, usize)>> {
        let per_chunk = (limit / row_bytes.max(1) as u64) as usize;
        if per_chunk == 0 {
            return Err(EngineError::Gpu(format!(
                "one row of a weight matrix ({row_bytes} bytes) is larger than this GPU binds"
            )));
        }
        Ok((0..rows).step_by(per_chunk).map(move |first| (first, per_chunk.min(rows - first))))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of one row in the device's encoding.
    pub(crate) fn row_bytes(&self) -> usize {
        self.encoding.row_bytes(self.cols)
    }

    /// `W · x` for one vector `x`, one value per row (the probe).
    pub async fn times(&self, gpu: &Gpu, x: &[f32]) -> Result<Vec<f32>> {
        if x.len() != self.cols {
            return Err(EngineError::Internal(format!(
                "a vector of {} for {} columns",
                x.len(),
                self.cols
            )));
        }
        let input = gpu.upload(x)?;
        let output: Buf = gpu.zeros(self.rows)?;
        let mut step = gpu.step();
        gpu.linear(&mut step.encoder, self, None, &input, 1, &output, self.rows, 0);
        gpu.submit(step);
        gpu.read(&output).await
    }
}
