// dk[b, j, g, d] = Σ_{h of group g} Σ_{i ≥ j} dS[b, h, i, j] · q[b, i, h, d] and
// dv[b, j, g, d] = Σ_{h of group g} Σ_{i ≥ j} P[b, h, i, j] · do[b, i, h, d]: one thread per
// key-value head value, written into the key and value parts of the gradient (`dkv`).

@group(0) @binding(0) var<storage, read> d_scores: array<f32>;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> d_o: array<f32>;
@group(0) @binding(4) var<storage, read_write> dkv: array<f32>;
// [batch, seq, heads, kv_heads], [head_dim, 0, q stride, q offset], [dkv stride, dk offset, dv offset, 0]
@group(0) @binding(5) var<uniform> p: array<vec4<u32>, 3>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let batch = p[0].x;
    let seq = p[0].y;
    let heads = p[0].z;
    let kv_heads = p[0].w;
    let hd = p[1].x;
    let index = id.x + id.y * groups.x * 256u;
    if (index >= batch * seq * kv_heads * hd) {
        return;
    }
    let d = index % hd;
    let g = (index / hd) % kv_heads;
    let row = index / (hd * kv_heads);
    let j = row % seq;
    let b = row / seq;
    let group = heads / kv_heads;
    var dk = 0.0;
    var dv = 0.0;
    for (var h = g * group; h < (g + 1u) * group; h++) {
        for (var i = j; i < seq; i++) {
            let at = ((b * heads + h) * seq + i) * seq + j;
            let query_row = b * seq + i;
            dk += d_scores[at] * q[query_row * p[1].z + p[1].w + h * hd + d];
            dv += probs[at] * d_o[query_row * heads * hd + h * hd + d];
        }
    }
    dkv[row * p[2].x + p[2].y + g * hd + d] = dk;
    dkv[row * p[2].x + p[2].z + g * hd + d] = dv;
}
