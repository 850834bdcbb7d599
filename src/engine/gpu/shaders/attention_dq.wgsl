// dq[b, i, h, d] = Σ_{j ≤ i} dS[b, h, i, j] · k[b, j, kv head of h, d], one thread per value,
// written into the query part of the queries', keys' and values' gradient.

@group(0) @binding(0) var<storage, read> d_scores: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> dq: array<f32>;
// [batch, seq, heads, kv_heads], [head_dim, 0, k stride, k offset], [dq stride, dq offset, 0, 0]
@group(0) @binding(3) var<uniform> p: array<vec4<u32>, 3>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let batch = p[0].x;
    let seq = p[0].y;
    let heads = p[0].z;
    let hd = p[1].x;
    let index = id.x + id.y * groups.x * 256u;
    if (index >= batch * seq * heads * hd) {
        return;
    }
    let d = index % hd;
    let h = (index / hd) % heads;
    let row = index / (hd * heads);
    let i = row % seq;
    let b = row / seq;
    let kvh = h / (heads / p[0].w);
    let scores_at = ((b * heads + h) * seq + i) * seq;
    var sum = 0.0;
    for (var j = 0u; j <= i; j++) {
        sum += d_scores[scores_at + j] * k[(b * seq + j) * p[1].z + p[1].w + kvh * hd + d];
    }
    dq[row * p[2].x + p[2].y + h * hd + d] = sum;
}
