// Causal softmax of q · kᵀ · scale, one workgroup per (sequence b, head h, query i): row i of
// head h's probabilities over the `past` positions of a shared prefix (keys in `past_k`, the same
// for every sequence) and the sequence's own positions up to i (keys in `k`). Rows are
// `past + seq` long; positions after i get 0. Query and key heads are grouped: head h reads key
// head h / (heads / kv_heads).

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> past_k: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
// [batch, seq, heads, kv_heads], [head_dim, past, scale (f32 bits), 0],
// [q stride, q offset, k stride, k offset], [past stride, past offset, 0, 0]
@group(0) @binding(4) var<uniform> p: array<vec4<u32>, 4>;

var<workgroup> partial: array<f32, 64>;

fn reduce(t: u32, value: f32, is_max: bool) -> f32 {
    partial[t] = value;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if (t < half) {
            if (is_max) {
                partial[t] = max(partial[t], partial[t + half]);
            } else {
                partial[t] += partial[t + half];
            }
        }
        workgroupBarrier();
    }
    let result = partial[0];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let batch = p[0].x;
    let seq = p[0].y;
    let heads = p[0].z;
    let hd = p[1].x;
    let past = p[1].y;
    let scale = bitcast<f32>(p[1].z);
    let total = batch * heads * seq;
    // Workgroups past the last row (the grid is rounded up) take part in the barriers only.
    let live = g.x + g.y * 65535u < total;
    let index = min(g.x + g.y * 65535u, total - 1u);
    let i = index % seq;
    let h = (index / seq) % heads;
    let b = index / (seq * heads);
    let kvh = h / (heads / p[0].w);
    let length = past + seq;
    let out = index * length;
    let q_at = (b * seq + i) * p[2].x + p[2].y + h * hd;
    var last = past + i;
    if (!live) {
        last = 0u;
    }
    var largest = -3.0e38;
    for (var j = t; j <= last && live; j += 64u) {
        var k_at: u32;
        var dot = 0.0;
        if (j < past) {
            k_at = j * p[3].x + p[3].y + kvh * hd;
            for (var d = 0u; d < hd; d++) {
                dot += q[q_at + d] * past_k[k_at + d];
            }
        } else {
            k_at = (b * seq + j - past) * p[2].z + p[2].w + kvh * hd;
            for (var d = 0u; d < hd; d++) {
                dot += q[q_at + d] * k[k_at + d];
            }
        }
        let s = dot * scale;
        probs[out + j] = s;
        largest = max(largest, s);
    }
    largest = reduce(t, largest, true);
    var sum = 0.0;
    for (var j = t; j <= last && live; j += 64u) {
        let e = exp(probs[out + j] - largest);
        probs[out + j] = e;
        sum += e;
    }
    sum = reduce(t, sum, false);
    for (var j = t; j < length && live; j += 64u) {
        if (j <= last) {
            probs[out + j] = probs[out + j] / sum;
        } else {
            probs[out + j] = 0.0;
        }
    }
}
