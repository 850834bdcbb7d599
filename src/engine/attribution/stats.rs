//! Small statistics shared by the checks on attributions: rank correlation (how much two methods
//! agree) and seeded random orders (the reference a faithfulness score is compared with).

/// Spearman's rank correlation of `a` and `b`: the Pearson correlation of their ranks, ties
/// getting the mean of the ranks they span. `None` when it is undefined: different lengths, fewer
/// than two values, a NaN, or one side constant (its ranks have no variance).
pub fn spearman(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (a.len() as f64 + 1.0) / 2.0; // ranks 1..=n average to this whatever the ties
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        let (dx, dy) = (x - mean, y - mean);
        cov += dx * dy;
        var_a += dx * dx;
        var_b += dy * dy;
    }
    if var_a == 0.0 || var_b == 0.0 {
        return None;
    }
    Some(cov / (var_a * var_b).sqrt())
}

/// 1-based ranks, ties sharing the mean of the ranks they span.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|i, j| values[*i].total_cmp(&values[*j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let tied =
            order[start..].iter().take_while(|i| values[**i] == values[order[start]]).count();
        let mean_rank = start as f64 + (tied as f64 + 1.0) / 2.0;
        for i in &order[start..start + tied] {
            ranks[*i] = mean_rank;
        }
        start += tied;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_data() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman(&a, &[10.0, 20.0, 35.0, 100.0]), Some(1.0));
        assert_eq!(spearman(&a, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
    }

    #[test]
    fn spearman_gives_ties_their_mean_rank() {
        assert_eq!(ranks(&[5.0, 1.0, 5.0, 3.0]), vec![3.5, 1.0, 3.5, 2.0]);
        // Ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4), both centred on 2.5: cov 4.5, var 4.5 and 5.
        let rho = spearman(&[0.0, 1.0, 1.0, 2.0], &[0.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((rho - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn spearman_is_undefined_where_it_should_be() {
        assert_eq!(spearman(&[1.0], &[2.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, f32::NAN], &[1.0, 2.0]), None);
    }
}
