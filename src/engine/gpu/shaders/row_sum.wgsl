// The sum of `value` over a 64-thread workgroup (`t`: the thread's index), for the kernels that
// reduce one row per workgroup (the norms); prepended to them by `kernels.rs`.

var<workgroup> partial: array<f32, 64>;

fn row_sum(t: u32, value: f32) -> f32 {
    partial[t] = value;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if (t < half) {
            partial[t] += partial[t + half];
        }
        workgroupBarrier();
    }
    let sum = partial[0];
    workgroupBarrier();
    return sum;
}
