//! Dense numeric kernels the models are built from: a linear score and one pass of
//! stochastic gradient descent for the logistic loss, on row-major `f64` features. They are
//! what `flowc calibrate` times to price training and inference per feature value.

/// The model's score of one row: `w · x + bias` (the bias is the last weight).
pub fn score(weights: &[f64], row: &[f64]) -> f64 {
    let (w, bias) = weights.split_at(weights.len().saturating_sub(1));
    w.iter().zip(row).map(|(w, x)| w * x).sum::<f64>() + bias.first().copied().unwrap_or(0.0)
}

pub use crate::ml::net::sigmoid;

/// One epoch of plain SGD on the logistic loss over `rows` (row-major, `features` wide) and
/// labels in {0, 1}; `weights` has `features + 1` entries. Returns the mean loss.
pub fn logistic_sgd_epoch(
    rows: &[f64],
    labels: &[f64],
    features: usize,
    weights: &mut [f64],
    learning_rate: f64,
) -> f64 {
    let mut loss = 0.0;
    for (row, y) in rows.chunks_exact(features.max(1)).zip(labels) {
        let p = sigmoid(score(weights, row));
        let g = p - y;
        for (w, x) in weights.iter_mut().zip(row) {
            *w -= learning_rate * g * x;
        }
        if let Some(bias) = weights.last_mut() {
            *bias -= learning_rate * g;
        }
        loss -= y * p.max(1e-15).ln() + (1.0 - y) * (1.0 - p).max(1e-15).ln();
    }
    loss / labels.len().max(1) as f64
}

/// Probabilities of the positive class for every row.
pub fn logistic_predict(rows: &[f64], features: usize, weights: &[f64]) -> Vec<f64> {
    rows.chunks_exact(features.max(1))
        .map(|row| sigmoid(score(weights, row)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_learns_a_separable_rule() {
        // y = 1 when x0 > x1.
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..400 {
            let a = f64::from(i % 20) / 10.0 - 1.0;
            let b = f64::from((i * 7) % 20) / 10.0 - 1.0;
            rows.extend([a, b]);
            labels.push(if a > b { 1.0 } else { 0.0 });
        }
        let mut w = vec![0.0; 3];
        let first = logistic_sgd_epoch(&rows, &labels, 2, &mut w, 0.5);
        let mut last = first;
        for _ in 0..30 {
            last = logistic_sgd_epoch(&rows, &labels, 2, &mut w, 0.5);
        }
        assert!(last < first / 2.0, "{first} -> {last}");
        let p = logistic_predict(&rows, 2, &w);
        let right = p
            .iter()
            .zip(&labels)
            .filter(|(p, y)| (**p > 0.5) == (**y > 0.5))
            .count();
        assert!(right >= 380, "{right} of 400");
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }
}
