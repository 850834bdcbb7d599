// Q8_0, 34 bytes per 32 values: f16 scale d, then 32 signed bytes q. Value j is d · q_j.
fn decode32(row_at: u32, c: u32, cols: u32) -> array<f32, 32> {
    var out: array<f32, 32>;
    let at = row_at + 34u * c;
    let d = f16_at(at);
    for (var j = 0u; j < 32u; j++) {
        out[j] = d * i8_at(at + 2u + j);
    }
    return out;
}
