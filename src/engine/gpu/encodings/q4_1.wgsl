// Q4_1, 20 bytes (word aligned): f16 scale d, f16 minimum m, then 16 bytes of 4-bit values. Value
// j is d · q_j + m, q_j the low nibble of byte j for j < 16 and the high nibble of byte j − 16 after.
fn block_dot(at: u32, first: u32) -> f32 {
    let dm = unpack2x16float(w[at / 4u]);
    var sum = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let bytes = w[at / 4u + 1u + k];
        for (var i = 0u; i < 4u; i++) {
            let q = (bytes >> (8u * i)) & 0xffu;
            let j = first + k * 4u + i;
            sum += (f32(q & 0xfu) * dm.x + dm.y) * x[j] + (f32(q >> 4u) * dm.x + dm.y) * x[j + 16u];
        }
    }
    return sum;
}
