//! The CPU backend: candle tensors, our own differentiable ops over them (`ops`), the matrix
//! kernels those ops call (`kernels`), the model families as differentiable decoders (`arch`,
//! `layers`) and gradients through them a segment of blocks at a time (`gradient`).

pub mod decoder;
pub mod gradient;
pub mod kernels;
pub(crate) mod layers;
pub mod memory;
pub(crate) mod ops;
