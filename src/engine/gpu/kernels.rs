//! One function per kernel (`shaders/`): what it binds, its sizes, and its grid. Each records
//! its kernel into the caller's encoder; the decoder submits a block's kernels at once.

use crate::engine::gpu::weights::GpuMatrix;
use crate::engine::gpu::{grid, Buf, Gpu};

/// A norm on the device: RMSNorm (no bias) or LayerNorm (with its bias).
pub(crate) struct GpuNorm {
    pub weight: Buf,
    pub bias: Option<Buf>,
    pub eps: f32,
}

/// Where one sequence's attention reads its heads: a row stride and the offset of its part (the
/// queries, keys and values lie side by side in one buffer).
#[derive(Clone, Copy)]
pub(crate) struct Part {
    pub stride: usize,
    pub offset: usize,
}

/// The shape of one attention call: `batch` sequences of `seq` new positions after `past` shared
/// ones.
#[derive(Clone, Copy)]
pub(crate) struct Heads {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub past: usize,
}

impl Heads {
    fn sizes(&self) -> [u32; 4] {
        [self.batch, self.seq, self.heads, self.kv_heads].map(|v| v as u32)
    }
}

macro_rules! shader {
    ($name:literal) => {
        include_str!(concat!("shaders/", $name, ".wgsl"))
    };
}

/// A row-per-workgroup kernel with the `row_sum` reduction it calls.
fn row_reduced(kernel: &str) -> String {
    format!("{}\n{kernel}", shader!("row_sum"))
}

/// Elementwise grids: 256 threads per workgroup.
fn threads(count: usize) -> [u32; 2] {
    grid(count.div_ceil(256))
}

impl Gpu {
    /// `y[r, y_offset + n] = x[r] · W[n]ᵀ (+ bias)` for `rows` rows of `x`, `y`'s rows
    /// `y_stride` apart: each chunk of `w` writes its columns.
    #[allow(clippy::too_many_arguments)] // the product's operands and where it writes
    pub(crate) fn linear(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        w: &GpuMatrix,
        bias: Option<&Buf>,
        x: &Buf,
        rows: usize,
        y: &Buf,
        y_stride: usize,
        y_offset: usize,
    ) {
        let name = format!("linear-{}", w.encoding.name);
        let pipeline =
            self.pipeline(&name, || format!("{}\n{}", w.encoding.decoder(), shader!("linear")));
        for chunk in &w.chunks {
            let params = [
                rows,
                chunk.rows,
                w.cols(),
                w.row_bytes(),
                y_stride,
                y_offset + chunk.first_row,
                bias.map_or(u32::MAX as usize, |_| chunk.first_row),
                w.cols().div_ceil(32),
            ]
            .map(|v| v as u32);
            let bias = bias.map_or(&self.unused, |b| &b.buffer);
            let groups = [chunk.rows.div_ceil(64) as u32, rows.div_ceil(64) as u32];
            self.dispatch(
                encoder,
                &pipeline,
                &[&chunk.words, &x.buffer, bias, &y.buffer],
                &params,
                groups,
            );
        }
    }

    /// `dx[r] (+)= Σ_n dy[r, dy_offset + n] · W[n]` for `rows` rows, `dy`'s rows `dy_stride`
    /// apart: the input gradient of [`Self::linear`].
    #[allow(clippy::too_many_arguments)] // the product's operands and where it reads
    pub(crate) fn linear_grad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        w: &GpuMatrix,
        dy: &Buf,
        rows: usize,
        dy_stride: usize,
        dy_offset: usize,
        dx: &Buf,
        accumulate: bool,
    ) {
        let name = format!("linear-grad-{}", w.encoding.name);
        let pipeline = self
            .pipeline(&name, || format!("{}\n{}", w.encoding.decoder(), shader!("linear_grad")));
        for (i, chunk) in w.chunks.iter().enumerate() {
            let params = [
                rows,
                chunk.rows,
                w.cols(),
                w.row_bytes(),
                dy_stride,
                dy_offset + chunk.first_row,
                (accumulate || i > 0) as usize,
                0,
            ]
            .map(|v| v as u32);
            let groups = [w.cols().div_ceil(64) as u32, rows.div_ceil(64) as u32];
            self.dispatch(
                encoder,
                &pipeline,
                &[&chunk.words, &dy.buffer, &dx.buffer],
                &params,
                groups,
            );
        }
    }

    /// `norm` on `rows` rows of `x` into `y`.
    pub(crate) fn norm(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        norm: &GpuNorm,
        x: &Buf,
        rows: usize,
        y: &Buf,
    ) {
        let params = [rows as u32, norm.weight.len as u32, norm.eps.to_bits(), 0];
        match &norm.bias {
            None => {
                let pipeline = self.pipeline("rms-norm", || row_reduced(shader!("rms_norm")));
                let buffers = [&x.buffer, &norm.weight.buffer, &y.buffer];
                self.dispatch(encoder, &pipeline, &buffers, &params, grid(rows));
            }
            Some(bias) => {
                let pipeline = self.pipeline("layer-norm", || row_reduced(shader!("layer_norm")));
                let buffers = [&x.buffer, &norm.weight.buffer, &bias.buffer, &y.buffer];
                self.dispatch(encoder, &pipeline, &buffers, &params, grid(rows));
            }
        }
    }

    /// `dx (+)=` the input gradient of [`Self::norm`] at `x` for the output gradient `dy`.
    #[allow(clippy::too_many_arguments)] // the norm, its input, and the gradients in and out
    pub(crate) fn norm_grad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        norm: &GpuNorm,
        x: &Buf,
        dy: &Buf,
        rows: usize,
        dx: &Buf,
        accumulate: bool,
    ) {
        let params = [rows as u32, norm.weight.len as u32, norm.eps.to_bits(), accumulate as u32];
        let pipeline = match norm.bias {
            None => self.pipeline("rms-norm-grad", || row_reduced(shader!("rms_norm_grad"))),
            Some(_) => self.pipeline("layer-norm-grad", || row_reduced(shader!("layer_norm_grad"))),
        };
        let buffers = [&x.buffer, &norm.weight.buffer, &dy.buffer, &dx.buffer];
        self.dispatch(encoder, &pipeline, &buffers, &params, grid(rows));
    }

    /// Rotates, in place, the `heads` heads at `part` of `rows` rows by their positions' angles
    /// (`tables`: cos and sin per position of a sequence and pair), or back with `inverse`.
    #[allow(clippy::too_many_arguments)] // the rows, their heads' place, the tables and the sense
    pub(crate) fn rope(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Buf,
        rows: usize,
        heads: usize,
        head_dim: usize,
        part: Part,
        tables: &(Buf, Buf),
        halves: bool,
        inverse: bool,
    ) {
        let seq = tables.0.len / (head_dim / 2).max(1);
        let params = [
            rows,
            heads,
            head_dim,
            seq,
            part.stride,
            part.offset,
            halves as usize,
            inverse as usize,
        ]
        .map(|v| v as u32);
        let pipeline = self.pipeline("rope", || shader!("rope").into());
        let buffers = [&x.buffer, &tables.0.buffer, &tables.1.buffer];
        self.dispatch(encoder, &pipeline, &buffers, &params, threads(rows * heads * head_dim / 2));
    }

    /// Attention probabilities `(batch, heads, seq, past + seq)` of the queries at `q` over the
    /// keys at `k` (after a shared prefix's at `past_k`), scaled by `scale`.
    #[allow(clippy::too_many_arguments)] // the shape, the three operands and their places
    pub(crate) fn attention_scores(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: Heads,
        scale: f32,
        qkv: &Buf,
        q: Part,
        k: Part,
        past: Option<(&Buf, Part)>,
        probs: &Buf,
    ) {
        let (past_k, past_part) =
            past.map_or((&self.unused, Part { stride: 0, offset: 0 }), |(b, p)| (&b.buffer, p));
        let [b, s, h, kv] = shape.sizes();
        let params = [
            b,
            s,
            h,
            kv,
            shape.head_dim as u32,
            shape.past as u32,
            scale.to_bits(),
            0,
            q.stride as u32,
            q.offset as u32,
            k.stride as u32,
            k.offset as u32,
            past_part.stride as u32,
            past_part.offset as u32,
            0,
            0,
        ];
        let pipeline = self.pipeline("attention-scores", || shader!("attention_scores").into());
        let buffers = [&qkv.buffer, &qkv.buffer, past_k, &probs.buffer];
        self.dispatch(
            encoder,
            &pipeline,
            &buffers,
            &params,
            grid(shape.batch * shape.heads * shape.seq),
        );
    }

    /// Attention's output `(batch · seq, heads · head_dim)` from `probs` and the values at `v`
    /// (after a shared prefix's at `past_v`).
    #[allow(clippy::too_many_arguments)] // the shape, the operands and their places
    pub(crate) fn attention_mix(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: Heads,
        probs: &Buf,
        qkv: &Buf,
        v: Part,
        past: Option<(&Buf, Part)>,
        out: &Buf,
    ) {
        let (past_v, past_part) =
            past.map_or((&self.unused, Part { stride: 0, offset: 0 }), |(b, p)| (&b.buffer, p));
        let [b, s, h, kv] = shape.sizes();
        let params = [
            b,
            s,
            h,
            kv,
            shape.head_dim as u32,
            shape.past as u32,
            0,
            0,
            v.stride as u32,
            v.offset as u32,
            past_part.stride as u32,
            past_part.offset as u32,
        ];
        let pipeline = self.pipeline("attention-mix", || shader!("attention_mix").into());
        let buffers = [&probs.buffer, &qkv.buffer, past_v, &out.buffer];
        let values = shape.batch * shape.seq * shape.heads * shape.head_dim;
        self.dispatch(encoder, &pipeline, &buffers, &params, threads(values));
    }

    /// The gradient of the scores (`d_scores`, scaled) from the output gradient `d_o`.
    #[allow(clippy::too_many_arguments)] // the shape, the operands and their places
    pub(crate) fn attention_dscores(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: Heads,
        scale: f32,
        probs: &Buf,
        d_o: &Buf,
        qkv: &Buf,
        v: Part,
        d_scores: &Buf,
    ) {
        let [b, s, h, kv] = shape.sizes();
        let params =
            [b, s, h, kv, shape.head_dim as u32, scale.to_bits(), v.stride as u32, v.offset as u32];
        let pipeline = self.pipeline("attention-dscores", || shader!("attention_dscores").into());
        let buffers = [&probs.buffer, &d_o.buffer, &qkv.buffer, &d_scores.buffer];
        self.dispatch(
            encoder,
            &pipeline,
            &buffers,
            &params,
            grid(shape.batch * shape.heads * shape.seq),
        );
    }

    /// The queries' gradient, into `dqkv` at `dq`, from the scores' gradient and the keys.
    #[allow(clippy::too_many_arguments)] // the shape, the operands and their places
    pub(crate) fn attention_dq(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: Heads,
        d_scores: &Buf,
        qkv: &Buf,
        k: Part,
        dqkv: &Buf,
        dq: Part,
    ) {
        let [b, s, h, kv] = shape.sizes();
        let params = [
            b,
            s,
            h,
            kv,
            shape.head_dim as u32,
            0,
            k.stride as u32,
            k.offset as u32,
            dq.stride as u32,
            dq.offset as u32,
            0,
            0,
        ];
        let pipeline = self.pipeline("attention-dq", || shader!("attention_dq").into());
        let buffers = [&d_scores.buffer, &qkv.buffer, &dqkv.buffer];
        let values = shape.batch * shape.seq * shape.heads * shape.head_dim;
        self.dispatch(encoder, &pipeline, &buffers, &params, threads(values));
    }

    /// The keys' and values' gradients, into `dqkv` at the offsets of `dk` and `dv`.
    #[allow(clippy::too_many_arguments)] // the shape, the operands and their places
    pub(crate) fn attention_dkv(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: Heads,
        d_scores: &Buf,
        probs: &Buf,
        qkv: &Buf,
        q: Part,
        d_o: &Buf,
        dqkv: &Buf,
        (dk, dv): (Part, Part),
    ) {
        let [b, s, h, kv] = shape.sizes();
        let params = [
            b,
            s,
            h,
            kv,
            shape.head_dim as u32,
            0,
            q.stride as u32,
            q.offset as u32,
            dk.stride as u32,
            dk.offset as u32,
            dv.offset as u32,
            0,
        ];
        let pipeline = self.pipeline("attention-dkv", || shader!("attention_dkv").into());
        let buffers = [&d_scores.buffer, &probs.buffer, &qkv.buffer, &d_o.buffer, &dqkv.buffer];
        let values = shape.batch * shape.seq * shape.kv_heads * shape.head_dim;
        self.dispatch(encoder, &pipeline, &buffers, &params, threads(values));
    }

    /// `h = silu(gate) · up` from the two projections side by side in `gate_up`.
    pub(crate) fn swiglu(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        gate_up: &Buf,
        rows: usize,
        width: usize,
        h: &Buf,
    ) {
        let pipeline = self.pipeline("swiglu", || shader!("swiglu").into());
        let params = [rows as u32, width as u32, 0, 0];
        self.dispatch(
            encoder,
            &pipeline,
            &[&gate_up.buffer, &h.buffer],
            &params,
            threads(rows * width),
        );
    }

    /// The gradients of [`Self::swiglu`] with respect to both projections, side by side.
    pub(crate) fn swiglu_grad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        gate_up: &Buf,
        dh: &Buf,
        rows: usize,
        width: usize,
        d_gate_up: &Buf,
    ) {
        let pipeline = self.pipeline("swiglu-grad", || shader!("swiglu_grad").into());
        let params = [rows as u32, width as u32, 0, 0];
        let buffers = [&gate_up.buffer, &dh.buffer, &d_gate_up.buffer];
        self.dispatch(encoder, &pipeline, &buffers, &params, threads(rows * width));
    }

    /// GELU of `x` into `y`, or with `dy` the gradient `dy · gelu'(x)`.
    pub(crate) fn gelu(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Buf,
        dy: Option<&Buf>,
        y: &Buf,
    ) {
        let pipeline = self.pipeline("gelu", || shader!("gelu").into());
        let params = [x.len as u32, dy.is_some() as u32, 0, 0];
        let dy = dy.map_or(&self.unused, |b| &b.buffer);
        self.dispatch(encoder, &pipeline, &[&x.buffer, dy, &y.buffer], &params, threads(x.len));
    }

    /// `y = a + b`.
    pub(crate) fn add(&self, encoder: &mut wgpu::CommandEncoder, a: &Buf, b: &Buf, y: &Buf) {
        let pipeline = self.pipeline("add", || shader!("add").into());
        let params = [a.len as u32, 0, 0, 0];
        self.dispatch(
            encoder,
            &pipeline,
            &[&a.buffer, &b.buffer, &y.buffer],
            &params,
            threads(a.len),
        );
    }

    /// Each sequence's last row of `stream` into `last` (`gather`), or `last` added back into
    /// `stream`'s last rows.
    #[allow(clippy::too_many_arguments)] // the two buffers, their shape and the direction
    pub(crate) fn last_rows(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        stream: &Buf,
        last: &Buf,
        batch: usize,
        seq: usize,
        width: usize,
        gather: bool,
    ) {
        let pipeline = self.pipeline("last-rows", || shader!("last_rows").into());
        let params = [batch, seq, width, gather as usize].map(|v| v as u32);
        let (from, to) = match gather {
            true => (stream, last),
            false => (last, stream),
        };
        self.dispatch(
            encoder,
            &pipeline,
            &[&from.buffer, &to.buffer],
            &params,
            threads(batch * width),
        );
    }
}
