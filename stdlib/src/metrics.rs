//! The metrics `evaluate` computes, by task, in output column order, and their kernels.

use crate::error::MlError;

pub const CLASSIFICATION_METRICS: &[&str] =
    &["accuracy", "precision", "recall", "f1", "auc", "log_loss"];
pub const REGRESSION_METRICS: &[&str] = &["rmse", "mae", "r2"];
pub const CLUSTERING_METRICS: &[&str] = &["inertia"];

/// The sum of `values` in sorted order, so it does not depend on the order rows arrived in.
pub fn order_free_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v.iter().sum()
}

/// Classification metrics of `predicted` against `actual` (class indices into `classes`).
/// With two classes precision, recall and F1 are those of the positive (second) class and
/// `probability` is its probability; with more they are macro averages, and AUC and log loss
/// (which need every class's probability) are `None`.
pub fn classification(
    actual: &[usize],
    predicted: &[usize],
    probability: &[f64],
    classes: usize,
) -> Vec<Option<f64>> {
    let n = actual.len().max(1) as f64;
    let accuracy = actual.iter().zip(predicted).filter(|(a, p)| a == p).count() as f64 / n;
    let per_class = |c: usize| {
        let tp = actual
            .iter()
            .zip(predicted)
            .filter(|(a, p)| **a == c && **p == c)
            .count() as f64;
        let predicted_c = predicted.iter().filter(|p| **p == c).count() as f64;
        let actual_c = actual.iter().filter(|a| **a == c).count() as f64;
        let precision = if predicted_c > 0.0 {
            tp / predicted_c
        } else {
            0.0
        };
        let recall = if actual_c > 0.0 { tp / actual_c } else { 0.0 };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        (precision, recall, f1)
    };
    if classes <= 2 {
        let (precision, recall, f1) = per_class(1);
        let positive: Vec<bool> = actual.iter().map(|a| *a == 1).collect();
        let log_loss = order_free_sum(positive.iter().zip(probability).map(|(y, p)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            -(if *y { p.ln() } else { (1.0 - p).ln() })
        })) / n;
        vec![
            Some(accuracy),
            Some(precision),
            Some(recall),
            Some(f1),
            auc(&positive, probability),
            Some(log_loss),
        ]
    } else {
        let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
        for c in 0..classes {
            let (pc, rc, fc) = per_class(c);
            p += pc;
            r += rc;
            f += fc;
        }
        let k = classes as f64;
        vec![
            Some(accuracy),
            Some(p / k),
            Some(r / k),
            Some(f / k),
            None,
            None,
        ]
    }
}

/// The area under the ROC curve: the chance a random positive scores above a random
/// negative (ties count half). `None` when one of the two is absent.
pub fn auc(positive: &[bool], score: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|a, b| score[*a].total_cmp(&score[*b]));
    // Average ranks over ties.
    let mut ranks = vec![0.0; score.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = rank;
        }
        i = j + 1;
    }
    let pos = positive.iter().filter(|p| **p).count() as f64;
    let neg = positive.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = positive
        .iter()
        .zip(&ranks)
        .filter(|(p, _)| **p)
        .map(|(_, r)| r)
        .sum();
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// `rmse`, `mae`, `r2` of `predicted` against `actual`.
pub fn regression(actual: &[f64], predicted: &[f64]) -> Result<Vec<Option<f64>>, MlError> {
    if actual.is_empty() {
        return Err(MlError::data("`evaluate` got a table with no rows"));
    }
    let n = actual.len() as f64;
    let mean = order_free_sum(actual.iter().copied()) / n;
    let sse = order_free_sum(actual.iter().zip(predicted).map(|(a, p)| (a - p).powi(2)));
    let sst = order_free_sum(actual.iter().map(|a| (a - mean).powi(2)));
    let mae = order_free_sum(actual.iter().zip(predicted).map(|(a, p)| (a - p).abs())) / n;
    let r2 = if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
    Ok(vec![Some((sse / n).sqrt()), Some(mae), Some(r2)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_metrics_by_hand() {
        // actual:    1 1 0 0 1
        // predicted: 1 0 0 1 1
        let m = classification(
            &[1, 1, 0, 0, 1],
            &[1, 0, 0, 1, 1],
            &[0.9, 0.4, 0.2, 0.6, 0.8],
            2,
        );
        assert_eq!(m[0], Some(0.6));
        assert_eq!(m[1], Some(2.0 / 3.0));
        assert_eq!(m[2], Some(2.0 / 3.0));
        // Positives 0.9, 0.4, 0.8 against negatives 0.2, 0.6: 5 of 6 pairs ordered.
        assert_eq!(m[4], Some(5.0 / 6.0));
        assert!(m[5].unwrap() > 0.0);
    }

    #[test]
    fn multiclass_has_no_auc() {
        let m = classification(&[0, 1, 2], &[0, 1, 1], &[1.0, 1.0, 1.0], 3);
        assert_eq!(m[0], Some(2.0 / 3.0));
        assert_eq!(m[4], None);
    }

    #[test]
    fn regression_by_hand() {
        let m = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]).unwrap();
        assert_eq!(m[1], Some(1.0 / 3.0));
        assert_eq!(m[2], Some(0.5));
    }
}
