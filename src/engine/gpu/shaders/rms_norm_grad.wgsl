// dx (+)= r · g − x · r³ · (g · x) / width, with g = weight · dy and r = 1 / √(mean(x²) + eps):
// the input gradient of `rms_norm.wgsl`, one workgroup per row.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
// [rows, width, eps (f32 bits), accumulate]
@group(0) @binding(4) var<uniform> p: vec4<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row = g.x + g.y * 65535u;
    let width = p.y;
    let base = min(row, p.x - 1u) * width;
    var squares = 0.0;
    var dot = 0.0;
    for (var i = t; i < width; i += 64u) {
        squares += x[base + i] * x[base + i];
        dot += weight[i] * dy[base + i] * x[base + i];
    }
    let r = inverseSqrt(row_sum(t, squares) / f32(width) + bitcast<f32>(p.z));
    let correction = r * r * r * row_sum(t, dot) / f32(width);
    if (row < p.x) {
        for (var i = t; i < width; i += 64u) {
            var v = r * weight[i] * dy[base + i] - x[base + i] * correction;
            if (p.w != 0u) {
                v += dx[base + i];
            }
            dx[base + i] = v;
        }
    }
}
