// h = silu(gate) · up, from the gated MLP's two projections side by side (gate then up, each
// `width` wide), one thread per value.

@group(0) @binding(0) var<storage, read> gate_up: array<f32>;
@group(0) @binding(1) var<storage, read_write> h: array<f32>;
// [rows, width, 0, 0]
@group(0) @binding(2) var<uniform> p: vec4<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = id.x + id.y * groups.x * 256u;
    if (index >= p.x * p.y) {
        return;
    }
    let at = (index / p.y) * 2u * p.y + index % p.y;
    let gate = gate_up[at];
    h[index] = gate / (1.0 + exp(-gate)) * gate_up[at + p.y];
}
