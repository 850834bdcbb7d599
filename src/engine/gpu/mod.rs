//! The engine's GPU backend, on `wgpu`: WebGPU in the browser, Vulkan, Metal or DX12 natively. It
//! computes the same decoder forward pass and input-gradient backward pass as the CPU backend,
//! with its own kernels (`shaders/`, one WGSL file each, dispatched by `kernels.rs`). Weights
//! stay on the device in their GGUF blocks and the kernels decode them (`encodings/`,
//! `weights.rs`); the activations a backward pass needs stay on the device too, each block's
//! recomputed from its input (`decoder.rs`). Results come back through a mapped staging buffer,
//! which in a browser completes only after the worker returns to its event loop: every read is
//! `async`.
//!
//! `wgpu`'s objects are not `Send` under wasm atomics, so the GPU backend is built for every
//! target but the page's multi-threaded worker: the page computes on the GPU in its
//! single-threaded worker.

mod decoder;
mod encodings;
mod kernels;
mod peak;
mod weights;

pub use decoder::{GpuDecoder, GpuPass, TextKeys};
pub use peak::PeakOperands;
pub use weights::GpuMatrix;

use crate::engine::error::{EngineError, Result};
use crate::engine::model::Model;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Which adapter computes: what the page and the CLI show.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterSummary {
    /// The adapter's name ("NVIDIA GeForce RTX 4060", "llvmpipe (LLVM 15.0.7, 256 bits)"); in a
    /// browser, which leaves it empty, the front end fills in what the browser says.
    pub name: String,
    /// "vulkan", "metal", "dx12", "webgpu".
    pub backend: String,
    /// The largest storage buffer binding the device was given, in bytes.
    pub max_binding_bytes: u64,
    /// The largest buffer the device was given, in bytes.
    pub max_buffer_bytes: u64,
}

/// A device and its queue, with the limits it was created with, its compiled kernels, and the
/// errors it reported.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// Errors the device reported (a validation error, out of memory, a lost device): the next
    /// read fails with them.
    errors: Arc<Mutex<Vec<String>>>,
    /// A 4-byte buffer for the bindings a kernel declares but a call does not use.
    unused: wgpu::Buffer,
}

fn gpu_error(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Gpu(format!("{what}: {e}"))
}

/// The kernels of one step (a block, say), recorded together and sent at once.
pub(crate) struct Step {
    pub encoder: wgpu::CommandEncoder,
    temporary: Vec<wgpu::Buffer>,
}

/// A buffer of f32 values on the device.
pub struct Buf {
    buffer: wgpu::Buffer,
    len: usize,
}

impl Buf {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
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
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            // Natively an error nobody captures would panic: keep it for the next read instead.
            let errors = errors.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut errors) = errors.lock() {
                    errors.push(e.to_string());
                }
            }));
        }
        {
            let errors = errors.clone();
            device.set_device_lost_callback(move |_, message| {
                if let Ok(mut errors) = errors.lock() {
                    errors.push(format!("the GPU device was lost ({message})"));
                }
            });
        }
        let info = adapter.get_info();
        let adapter = AdapterSummary {
            name: info.name,
            backend: info.backend.to_string(),
            max_binding_bytes: limits.max_storage_buffer_binding_size,
            max_buffer_bytes: limits.max_buffer_size,
        };
        let unused = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused"),
            size: 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Self { device, queue, adapter, pipelines: Mutex::default(), errors, unused })
    }

    /// Binds at most `bytes` per buffer, fewer than the device allows: to plan for a browser's
    /// smaller limits, and to test what splits large matrices.
    pub fn limit_bindings(&mut self, bytes: u64) {
        self.adapter.max_binding_bytes = self.adapter.max_binding_bytes.min(bytes & !3);
    }

    /// The largest number of f32 values one buffer the kernels bind may hold.
    pub fn max_values(&self) -> usize {
        (self.adapter.max_binding_bytes.min(self.adapter.max_buffer_bytes) / 4) as usize
    }

    fn check_size(&self, len: usize, what: &str) -> Result<()> {
        match len <= self.max_values() {
            true => Ok(()),
            false => Err(EngineError::Gpu(format!(
                "{what} needs {} MB in one buffer, more than this GPU binds ({} MB)",
                len * 4 / 1_000_000,
                self.max_values() * 4 / 1_000_000
            ))),
        }
    }

    /// A buffer of `len` zeros (WebGPU creates buffers zeroed).
    pub fn zeros(&self, len: usize) -> Result<Buf> {
        self.check_size(len, "a step of the computation")?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Buf { buffer, len })
    }

    /// `values` on the device.
    pub fn upload(&self, values: &[f32]) -> Result<Buf> {
        self.check_size(values.len(), "the input")?;
        let buffer = self.bytes(bytemuck::cast_slice(values));
        Ok(Buf { buffer, len: values.len() })
    }

    /// A storage buffer holding `bytes`, padded to whole words.
    fn bytes(&self, bytes: &[u8]) -> wgpu::Buffer {
        let mut padded;
        let contents = match bytes.len() % 4 {
            0 if !bytes.is_empty() => bytes,
            _ => {
                padded = bytes.to_vec();
                padded.resize(bytes.len().next_multiple_of(4).max(4), 0);
                &padded
            }
        };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// A step's command encoder, and the buffers that live only as long as its kernels.
    fn step(&self) -> Step {
        Step {
            encoder: self.device.create_command_encoder(&Default::default()),
            temporary: Vec::new(),
        }
    }

    /// A buffer of `len` zeros that lives only until `step` has run.
    fn temporary(&self, step: &mut Step, len: usize) -> Result<Buf> {
        let buf = self.zeros(len)?;
        step.temporary.push(buf.buffer.clone());
        Ok(buf)
    }

    /// Sends `step`'s kernels to the device, then frees its temporary buffers (a browser would
    /// otherwise keep them until its garbage collector ran; the device frees them once the
    /// kernels are done).
    fn submit(&self, step: Step) {
        self.queue.submit([step.encoder.finish()]);
        for buffer in step.temporary {
            buffer.destroy();
        }
    }

    /// The errors the device reported since the last check, as one error.
    fn reported(&self) -> Result<()> {
        let errors = std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()));
        match errors.first() {
            None => Ok(()),
            Some(first) => {
                Err(EngineError::Gpu(first.split_whitespace().collect::<Vec<_>>().join(" ")))
            }
        }
    }

    /// `buffer`'s values, once the device has computed them.
    pub async fn read(&self, buffer: &Buf) -> Result<Vec<f32>> {
        let size = (buffer.len.max(1) * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&buffer.buffer, 0, &staging, 0, size);
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
        let mapped = receiver.await;
        self.reported()?;
        mapped
            .map_err(|_| EngineError::Gpu("the GPU device was lost".into()))?
            .map_err(|e| gpu_error("reading the GPU's result failed", e))?;
        let mut values = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| gpu_error("reading the GPU's result failed", e))?;
            // The mapped bytes need not be 4-byte aligned in a browser: copy, never cast.
            bytemuck::pod_collect_to_vec::<u8, f32>(&view)
        };
        staging.unmap();
        values.truncate(buffer.len);
        Ok(values)
    }

    /// Destroys the device (see `GpuDecoder::lose_device`).
    pub fn lose(&self) {
        self.device.destroy();
    }

    /// The compute pipeline of WGSL `source` (entry point `main`), compiled once per `key`.
    fn pipeline(&self, key: &str, source: impl FnOnce() -> String) -> Arc<wgpu::ComputePipeline> {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        pipelines
            .entry(key.to_string())
            .or_insert_with(|| {
                let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(key),
                    source: wgpu::ShaderSource::Wgsl(source().into()),
                });
                Arc::new(self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(key),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                }))
            })
            .clone()
    }

    /// Records `pipeline` on `buffers` (bindings 0, 1, …) and `params` (the uniform binding after
    /// them) over `groups` workgroups.
    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        params: &[u32],
        groups: [u32; 2],
    ) {
        let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: buffers.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], 1);
    }
}

/// A grid of at least `count` workgroups, at most 65,535 along a dimension.
fn grid(count: usize) -> [u32; 2] {
    let count = count.max(1) as u32;
    [count.min(65_535), count.div_ceil(65_535)]
}

/// What [`probe`] measured: the adapter, and how far its product of the model's output matrix
/// with a vector is from the CPU's.
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
    let on_gpu = GpuMatrix::upload(&gpu, matrix)?.times(&gpu, &x).await?;
    let (rows, cols) = (matrix.rows(), matrix.cols());
    let mut largest_difference = 0f64;
    for start in (0..rows).step_by(4096) {
        let dense = matrix.dequantize_rows_f32(start..(start + 4096).min(rows))?;
        for (r, row) in dense.chunks_exact(cols).enumerate() {
            let cpu: f64 = row.iter().zip(&x).map(|(w, x)| *w as f64 * *x as f64).sum();
            let difference = (on_gpu[start + r] as f64 - cpu).abs() / (1.0 + cpu.abs());
            largest_difference = largest_difference.max(difference);
        }
    }
    Ok(Probe { adapter: gpu.adapter, rows, cols, largest_difference })
}
