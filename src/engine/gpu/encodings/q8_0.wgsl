// Q8_0, 34 bytes (so a block may start mid-word): f16 scale d, then 32 signed bytes q. Value j is
// d · q_j.
fn block_dot(at: u32, first: u32) -> f32 {
    let d = f16_at(at);
    var sum = 0.0;
    for (var j = 0u; j < 32u; j++) {
        let q = i32(byte_at(at + 2u + j) << 24u) >> 24u;
        sum += f32(q) * x[first + j];
    }
    return d * sum;
}
