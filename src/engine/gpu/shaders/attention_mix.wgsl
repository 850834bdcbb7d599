// o[b, i, h, d] = Σ_j probs[b, h, i, j] · v[j, kv head of h, d] over the prefix's values (`past_v`)
// and the sequence's own: attention's output, one thread per output value, heads side by side.

@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> past_v: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
// [batch, seq, heads, kv_heads], [head_dim, past, 0, 0], [v stride, v offset, past stride, past offset]
@group(0) @binding(4) var<uniform> p: array<vec4<u32>, 3>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let batch = p[0].x;
    let seq = p[0].y;
    let heads = p[0].z;
    let hd = p[1].x;
    let past = p[1].y;
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
    let length = past + seq;
    let probs_at = ((b * heads + h) * seq + i) * length;
    var sum = 0.0;
    for (var j = 0u; j <= past + i; j++) {
        var value: f32;
        if (j < past) {
            value = past_v[j * p[2].z + p[2].w + kvh * hd + d];
        } else {
            value = v[(b * seq + j - past) * p[2].x + p[2].y + kvh * hd + d];
        }
        sum += probs[probs_at + j] * value;
    }
    o[index] = sum;
}
