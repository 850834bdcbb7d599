// dx (+)= r · (g − mean(g) − x̂ · mean(g · x̂)), with g = weight · dy, x̂ = (x − mean) · r: the input
// gradient of `layer_norm.wgsl`, one workgroup per row.

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
    var sum = 0.0;
    for (var i = t; i < width; i += 64u) {
        sum += x[base + i];
    }
    let mean = row_sum(t, sum) / f32(width);
    var squares = 0.0;
    for (var i = t; i < width; i += 64u) {
        squares += (x[base + i] - mean) * (x[base + i] - mean);
    }
    let r = inverseSqrt(row_sum(t, squares) / f32(width) + bitcast<f32>(p.z));
    var g_sum = 0.0;
    var gx_sum = 0.0;
    for (var i = t; i < width; i += 64u) {
        let gi = weight[i] * dy[base + i];
        g_sum += gi;
        gx_sum += gi * (x[base + i] - mean) * r;
    }
    let g_mean = row_sum(t, g_sum) / f32(width);
    let gx_mean = row_sum(t, gx_sum) / f32(width);
    if (row < p.x) {
        for (var i = t; i < width; i += 64u) {
            let xhat = (x[base + i] - mean) * r;
            var v = r * (weight[i] * dy[base + i] - g_mean - xhat * gx_mean);
            if (p.w != 0u) {
                v += dx[base + i];
            }
            dx[base + i] = v;
        }
    }
}
