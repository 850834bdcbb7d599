// GELU, tanh approximation (GPT-2's): ½x(1 + tanh(√(2/π)(x + 0.044715x³))), or with `derivative`
// its derivative times dy (the backward pass). One thread per value.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// [values, derivative, 0, 0]
@group(0) @binding(3) var<uniform> p: vec4<u32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const CUBIC: f32 = 0.044715;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    if (i >= p.x) {
        return;
    }
    let v = x[i];
    let t = tanh(SQRT_2_OVER_PI * (v + CUBIC * v * v * v));
    if (p.y == 0u) {
        y[i] = 0.5 * v * (1.0 + t);
    } else {
        let derivative = 0.5 * (1.0 + t)
            + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * v * v);
        y[i] = dy[i] * derivative;
    }
}
