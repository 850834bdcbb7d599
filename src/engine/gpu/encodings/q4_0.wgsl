// Q4_0, 18 bytes per 32 values: f16 scale d, then 16 bytes of 4-bit q. Value j is d · (q_j − 8),
// q_j the low nibble of byte j for j < 16 and the high nibble of byte j − 16 after.
fn decode32(row_at: u32, c: u32, cols: u32) -> array<f32, 32> {
    var out: array<f32, 32>;
    let at = row_at + 18u * c;
    let d = f16_at(at);
    for (var j = 0u; j < 16u; j++) {
        let q = byte_at(at + 2u + j);
        out[j] = (f32(q & 0xfu) - 8.0) * d;
        out[j + 16u] = (f32(q >> 4u) - 8.0) * d;
    }
    return out;
}
