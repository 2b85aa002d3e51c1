//! k-means: greedy k-means++ starts and Lloyd's iterations, the best of several starts kept.

use super::matrix::Matrix;
use rand::Rng;

/// Squared Euclidean distance.
fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// For every row, the nearest centre and the squared distance to it.
pub fn assign(x: &Matrix, centres: &Matrix) -> (Vec<usize>, Vec<f64>) {
    let mut labels = Vec::with_capacity(x.rows);
    let mut distances = Vec::with_capacity(x.rows);
    for r in 0..x.rows {
        let row = x.row(r);
        let (best, d) = (0..centres.rows)
            .map(|c| (c, distance(row, centres.row(c))))
            .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        labels.push(best);
        distances.push(d);
    }
    (labels, distances)
}

/// Greedy k-means++: each new centre is the best (lowest resulting inertia) of a few
/// candidates drawn in proportion to the squared distance to the nearest centre so far.
fn plus_plus(x: &Matrix, k: usize, rng: &mut impl Rng) -> Matrix {
    let mut centres = Matrix::zeros(0, x.cols);
    let first = rng.random_range(0..x.rows);
    centres.data.extend_from_slice(x.row(first));
    centres.rows = 1;
    let mut nearest: Vec<f64> = (0..x.rows)
        .map(|r| distance(x.row(r), x.row(first)))
        .collect();
    let trials = 2 + (k as f64).ln().floor() as usize;
    while centres.rows < k {
        let total: f64 = nearest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let candidate = if total <= 0.0 {
                rng.random_range(0..x.rows)
            } else {
                let mut target = rng.random_range(0.0..total);
                let mut pick = x.rows - 1;
                for (r, d) in nearest.iter().enumerate() {
                    if target < *d {
                        pick = r;
                        break;
                    }
                    target -= d;
                }
                pick
            };
            let updated: Vec<f64> = (0..x.rows)
                .map(|r| nearest[r].min(distance(x.row(r), x.row(candidate))))
                .collect();
            let inertia: f64 = updated.iter().sum();
            if best.as_ref().is_none_or(|b| inertia < b.0) {
                best = Some((inertia, candidate, updated));
            }
        }
        let Some((_, candidate, updated)) = best else {
            break;
        };
        centres.data.extend_from_slice(x.row(candidate));
        centres.rows += 1;
        nearest = updated;
    }
    centres
}

/// The sum over each cluster of its rows, and the row counts: what Lloyd's step needs, and
/// what data-parallel workers add up.
pub fn cluster_sums(x: &Matrix, centres: &Matrix) -> (Vec<f64>, Vec<f64>, f64) {
    let (labels, distances) = assign(x, centres);
    let mut sums = vec![0.0; centres.rows * x.cols];
    let mut counts = vec![0.0; centres.rows];
    for (r, &c) in labels.iter().enumerate() {
        counts[c] += 1.0;
        for (s, v) in sums[c * x.cols..(c + 1) * x.cols].iter_mut().zip(x.row(r)) {
            *s += v;
        }
    }
    (sums, counts, distances.iter().sum())
}

/// The new centres from cluster sums; an empty cluster keeps its old centre.
pub fn update(centres: &Matrix, sums: &[f64], counts: &[f64]) -> Matrix {
    let mut next = centres.clone();
    for c in 0..centres.rows {
        if counts[c] > 0.0 {
            for (n, s) in next.row_mut(c).iter_mut().zip(&sums[c * centres.cols..]) {
                *n = s / counts[c];
            }
        }
    }
    next
}

/// One run of Lloyd's algorithm from a k-means++ start. Returns the centres and inertia.
fn run(x: &Matrix, k: usize, max_iter: usize, rng: &mut impl Rng) -> (Matrix, f64) {
    let mut centres = plus_plus(x, k, rng);
    // Like scikit-learn: stop once the centres move less than 1e-4 of the mean variance.
    let tolerance = 1e-4 * mean_variance(x);
    for _ in 0..max_iter {
        let (sums, counts, _) = cluster_sums(x, &centres);
        let next = update(&centres, &sums, &counts);
        let shift: f64 = distance(&next.data, &centres.data);
        centres = next;
        if shift <= tolerance {
            break;
        }
    }
    let (_, distances) = assign(x, &centres);
    (centres, distances.iter().sum())
}

fn mean_variance(x: &Matrix) -> f64 {
    let n = x.rows.max(1) as f64;
    (0..x.cols)
        .map(|c| {
            let mean = (0..x.rows).map(|r| x.data[r * x.cols + c]).sum::<f64>() / n;
            (0..x.rows)
                .map(|r| (x.data[r * x.cols + c] - mean).powi(2))
                .sum::<f64>()
                / n
        })
        .sum::<f64>()
        / x.cols.max(1) as f64
}

/// The centres of the best of `starts` runs (lowest inertia) and that inertia.
pub fn fit(
    x: &Matrix,
    k: usize,
    max_iter: usize,
    starts: usize,
    rng: &mut impl Rng,
) -> (Matrix, f64) {
    let mut best: Option<(Matrix, f64)> = None;
    for _ in 0..starts.max(1) {
        let (centres, inertia) = run(x, k, max_iter, rng);
        if best.as_ref().is_none_or(|b| inertia < b.1) {
            best = Some((centres, inertia));
        }
    }
    best.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn finds_three_separated_blobs() {
        let mut data = Vec::new();
        for (cx, cy) in [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)] {
            for i in 0..30 {
                data.extend([cx + (i % 5) as f64 * 0.1, cy + (i / 5) as f64 * 0.1]);
            }
        }
        let x = Matrix {
            rows: 90,
            cols: 2,
            data,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (centres, inertia) = fit(&x, 3, 100, 2, &mut rng);
        let (labels, _) = assign(&x, &centres);
        for blob in labels.chunks(30) {
            assert!(blob.iter().all(|l| *l == blob[0]));
        }
        assert!(inertia < 90.0 * 0.1, "{inertia}");
    }
}
