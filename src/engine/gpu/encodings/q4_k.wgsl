// Q4_K, 144 bytes per 256 values: f16 scale d, f16 minimum scale dmin, 12 bytes packing eight
// 6-bit scales and eight 6-bit minimums, then 128 bytes of 4-bit q. Sub-block s (32 values) has
// scale d · sc_s and minimum dmin · m_s; its values are the low nibbles of bytes 32⌊s/2⌋.. for
// even s, the high nibbles for odd s: d · sc_s · q − dmin · m_s.
fn decode32(row_at: u32, c: u32, cols: u32) -> array<f32, 32> {
    var out: array<f32, 32>;
    let at = row_at + 144u * (c / 8u);
    let s = c % 8u;
    let d = f16_at(at);
    let dmin = f16_at(at + 2u);
    let scales = at + 4u;
    var sc: u32;
    var m: u32;
    if (s < 4u) {
        sc = byte_at(scales + s) & 63u;
        m = byte_at(scales + s + 4u) & 63u;
    } else {
        sc = (byte_at(scales + s + 4u) & 0xfu) | ((byte_at(scales + s - 4u) >> 6u) << 4u);
        m = (byte_at(scales + s + 4u) >> 4u) | ((byte_at(scales + s) >> 6u) << 4u);
    }
    let scale = d * f32(sc);
    let minimum = dmin * f32(m);
    let qs = at + 16u + 32u * (s / 2u);
    let shift = 4u * (s % 2u);
    for (var l = 0u; l < 32u; l++) {
        out[l] = scale * f32((byte_at(qs + l) >> shift) & 0xfu) - minimum;
    }
    return out;
}
