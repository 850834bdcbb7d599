// Between a batch's whole stream (rows b · seq + s) and its last positions (row b): `gather` copies
// each sequence's last row out, else its rows are added back into the stream (the backward pass).

@group(0) @binding(0) var<storage, read> from_rows: array<f32>;
@group(0) @binding(1) var<storage, read_write> to_rows: array<f32>;
// [batch, seq, width, gather]
@group(0) @binding(2) var<uniform> p: vec4<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    if (i >= p.x * p.z) {
        return;
    }
    let b = i / p.z;
    let c = i % p.z;
    let stream_at = (b * p.y + p.y - 1u) * p.z + c;
    if (p.w != 0u) {
        to_rows[i] = from_rows[stream_at];
    } else {
        to_rows[stream_at] += from_rows[i];
    }
}
