// Q6_K, 210 bytes per 256 values: 128 bytes of low 4 bits (ql), 64 bytes of high 2 bits (qh),
// 16 signed 8-bit scales, f16 d. The 256 values are two halves of 128; in half h, quarter k (32
// values), value l takes its low bits from ql[64h + l + 32(k % 2)] (low nibble for k < 2, high
// after), its high bits from bits 2k of qh[32h + l], and scale sc[8h + 2k + l / 16]:
// d · sc · (q − 32).
fn decode32(row_at: u32, c: u32, cols: u32) -> array<f32, 32> {
    var out: array<f32, 32>;
    let at = row_at + 210u * (c / 8u);
    let s = c % 8u;
    let half = s / 4u;
    let k = s % 4u;
    let d = f16_at(at + 208u);
    let ql = at + 64u * half + 32u * (k % 2u);
    let qh = at + 128u + 32u * half;
    let sc = at + 192u + 8u * half + 2u * k;
    let low_shift = 4u * (k / 2u);
    for (var l = 0u; l < 32u; l++) {
        let low = (byte_at(ql + l) >> low_shift) & 0xfu;
        let high = (byte_at(qh + l) >> (2u * k)) & 3u;
        let q = f32(low | (high << 4u)) - 32.0;
        out[l] = d * i8_at(sc + l / 16u) * q;
    }
    return out;
}
