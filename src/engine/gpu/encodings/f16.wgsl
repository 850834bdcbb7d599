// F16: 2 bytes per value (rows start at even bytes).
fn decode32(row_at: u32, c: u32, cols: u32) -> array<f32, 32> {
    var out: array<f32, 32>;
    for (var j = 0u; j < 32u; j++) {
        let v = 32u * c + j;
        if (v < cols) {
            out[j] = f16_at(row_at + 2u * v);
        }
    }
    return out;
}
