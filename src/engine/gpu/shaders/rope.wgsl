// Rotates, in place, each pair of every head's vector of rows `r` by the angles of its position
// (row r is at position r % seq of its sequence): (a cos − b sin, a sin + b cos), or the inverse
// rotation (the backward pass: a rotation's transpose is its inverse). The tables hold cos and
// sin per (position, pair), computed on the CPU in f64. A thread turns one pair.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> cos_table: array<f32>;
@group(0) @binding(2) var<storage, read> sin_table: array<f32>;
// [rows, heads, head_dim, seq], [row stride, offset, halves (else interleaved), inverse]
@group(0) @binding(3) var<uniform> p: array<vec4<u32>, 2>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let pairs = p[0].z / 2u;
    let i = id.x + id.y * groups.x * 256u;
    if (i >= p[0].x * p[0].y * pairs) {
        return;
    }
    let pair = i % pairs;
    let head = (i / pairs) % p[0].y;
    let row = i / (pairs * p[0].y);
    let at = row * p[1].x + p[1].y + head * p[0].z;
    var first = 2u * pair;
    var second = 2u * pair + 1u;
    if (p[1].z != 0u) {
        first = pair;
        second = pair + pairs;
    }
    let table = (row % p[0].w) * pairs + pair;
    let c = cos_table[table];
    var s = sin_table[table];
    if (p[1].w != 0u) {
        s = -s;
    }
    let a = x[at + first];
    let b = x[at + second];
    x[at + first] = a * c - b * s;
    x[at + second] = a * s + b * c;
}
