//! A matrix in its GGUF blocks on the GPU, and its product with a vector, `y = W · x`, decoded
//! inside the shader: the spike that settles the GPU backend's seam (upload, a decoding kernel,
//! an awaited read).

use crate::engine::error::{EngineError, Result};
use crate::engine::gpu::encodings::encoding;
use crate::engine::gpu::{gpu_error, Gpu};
use crate::engine::model::weights::QuantizedMatrix;
use wgpu::util::DeviceExt;

/// A `rows × cols` matrix on the GPU, in its file's blocks.
pub struct MatrixOnGpu {
    blocks: wgpu::Buffer,
    rows: usize,
    cols: usize,
    /// Bytes per block of 32 values.
    block_bytes: u32,
    /// The encoding's `block_dot`.
    decode: &'static str,
}

impl MatrixOnGpu {
    /// `matrix`'s file bytes, as they are.
    pub fn upload(gpu: &Gpu, matrix: &QuantizedMatrix) -> Result<Self> {
        let (bytes, dtype) = matrix.encoded_bytes().ok_or_else(|| {
            EngineError::Gpu("the matrix is kept decoded, not in its file's blocks".into())
        })?;
        let (block_bytes, decode) = encoding(dtype).ok_or_else(|| {
            EngineError::Gpu(format!("{dtype:?} blocks are not decoded on the GPU yet"))
        })?;
        if bytes.len() as u64 > gpu.adapter.max_binding_bytes {
            return Err(gpu_error(
                "the matrix is larger than one GPU buffer binding",
                format!("{} bytes", bytes.len()),
            ));
        }
        // Storage is read in whole words: the last block may end mid-word.
        let mut words = bytes.to_vec();
        words.resize(bytes.len().next_multiple_of(4), 0);
        let blocks = gpu.storage("matrix blocks", &words);
        Ok(Self { blocks, rows: matrix.rows(), cols: matrix.cols(), block_bytes, decode })
    }

    /// `W · x`, one value per row.
    pub async fn times(&self, gpu: &Gpu, x: &[f32]) -> Result<Vec<f32>> {
        if x.len() != self.cols {
            return Err(EngineError::Internal(format!(
                "a vector of {} for {} columns",
                x.len(),
                self.cols
            )));
        }
        let source = format!("{}\n{}", include_str!("matvec.wgsl"), self.decode);
        let pipeline = gpu.pipeline("matrix × vector", &source);
        let input = gpu.storage("x", bytemuck::cast_slice(x));
        let output = gpu.output("y", self.rows);
        let sizes = [self.rows as u32, self.cols as u32, (self.cols / 32) as u32, self.block_bytes];
        let uniform = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("sizes"),
            contents: bytemuck::cast_slice(&sizes),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.blocks.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: input.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: output.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 3, resource: uniform.as_entire_binding() },
            ],
        });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            // One workgroup per row, over two dimensions past the 65,535 a dimension allows.
            let rows = self.rows as u32;
            pass.dispatch_workgroups(rows.min(65_535), rows.div_ceil(65_535), 1);
        }
        gpu.queue.submit([encoder.finish()]);
        gpu.read(&output, self.rows).await
    }
}
