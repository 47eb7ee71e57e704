//! The few statistics the benchmark reports.

/// The median, NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The first and third quartiles (nearest rank), NaN when empty.
pub fn quartiles(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.25), q(0.75))
}

/// The mean (NaN when empty) and the half-width of its 95% confidence interval (Student's t;
/// NaN below two values).
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    // t(0.975, df) for df = 1..=30; beyond that the normal 1.96 is within 2%.
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

/// `mean ± half` of the 95% interval, or the lone value when there is no interval.
pub fn mean_ci_text(v: &[f64]) -> String {
    match mean_ci(v) {
        (mean, half) if half.is_nan() => format!("{mean:.3} (one run)"),
        (mean, half) => format!("{mean:.3} ± {half:.3}"),
    }
}
