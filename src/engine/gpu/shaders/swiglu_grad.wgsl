// The gradients of `swiglu.wgsl`: d gate = dh · up · σ(g) · (1 + g · (1 − σ(g))), d up = dh · silu(g),
// side by side as the projections are.

@group(0) @binding(0) var<storage, read> gate_up: array<f32>;
@group(0) @binding(1) var<storage, read> dh: array<f32>;
@group(0) @binding(2) var<storage, read_write> d_gate_up: array<f32>;
// [rows, width, 0, 0]
@group(0) @binding(3) var<uniform> p: vec4<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = id.x + id.y * groups.x * 256u;
    if (index >= p.x * p.y) {
        return;
    }
    let at = (index / p.y) * 2u * p.y + index % p.y;
    let g = gate_up[at];
    let s = 1.0 / (1.0 + exp(-g));
    d_gate_up[at] = dh[index] * gate_up[at + p.y] * s * (1.0 + g * (1.0 - s));
    d_gate_up[at + p.y] = dh[index] * g * s;
}
