// The adapter's practical f32 peak, for the benchmark: C = A · B for square row-major n × n
// matrices (n a multiple of 64). Each workgroup of 16 × 16 threads computes a 64 × 64 tile of C,
// each thread a 4 × 4 block, from 64 × 16 tiles of A and 16 × 64 tiles of B staged in
// workgroup memory: 16 multiply-adds per two values read from it.

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: vec4<u32>; // n

var<workgroup> a_tile: array<array<f32, 64>, 16>; // [k][row]
var<workgroup> b_tile: array<array<f32, 64>, 16>; // [k][col]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let n = params.x;
    let row0 = group.y * 64u;
    let col0 = group.x * 64u;
    let thread = local.y * 16u + local.x;
    var sum: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < n; k0 += 16u) {
        // 256 threads load 1024 values of each tile: 4 each.
        for (var i = 0u; i < 4u; i++) {
            let index = thread * 4u + i;
            let r = index / 16u;
            let k = index % 16u;
            a_tile[k][r] = a[(row0 + r) * n + k0 + k];
            let kb = index / 64u;
            let col = index % 64u;
            b_tile[kb][col] = b[(k0 + kb) * n + col0 + col];
        }
        workgroupBarrier();
        for (var k = 0u; k < 16u; k++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[k][local.y * 4u + i];
                bv[i] = b_tile[k][local.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    sum[i][j] = fma(av[i], bv[j], sum[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            c[(row0 + local.y * 4u + i) * n + col0 + local.x * 4u + j] = sum[i][j];
        }
    }
}
