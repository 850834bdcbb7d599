//! The engine's own differentiable candle ops, one per file, each with an analytic backward pass.

pub(crate) mod causal_softmax;
pub(crate) mod custom_op;
pub(crate) mod gelu;
pub(crate) mod head_product;
pub(crate) mod linear;
pub(crate) mod rms_norm;
pub(crate) mod rope;
pub(crate) mod swiglu;
