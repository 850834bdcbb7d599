// y[r, column + n] = Σ_k x[r, k] · W[n, k] (+ bias[first + n]) for W's rows first + n of this chunk, W in
// its file's encoding (the encoding's `decode32` is joined before this). A workgroup computes a
// 64 × 64 tile of y: each step stages 32 columns of x's rows and of W's decoded rows in workgroup
// memory, and each of its 256 threads adds up a 4 × 4 block.

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// [rows, n (this chunk's rows of W), k, bytes per row of W],
// [y's row stride, y's column of the chunk's first row, the chunk's first row (the bias's index;
// 2³² − 1 without a bias), 32-value chunks per row]
@group(0) @binding(4) var<uniform> p: array<vec4<u32>, 2>;

var<workgroup> xs: array<f32, 2048>;
var<workgroup> ws: array<f32, 2048>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    let rows = p[0].x;
    let n = p[0].y;
    let k = p[0].z;
    let n0 = g.x * 64u;
    let r0 = g.y * 64u;
    var acc: array<f32, 16>;
    for (var c = 0u; c < p[1].w; c++) {
        for (var e = t; e < 2048u; e += 256u) {
            let r = r0 + e / 32u;
            let col = 32u * c + e % 32u;
            var v = 0.0;
            if (r < rows && col < k) {
                v = x[r * k + col];
            }
            xs[e] = v;
        }
        if (t < 64u) {
            var decoded: array<f32, 32>;
            if (n0 + t < n) {
                decoded = decode32((n0 + t) * p[0].w, c, k);
            }
            for (var j = 0u; j < 32u; j++) {
                ws[t * 32u + j] = decoded[j];
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 32u; kk++) {
            var xv: array<f32, 4>;
            var wv: array<f32, 4>;
            for (var a = 0u; a < 4u; a++) {
                xv[a] = xs[(l.y * 4u + a) * 32u + kk];
                wv[a] = ws[(l.x * 4u + a) * 32u + kk];
            }
            for (var a = 0u; a < 4u; a++) {
                for (var b = 0u; b < 4u; b++) {
                    acc[a * 4u + b] += xv[a] * wv[b];
                }
            }
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a++) {
        for (var b = 0u; b < 4u; b++) {
            let r = r0 + l.y * 4u + a;
            let nn = n0 + l.x * 4u + b;
            if (r < rows && nn < n) {
                var v = acc[a * 4u + b];
                if (p[1].z != 0xffffffffu) {
                    v += bias[p[1].z + nn];
                }
                y[r * p[1].x + p[1].y + nn] = v;
            }
        }
    }
}
