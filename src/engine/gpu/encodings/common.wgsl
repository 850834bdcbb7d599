// What every encoding's decoder reads its blocks with. `w` is the matrix's bytes as words.

// Byte `i` of `w`.
fn byte_at(i: u32) -> u32 {
    return (w[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

// Byte `i` of `w` as a signed 8-bit value.
fn i8_at(i: u32) -> f32 {
    return f32(i32(byte_at(i) << 24u) >> 24u);
}

// The f16 at the even byte `i` of `w`.
fn f16_at(i: u32) -> f32 {
    let pair = unpack2x16float(w[i / 4u]);
    return select(pair.x, pair.y, i % 4u == 2u);
}
