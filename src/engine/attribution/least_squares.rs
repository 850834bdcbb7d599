//! Weighted least squares over coalitions, for the regression methods (KernelSHAP, LIME): the
//! coefficients, and their standard errors by the cluster-robust sandwich estimator, which holds
//! whatever the shape of the residuals (a model is never additive in its tokens). Everything is
//! f64 and solved by Cholesky: the systems are at most a few hundred features wide.

use crate::engine::error::{EngineError, Result};

/// One coalition as a row of the regression: its design values (small integers: 0/1, or −1/0/1
/// once a constraint is eliminated, so they are kept as `i8`, 1 byte per feature), the response,
/// its weight, and the cluster it was sampled with (a pair of complements is one draw).
pub struct Row {
    pub x: Vec<i8>,
    pub y: f64,
    pub weight: f64,
    pub cluster: usize,
}

/// What a fit gives: one coefficient per column, the intercept (0 without one), and the
/// sampling covariance of the coefficients as far as the callers need it.
pub struct Fit {
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    /// The standard error of each coefficient (`None` when the rows are every coalition, so
    /// nothing was sampled).
    pub standard_errors: Option<Vec<f64>>,
    /// The standard error of the coefficients' sum (for a coefficient eliminated by a sum
    /// constraint, whose error is that of the others' sum).
    pub sum_standard_error: Option<f64>,
}

/// How to fit: with an intercept (weighted centring first), with a ridge penalty `ridge`·‖β‖²,
/// and whether the rows are a sample (standard errors) or the whole population (none).
pub struct Options {
    pub intercept: bool,
    pub ridge: f64,
    pub sampled: bool,
}

/// The coefficients β minimising Σ wₖ (yₖ − b − xₖ·β)² + ridge·‖β‖² over `rows` of `dim` columns.
pub fn fit(rows: &[Row], dim: usize, options: &Options) -> Result<Fit> {
    let total_weight: f64 = rows.iter().map(|r| r.weight).sum();
    if rows.is_empty() || total_weight.is_nan() || total_weight <= 0.0 {
        return Err(EngineError::Internal("a regression over no weighted rows".into()));
    }
    let (x_mean, y_mean) = match options.intercept {
        true => {
            let mut x_mean = vec![0.0; dim];
            for r in rows {
                x_mean.iter_mut().zip(&r.x).for_each(|(m, &x)| *m += r.weight * x as f64);
            }
            x_mean.iter_mut().for_each(|m| *m /= total_weight);
            (x_mean, rows.iter().map(|r| r.weight * r.y).sum::<f64>() / total_weight)
        }
        false => (vec![0.0; dim], 0.0),
    };
    let centred =
        |r: &Row| -> Vec<f64> { r.x.iter().zip(&x_mean).map(|(&x, m)| x as f64 - m).collect() };
    // Only the lower triangle of the normal matrix is filled and read.
    let mut normal = vec![0.0; dim * dim];
    let mut moment = vec![0.0; dim];
    for r in rows {
        let x = centred(r);
        for (i, xi) in x.iter().enumerate() {
            if *xi == 0.0 {
                continue;
            }
            let wxi = r.weight * xi;
            moment[i] += wxi * (r.y - y_mean);
            for (j, xj) in x[..=i].iter().enumerate() {
                normal[i * dim + j] += wxi * xj;
            }
        }
    }
    // A tiny relative ridge keeps a system that sampling left barely singular solvable; it moves
    // the solution by about 1e-12 of its scale.
    let trace: f64 = (0..dim).map(|i| normal[i * dim + i]).sum();
    let jitter = 1e-12 * trace / dim.max(1) as f64;
    for i in 0..dim {
        normal[i * dim + i] += options.ridge + jitter;
    }
    let factor = Cholesky::new(normal, dim)?;
    let coefficients = factor.solve(moment);
    let intercept = y_mean - x_mean.iter().zip(&coefficients).map(|(m, b)| m * b).sum::<f64>();
    if !options.sampled {
        return Ok(Fit {
            coefficients,
            intercept,
            standard_errors: None,
            sum_standard_error: None,
        });
    }
    // Sandwich: Cov(β) = N⁻¹ (Σ_c u_c u_cᵀ) N⁻¹ · C/(C − 1), with u_c = Σ_{k∈c} wₖ eₖ xₖ over the
    // rows of cluster c. Each column N⁻¹u_c adds its square to the variances.
    let mut clusters: Vec<Vec<f64>> = Vec::new();
    let mut cluster_of = std::collections::HashMap::new();
    for r in rows {
        let x = centred(r);
        let residual =
            r.y - y_mean - x.iter().zip(&coefficients).map(|(xi, b)| xi * b).sum::<f64>();
        let slot = *cluster_of.entry(r.cluster).or_insert_with(|| {
            clusters.push(vec![0.0; dim]);
            clusters.len() - 1
        });
        clusters[slot].iter_mut().zip(&x).for_each(|(u, xi)| *u += r.weight * residual * xi);
    }
    let count = clusters.len();
    if count < 2 {
        return Err(EngineError::Internal("a standard error from fewer than two draws".into()));
    }
    let correction = count as f64 / (count - 1) as f64;
    let mut variances = vec![0.0; dim];
    let mut sum_variance = 0.0;
    for u in clusters {
        let column = factor.solve(u);
        variances.iter_mut().zip(&column).for_each(|(v, c)| *v += c * c);
        sum_variance += column.iter().sum::<f64>().powi(2);
    }
    Ok(Fit {
        coefficients,
        intercept,
        standard_errors: Some(variances.into_iter().map(|v| (v * correction).sqrt()).collect()),
        sum_standard_error: Some((sum_variance * correction).sqrt()),
    })
}

/// A symmetric positive definite matrix as L Lᵀ (L lower triangular, row-major).
struct Cholesky {
    lower: Vec<f64>,
    dim: usize,
}

impl Cholesky {
    /// From the lower triangle of `matrix` (`dim × dim`, row-major).
    fn new(mut matrix: Vec<f64>, dim: usize) -> Result<Self> {
        for j in 0..dim {
            let pivot =
                matrix[j * dim + j] - (0..j).map(|k| matrix[j * dim + k].powi(2)).sum::<f64>();
            if pivot.is_nan() || pivot <= 0.0 {
                return Err(EngineError::Internal(
                    "the regression's normal matrix is singular: too few distinct coalitions"
                        .into(),
                ));
            }
            let diagonal = pivot.sqrt();
            matrix[j * dim + j] = diagonal;
            for i in j + 1..dim {
                let dot: f64 = (0..j).map(|k| matrix[i * dim + k] * matrix[j * dim + k]).sum();
                matrix[i * dim + j] = (matrix[i * dim + j] - dot) / diagonal;
            }
        }
        Ok(Self { lower: matrix, dim })
    }

    /// x with L Lᵀ x = b.
    fn solve(&self, mut b: Vec<f64>) -> Vec<f64> {
        let (l, n) = (&self.lower, self.dim);
        for i in 0..n {
            let dot: f64 = (0..i).map(|k| l[i * n + k] * b[k]).sum();
            b[i] = (b[i] - dot) / l[i * n + i];
        }
        for i in (0..n).rev() {
            let dot: f64 = (i + 1..n).map(|k| l[k * n + i] * b[k]).sum();
            b[i] = (b[i] - dot) / l[i * n + i];
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(x: &[i8], y: f64, weight: f64, cluster: usize) -> Row {
        Row { x: x.to_vec(), y, weight, cluster }
    }

    #[test]
    fn an_exact_linear_relation_is_recovered() {
        // y = 1 + 2 x₀ − 3 x₁ on four points, weighted unevenly.
        let rows: Vec<Row> = [[0, 0], [1, 0], [0, 1], [1, 1]]
            .iter()
            .enumerate()
            .map(|(k, x)| row(x, 1.0 + 2.0 * x[0] as f64 - 3.0 * x[1] as f64, 1.0 + k as f64, k))
            .collect();
        let fit = fit(&rows, 2, &Options { intercept: true, ridge: 0.0, sampled: true }).unwrap();
        assert!((fit.coefficients[0] - 2.0).abs() < 1e-9, "{:?}", fit.coefficients);
        assert!((fit.coefficients[1] + 3.0).abs() < 1e-9);
        assert!((fit.intercept - 1.0).abs() < 1e-9);
        // No residuals, so no sampling error.
        assert!(fit.standard_errors.unwrap().iter().all(|e| *e < 1e-9));
    }

    #[test]
    fn the_sandwich_error_of_a_mean_is_its_standard_error() {
        // One column of ones without an intercept: β is the mean of y and its sandwich error the
        // usual s/√n.
        let ys = [1.0, 4.0, 2.0, 7.0, 3.0];
        let rows: Vec<Row> = ys.iter().enumerate().map(|(k, &y)| row(&[1], y, 1.0, k)).collect();
        let fit = fit(&rows, 1, &Options { intercept: false, ridge: 0.0, sampled: true }).unwrap();
        let mean = ys.iter().sum::<f64>() / 5.0;
        let variance = ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / 4.0;
        assert!((fit.coefficients[0] - mean).abs() < 1e-9);
        let error = fit.standard_errors.unwrap()[0];
        assert!((error - (variance / 5.0).sqrt()).abs() < 1e-9, "{error}");
        assert!((fit.sum_standard_error.unwrap() - error).abs() < 1e-12);
    }

    #[test]
    fn a_ridge_shrinks_and_a_singular_system_is_an_error() {
        let rows: Vec<Row> = (0..4).map(|k| row(&[1, 1], 2.0, 1.0, k)).collect();
        let plain = Options { intercept: false, ridge: 0.0, sampled: false };
        // Two identical columns: only the jitter stands between this and a singular matrix, so
        // the sum of the two is fitted and the split is arbitrary but finite.
        let fit = fit(&rows, 2, &plain).unwrap();
        assert!((fit.coefficients[0] + fit.coefficients[1] - 2.0).abs() < 1e-6);
        // N = 4·[[1,1],[1,1]] + 4 I, moment (8, 8): each coefficient 8 / 12.
        let ridged = super::fit(&rows, 2, &Options { ridge: 4.0, ..plain }).unwrap();
        assert!(ridged.coefficients.iter().all(|b| (b - 2.0 / 3.0).abs() < 1e-9));
        let empty: Vec<Row> = vec![row(&[0, 0], 1.0, 1.0, 0)];
        assert!(super::fit(&empty, 2, &Options { intercept: false, ridge: 0.0, sampled: false })
            .is_err());
    }
}
