// y = W · x for W in GGUF blocks of 32 values. `block_dot(at, first)` (from the encoding's own
// snippet, joined before this) decodes the block starting at byte `at` of `w` and returns its dot
// product with x[first..first + 32]. One workgroup per row; its threads take every 64th block of
// the row and add up.

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// rows, cols, blocks per row, bytes per block
@group(0) @binding(3) var<uniform> sizes: vec4<u32>;

const THREADS: u32 = 64u;
var<workgroup> partial: array<f32, THREADS>;

// Byte `i` of `w`.
fn byte_at(i: u32) -> u32 {
    return (w[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

// The f16 at the even byte `i` of `w`.
fn f16_at(i: u32) -> f32 {
    let pair = unpack2x16float(w[i / 4u]);
    return select(pair.x, pair.y, i % 4u == 2u);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row = group.x + group.y * 65535u;
    let blocks = sizes.z;
    var sum = 0.0;
    if (row < sizes.x) {
        for (var b = t; b < blocks; b += THREADS) {
            sum += block_dot((row * blocks + b) * sizes.w, b * 32u);
        }
    }
    partial[t] = sum;
    workgroupBarrier();
    for (var half = THREADS / 2u; half > 0u; half /= 2u) {
        if (t < half) {
            partial[t] += partial[t + half];
        }
        workgroupBarrier();
    }
    if (t == 0u && row < sizes.x) {
        y[row] = partial[0];
    }
}
