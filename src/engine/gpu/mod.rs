//! The engine's GPU backend, on `wgpu`: WebGPU in the browser, Vulkan, Metal or DX12 natively.
//! Weights stay on the device in their GGUF blocks and the shaders decode them; results come back
//! through a mapped staging buffer, which in a browser completes only after the worker returns to
//! its event loop: every read is `async`.
//!
//! `wgpu`'s objects are not `Send` under wasm atomics, so the GPU path runs on the thread that
//! made its [`Gpu`] (the single-threaded worker build in the page).

mod encodings;
mod matvec;

pub use matvec::MatrixOnGpu;

use crate::engine::error::{EngineError, Result};
use crate::engine::model::Model;
use wgpu::util::DeviceExt;

/// Which adapter computes: what the page and the CLI show.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterSummary {
    /// The adapter's name ("NVIDIA GeForce RTX 4060", "llvmpipe (LLVM 15.0.7, 256 bits)",
    /// "SwiftShader Device (Subzero)").
    pub name: String,
    /// "vulkan", "metal", "dx12", "webgpu".
    pub backend: String,
    /// The largest storage buffer binding the device was given, in bytes.
    pub max_binding_bytes: u64,
}

/// A device and its queue, with the limits it was created with.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pub adapter: AdapterSummary,
}

fn gpu_error(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Gpu(format!("{what}: {e}"))
}

impl Gpu {
    /// The best adapter there is, with the largest limits it offers (WebGPU's defaults cap a
    /// storage binding at 128 MiB, less than a larger model's vocabulary matrix).
    pub async fn new() -> Result<Self> {
        let backends = match cfg!(target_arch = "wasm32") {
            true => wgpu::Backends::BROWSER_WEBGPU,
            false => wgpu::Backends::PRIMARY,
        };
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = instance
            .request_adapter(&options)
            .await
            .map_err(|e| gpu_error("no GPU adapter is available", e))?;
        let mut limits = adapter.limits();
        // Sizes are counted in 4-byte words: some drivers offer 2³¹ − 1 bytes.
        limits.max_storage_buffer_binding_size &= !3;
        limits.max_buffer_size &= !3;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("salient"),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&descriptor)
            .await
            .map_err(|e| gpu_error("the GPU refused a device", e))?;
        let info = adapter.get_info();
        let adapter = AdapterSummary {
            name: info.name,
            backend: info.backend.to_string(),
            max_binding_bytes: limits.max_storage_buffer_binding_size,
        };
        Ok(Self { device, queue, adapter })
    }

    /// A storage buffer holding `bytes` (a multiple of 4 long).
    fn storage(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// A storage buffer of `len` f32 values, uninitialised.
    fn output(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// The `len` f32 values at the start of `buffer`, once the queue has computed them.
    async fn read(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let size = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        let (sender, receiver) = futures_channel::oneshot::channel();
        encoder.map_buffer_on_submit(&staging, wgpu::MapMode::Read, .., move |mapped| {
            let _ = sender.send(mapped);
        });
        let submitted = self.queue.submit([encoder.finish()]);
        // Natively the map completes inside a poll; in a browser, once the worker is idle.
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(submitted), timeout: None })
            .map_err(|e| gpu_error("the GPU did not finish", e))?;
        #[cfg(target_arch = "wasm32")]
        let _ = submitted;
        receiver
            .await
            .map_err(|_| EngineError::Gpu("the GPU device was lost".into()))?
            .map_err(|e| gpu_error("reading the GPU's result failed", e))?;
        let values = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| gpu_error("reading the GPU's result failed", e))?;
            // The mapped bytes need not be 4-byte aligned in a browser: copy, never cast.
            bytemuck::pod_collect_to_vec::<u8, f32>(&view)
        };
        staging.unmap();
        Ok(values)
    }

    /// A compute pipeline from WGSL `source`, entry point `main`.
    fn pipeline(&self, label: &str, source: &str) -> wgpu::ComputePipeline {
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        })
    }
}

/// What [`probe`] measured: the adapter, and how far its product of the model's token embedding
/// matrix with a vector is from the CPU's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    pub adapter: AdapterSummary,
    pub rows: usize,
    pub cols: usize,
    /// The largest |GPU − CPU| over the rows, relative to 1 + |CPU|.
    pub largest_difference: f64,
}

/// The model's token embedding matrix, as its file encodes it, times the embedding of the first
/// token, on the GPU and on the CPU.
pub async fn probe(model: &Model) -> Result<Probe> {
    let gpu = Gpu::new().await?;
    let matrix = &model.architecture.embedding;
    let x = matrix.dequantize_rows_f32(0..1)?.into_owned();
    let on_gpu = MatrixOnGpu::upload(&gpu, matrix)?.times(&gpu, &x).await?;
    let (rows, cols) = (matrix.rows(), matrix.cols());
    let mut largest_difference = 0f64;
    for (group, start) in
        (0..rows).step_by(4096).map(|start| (start..(start + 4096).min(rows), start))
    {
        let dense = matrix.dequantize_rows_f32(group.clone())?;
        for (r, row) in dense.chunks_exact(cols).enumerate() {
            let cpu: f64 = row.iter().zip(&x).map(|(w, x)| *w as f64 * *x as f64).sum();
            let difference = (on_gpu[start + r] as f64 - cpu).abs() / (1.0 + cpu.abs());
            largest_difference = largest_difference.max(difference);
        }
    }
    Ok(Probe { adapter: gpu.adapter, rows, cols, largest_difference })
}
