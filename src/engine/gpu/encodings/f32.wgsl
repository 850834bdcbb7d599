// F32: 4 bytes per value. `decode32(row_at, c, cols)`: values 32c..32c + 32 of the row whose
// bytes start at `row_at`, zero past `cols`.
fn decode32(row_at: u32, c: u32, cols: u32) -> array<f32, 32> {
    var out: array<f32, 32>;
    let first = row_at / 4u + 32u * c;
    for (var j = 0u; j < 32u; j++) {
        if (32u * c + j < cols) {
            out[j] = bitcast<f32>(w[first + j]);
        }
    }
    return out;
}
