// The gradient of attention's scores, one workgroup per (sequence b, head h, query i):
// dP_j = do_i · v_j, then dS_j = P_j · (dP_j − Σ_j' P_j' · dP_j') · scale (the causal softmax's and
// the scale's backward), 0 past i. No shared prefix: gradients are only taken on whole sequences.

@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read> d_o: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_scores: array<f32>;
// [batch, seq, heads, kv_heads], [head_dim, scale (f32 bits), v stride, v offset]
@group(0) @binding(4) var<uniform> p: array<vec4<u32>, 2>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let batch = p[0].x;
    let seq = p[0].y;
    let heads = p[0].z;
    let hd = p[1].x;
    let total = batch * heads * seq;
    let live = g.x + g.y * 65535u < total;
    let index = min(g.x + g.y * 65535u, total - 1u);
    let i = index % seq;
    let h = (index / seq) % heads;
    let b = index / (seq * heads);
    let kvh = h / (heads / p[0].w);
    let row = index * seq;
    let o_at = (b * seq + i) * heads * hd + h * hd;
    var weighted = 0.0;
    for (var j = t; j <= i && live; j += 64u) {
        let v_at = (b * seq + j) * p[1].z + p[1].w + kvh * hd;
        var dot = 0.0;
        for (var d = 0u; d < hd; d++) {
            dot += d_o[o_at + d] * v[v_at + d];
        }
        d_scores[row + j] = dot;
        weighted += probs[row + j] * dot;
    }
    partial[t] = weighted;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if (t < half) {
            partial[t] += partial[t + half];
        }
        workgroupBarrier();
    }
    let sum = partial[0];
    let scale = bitcast<f32>(p[1].y);
    for (var j = t; j < seq && live; j += 64u) {
        if (j <= i) {
            d_scores[row + j] = probs[row + j] * (d_scores[row + j] - sum) * scale;
        } else {
            d_scores[row + j] = 0.0;
        }
    }
}
