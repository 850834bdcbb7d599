// dx[r, k] (+)= Σ_n dy[r, offset + n] · W[n, k] over W's rows n of this chunk: the input gradient
// of `linear.wgsl` (no weight gradient). A workgroup computes a 64 × 64 tile of dx, 32 rows of W
// at a time, each of its 256 threads a 4 × 4 block.

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
// [rows, n (this chunk's rows of W), k, bytes per row of W], [dy's row stride, offset, accumulate, 0]
@group(0) @binding(3) var<uniform> p: array<vec4<u32>, 2>;

var<workgroup> dys: array<f32, 2048>;
var<workgroup> ws: array<f32, 2048>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    let rows = p[0].x;
    let n = p[0].y;
    let k = p[0].z;
    let k0 = g.x * 64u;
    let r0 = g.y * 64u;
    var acc: array<f32, 16>;
    for (var n_start = 0u; n_start < n; n_start += 32u) {
        for (var e = t; e < 2048u; e += 256u) {
            let r = r0 + e / 32u;
            let nn = n_start + e % 32u;
            var v = 0.0;
            if (r < rows && nn < n) {
                v = dy[r * p[1].x + p[1].y + nn];
            }
            dys[e] = v;
        }
        if (t < 64u) {
            let nn = t % 32u;
            let half = t / 32u;
            var decoded: array<f32, 32>;
            if (n_start + nn < n && k0 + 32u * half < k) {
                decoded = decode32((n_start + nn) * p[0].w, k0 / 32u + half, k);
            }
            for (var j = 0u; j < 32u; j++) {
                ws[nn * 64u + half * 32u + j] = decoded[j];
            }
        }
        workgroupBarrier();
        for (var nn = 0u; nn < 32u; nn++) {
            var dv: array<f32, 4>;
            var wv: array<f32, 4>;
            for (var a = 0u; a < 4u; a++) {
                dv[a] = dys[(l.y * 4u + a) * 32u + nn];
                wv[a] = ws[nn * 64u + l.x * 4u + a];
            }
            for (var a = 0u; a < 4u; a++) {
                for (var b = 0u; b < 4u; b++) {
                    acc[a * 4u + b] += dv[a] * wv[b];
                }
            }
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a++) {
        for (var b = 0u; b < 4u; b++) {
            let r = r0 + l.y * 4u + a;
            let kk = k0 + l.x * 4u + b;
            if (r < rows && kk < k) {
                var v = acc[a * 4u + b];
                if (p[1].z != 0u) {
                    v += dx[r * k + kk];
                }
                dx[r * k + kk] = v;
            }
        }
    }
}
