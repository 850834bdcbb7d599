//! The GPU backend against the CPU engine, on whatever adapter this machine has: on the build
//! machines, Mesa's software Vulkan device (lavapipe, installed by `scripts/setup.sh`). Without
//! any adapter each test says SKIP (counted by `scripts/test.sh`) and checks nothing.

mod common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use salient::engine::gpu::{Gpu, MatrixOnGpu};
use salient::engine::model::weights::QuantizedMatrix;
use std::sync::Arc;

fn gpu(test: &str) -> Option<Gpu> {
    match pollster::block_on(Gpu::new()) {
        Ok(gpu) => {
            eprintln!("{test}: {} ({})", gpu.adapter.name, gpu.adapter.backend);
            Some(gpu)
        }
        Err(e) => {
            common::skip(test, &e.to_string());
            None
        }
    }
}

/// A random `rows × cols` matrix in `dtype`'s blocks, as a GGUF would hold it.
fn matrix(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> QuantizedMatrix {
    let mut rng = common::Rng::new(seed);
    let values: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
    let tensor = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
    let bytes = QTensor::quantize(&tensor, dtype).unwrap().data().unwrap().into_owned();
    QuantizedMatrix::new(Arc::new(bytes), 0, dtype, rows, cols).unwrap()
}

#[test]
fn a_matrix_in_its_blocks_times_a_vector_matches_the_cpu() {
    let Some(gpu) = gpu("a_matrix_in_its_blocks_times_a_vector_matches_the_cpu") else { return };
    // More rows than one dispatch dimension holds, and rows of several blocks (Q8_0's blocks of
    // 34 bytes start mid-word).
    for (dtype, rows, cols) in [(GgmlDType::Q4_1, 70_000, 96), (GgmlDType::Q8_0, 1_001, 160)] {
        let matrix = matrix(dtype, rows, cols, 7);
        let mut rng = common::Rng::new(3);
        let x: Vec<f32> = (0..cols).map(|_| rng.normal() as f32).collect();
        let on_gpu = MatrixOnGpu::upload(&gpu, &matrix).unwrap();
        let y = pollster::block_on(on_gpu.times(&gpu, &x)).unwrap();
        let dense = matrix.dequantize_rows_f32(0..rows).unwrap();
        let mut worst = 0f64;
        for (r, got) in y.iter().enumerate() {
            let want: f64 =
                dense[r * cols..][..cols].iter().zip(&x).map(|(w, x)| *w as f64 * *x as f64).sum();
            worst = worst.max((*got as f64 - want).abs() / (1.0 + want.abs()));
        }
        assert_eq!(y.len(), rows);
        assert!(worst < 1e-4, "{dtype:?}: largest relative difference {worst}");
    }
}
