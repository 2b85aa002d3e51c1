//! A dense feed-forward network: `linear`, `logistic` and `softmax` are the network without
//! hidden layers, `mlp` the one with ReLU hidden layers. Parameters live in one flat vector
//! (per layer: weights `out × in` row-major, then biases), so workers can add, average and
//! ship them without knowing the layout.

use super::matrix::Matrix;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What the last layer computes and which loss training minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// A number; squared loss.
    Identity,
    /// The probability of the positive class; logistic loss.
    Sigmoid,
    /// A probability per class; cross-entropy.
    Softmax,
}

/// The shape of a network: layer sizes from inputs to outputs, and its head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net {
    pub sizes: Vec<usize>,
    pub head: Head,
}

impl Net {
    pub fn new(inputs: usize, hidden: &[usize], outputs: usize, head: Head) -> Net {
        let mut sizes = vec![inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(outputs);
        Net { sizes, head }
    }

    pub fn outputs(&self) -> usize {
        self.sizes.last().copied().unwrap_or(1)
    }

    /// `(inputs, outputs, offset of its weights)` of every layer.
    fn layers(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let mut offset = 0;
        self.sizes.windows(2).map(move |w| {
            let at = offset;
            offset += w[0] * w[1] + w[1];
            (w[0], w[1], at)
        })
    }

    pub fn param_count(&self) -> usize {
        self.layers().map(|(i, o, _)| i * o + o).sum()
    }

    /// Starting parameters: zeros for a model without hidden layers (its loss is convex), He
    /// initialisation otherwise.
    pub fn init(&self, rng: &mut impl Rng) -> Vec<f64> {
        let mut params = vec![0.0; self.param_count()];
        if self.sizes.len() > 2 {
            for (inputs, outputs, at) in self.layers() {
                let bound = (6.0 / inputs.max(1) as f64).sqrt();
                for w in &mut params[at..at + inputs * outputs] {
                    *w = rng.random_range(-bound..bound);
                }
            }
        }
        params
    }

    /// The activations of every layer for the rows of `x`; the last is the head's output.
    fn forward_all(&self, params: &[f64], x: &Matrix) -> Vec<Matrix> {
        let mut acts = vec![x.clone()];
        let last = self.sizes.len() - 2;
        for (l, (inputs, outputs, at)) in self.layers().enumerate() {
            let w = &params[at..at + inputs * outputs];
            let b = &params[at + inputs * outputs..at + inputs * outputs + outputs];
            let prev = &acts[l];
            let mut z = Matrix::zeros(prev.rows, outputs);
            for r in 0..prev.rows {
                let a = prev.row(r);
                let out = z.row_mut(r);
                for (j, o) in out.iter_mut().enumerate() {
                    let wj = &w[j * inputs..(j + 1) * inputs];
                    *o = b[j] + dot(wj, a);
                }
                if l < last {
                    for o in out.iter_mut() {
                        *o = o.max(0.0);
                    }
                } else {
                    self.activate(out);
                }
            }
            acts.push(z);
        }
        acts
    }

    fn activate(&self, out: &mut [f64]) {
        match self.head {
            Head::Identity => {}
            Head::Sigmoid => {
                for o in out.iter_mut() {
                    *o = sigmoid(*o);
                }
            }
            Head::Softmax => {
                let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for o in out.iter_mut() {
                    *o = (*o - max).exp();
                    sum += *o;
                }
                for o in out.iter_mut() {
                    *o /= sum;
                }
            }
        }
    }

    /// The head's outputs for the rows of `x` (`rows × outputs`).
    pub fn forward(&self, params: &[f64], x: &Matrix) -> Matrix {
        self.forward_all(params, x).pop().unwrap_or_default()
    }

    /// The mean loss over the rows of `x` against `targets` (`rows × outputs`: the value, the
    /// 0/1 class, or the one-hot class) plus `l2 / 2 · |weights|²`, and its gradient written to
    /// `grad`.
    pub fn gradient(
        &self,
        params: &[f64],
        x: &Matrix,
        targets: &[f64],
        l2: f64,
        grad: &mut [f64],
    ) -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let acts = self.forward_all(params, x);
        let n = x.rows.max(1) as f64;
        let out = &acts[acts.len() - 1];
        let mut loss = 0.0;
        // With each head's own loss the gradient at the pre-activation is `output - target`.
        let mut delta = Matrix::zeros(out.rows, out.cols);
        for ((d, o), t) in delta.data.iter_mut().zip(&out.data).zip(targets) {
            *d = (o - t) / n;
            loss += match self.head {
                Head::Identity => 0.5 * (o - t).powi(2),
                Head::Sigmoid => -(t * o.max(1e-15).ln() + (1.0 - t) * (1.0 - o).max(1e-15).ln()),
                Head::Softmax => -t * o.max(1e-15).ln(),
            };
        }
        loss /= n;
        let layers: Vec<_> = self.layers().collect();
        for (l, &(inputs, outputs, at)) in layers.iter().enumerate().rev() {
            let prev = &acts[l];
            let (w, rest) = params[at..].split_at(inputs * outputs);
            let _ = rest;
            let (gw, gb) = grad[at..at + inputs * outputs + outputs].split_at_mut(inputs * outputs);
            let mut back = Matrix::zeros(prev.rows, inputs);
            for r in 0..prev.rows {
                let a = prev.row(r);
                let d = delta.row(r);
                let back_row = back.row_mut(r);
                for (j, &dj) in d.iter().enumerate() {
                    if dj == 0.0 {
                        continue;
                    }
                    gb[j] += dj;
                    let gwj = &mut gw[j * inputs..(j + 1) * inputs];
                    for (g, a) in gwj.iter_mut().zip(a) {
                        *g += dj * a;
                    }
                    if l > 0 {
                        let wj = &w[j * inputs..(j + 1) * inputs];
                        for (b, w) in back_row.iter_mut().zip(wj) {
                            *b += dj * w;
                        }
                    }
                }
            }
            if l2 > 0.0 {
                for (g, w) in gw.iter_mut().zip(w) {
                    *g += l2 * w;
                    loss += 0.5 * l2 * w * w;
                }
            }
            if l > 0 {
                // Through the ReLU of the layer below.
                for (b, a) in back.data.iter_mut().zip(&prev.data) {
                    if *a <= 0.0 {
                        *b = 0.0;
                    }
                }
                delta = back;
            }
        }
        loss
    }
}

/// Some rows of a training matrix, picked by index, and the targets of the whole matrix.
#[derive(Debug, Clone, Copy)]
pub struct Picked<'a> {
    pub x: &'a Matrix,
    pub targets: &'a [f64],
    pub rows: &'a [usize],
}

impl Net {
    /// [`Net::gradient`] over the picked rows without copying them: the fast path of models
    /// without hidden layers, which is most of them. `scratch` holds one row of outputs.
    pub fn gradient_rows(
        &self,
        params: &[f64],
        picked: Picked<'_>,
        l2: f64,
        grad: &mut [f64],
        scratch: &mut Vec<f64>,
    ) -> f64 {
        let Picked { x, targets, rows } = picked;
        if self.sizes.len() > 2 {
            let batch: Vec<f64> = rows
                .iter()
                .flat_map(|&r| {
                    targets[r * self.outputs()..(r + 1) * self.outputs()]
                        .iter()
                        .copied()
                })
                .collect();
            return self.gradient(params, &x.gather(rows), &batch, l2, grad);
        }
        let (inputs, outputs) = (self.sizes[0], self.outputs());
        grad.iter_mut().for_each(|g| *g = 0.0);
        let w = &params[..inputs * outputs];
        let n = rows.len().max(1) as f64;
        let mut loss = 0.0;
        scratch.resize(outputs, 0.0);
        for &r in rows {
            let a = x.row(r);
            self.head_of(params, a, scratch);
            let t = &targets[r * outputs..(r + 1) * outputs];
            let (gw, gb) = grad.split_at_mut(inputs * outputs);
            for (j, (&o, &t)) in scratch.iter().zip(t).enumerate() {
                loss += match self.head {
                    Head::Identity => 0.5 * (o - t).powi(2),
                    Head::Sigmoid => {
                        -(t * o.max(1e-15).ln() + (1.0 - t) * (1.0 - o).max(1e-15).ln())
                    }
                    Head::Softmax => -t * o.max(1e-15).ln(),
                };
                let d = (o - t) / n;
                if d == 0.0 {
                    continue;
                }
                gb[j] += d;
                for (g, a) in gw[j * inputs..(j + 1) * inputs].iter_mut().zip(a) {
                    *g += d * a;
                }
            }
        }
        loss /= n;
        if l2 > 0.0 {
            for (g, w) in grad[..inputs * outputs].iter_mut().zip(w) {
                *g += l2 * w;
                loss += 0.5 * l2 * w * w;
            }
        }
        loss
    }
}

impl Net {
    /// The head's outputs for one input row `a` of a model without hidden layers.
    fn head_of(&self, params: &[f64], a: &[f64], out: &mut [f64]) {
        let inputs = self.sizes[0];
        let (w, b) = params.split_at(inputs * self.outputs());
        for (j, o) in out.iter_mut().enumerate() {
            let wj = &w[j * inputs..(j + 1) * inputs];
            *o = b[j] + dot(wj, a);
        }
        self.activate(out);
    }

    /// One plain SGD step on one row (`picked.rows[0]`) of a model without hidden layers:
    /// what [`Net::gradient_rows`] then a step of `learning_rate` computes, fused.
    pub fn sgd_row(
        &self,
        params: &mut [f64],
        picked: Picked<'_>,
        learning_rate: f64,
        l2: f64,
        scratch: &mut Vec<f64>,
    ) {
        let (inputs, outputs) = (self.sizes[0], self.outputs());
        let r = picked.rows[0];
        let a = picked.x.row(r);
        let t = &picked.targets[r * outputs..(r + 1) * outputs];
        scratch.resize(outputs, 0.0);
        self.head_of(params, a, scratch);
        let (w, b) = params.split_at_mut(inputs * outputs);
        for (j, (&o, &t)) in scratch.iter().zip(t).enumerate() {
            let d = o - t;
            for (w, a) in w[j * inputs..(j + 1) * inputs].iter_mut().zip(a) {
                let g = if d == 0.0 { 0.0 } else { d * a };
                *w -= learning_rate * (g + l2 * *w);
            }
            b[j] -= learning_rate * d;
        }
    }

    /// Adds the L2 penalty's gradient (`l2 · w` for every weight, not the biases) to `grad`.
    pub fn add_l2(&self, params: &[f64], l2: f64, grad: &mut [f64]) {
        if l2 <= 0.0 {
            return;
        }
        for (inputs, outputs, at) in self.layers() {
            let weights = at..at + inputs * outputs;
            for (g, w) in grad[weights.clone()].iter_mut().zip(&params[weights]) {
                *g += l2 * w;
            }
        }
    }
}

/// `a · b`, in four running sums so the compiler can use vector registers (a fixed order, so
/// the result is the same every time).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// The logistic function, stable for large scores.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The analytic gradient agrees with finite differences, for every head and with a
    /// hidden layer.
    #[test]
    fn gradient_matches_finite_differences() {
        let x = Matrix {
            rows: 3,
            cols: 2,
            data: vec![0.5, -1.0, 1.5, 0.25, -0.75, 2.0],
        };
        for (head, outputs, targets) in [
            (Head::Identity, 1, vec![1.0, -2.0, 0.5]),
            (Head::Sigmoid, 1, vec![1.0, 0.0, 1.0]),
            (
                Head::Softmax,
                3,
                vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            ),
        ] {
            for hidden in [vec![], vec![4]] {
                let net = Net::new(2, &hidden, outputs, head);
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
                let mut params = net.init(&mut rng);
                for (i, p) in params.iter_mut().enumerate() {
                    *p += 0.1 * ((i % 5) as f64 - 2.0);
                }
                let mut grad = vec![0.0; params.len()];
                net.gradient(&params, &x, &targets, 0.1, &mut grad);
                let mut scratch = vec![0.0; params.len()];
                for i in 0..params.len() {
                    let mut up = params.clone();
                    up[i] += 1e-6;
                    let mut down = params.clone();
                    down[i] -= 1e-6;
                    let numeric = (net.gradient(&up, &x, &targets, 0.1, &mut scratch)
                        - net.gradient(&down, &x, &targets, 0.1, &mut scratch))
                        / 2e-6;
                    assert!(
                        (numeric - grad[i]).abs() < 1e-5,
                        "{head:?} {hidden:?} param {i}: {numeric} vs {}",
                        grad[i]
                    );
                }
            }
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_one() {
        let x = Matrix {
            rows: 4,
            cols: 2,
            data: vec![0.5, -1.0, 1.5, 0.25, -0.75, 2.0, 0.1, 0.2],
        };
        let targets = vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let net = Net::new(2, &[], 2, Head::Softmax);
        let params: Vec<f64> = (0..net.param_count())
            .map(|i| i as f64 * 0.1 - 0.2)
            .collect();
        let rows = [3, 1, 2];
        let mut fast = vec![0.0; params.len()];
        let mut scratch = Vec::new();
        let picked = Picked {
            x: &x,
            targets: &targets,
            rows: &rows,
        };
        let a = net.gradient_rows(&params, picked, 0.1, &mut fast, &mut scratch);
        let picked: Vec<f64> = rows
            .iter()
            .flat_map(|&r| targets[r * 2..r * 2 + 2].to_vec())
            .collect();
        let mut general = vec![0.0; params.len()];
        let b = net.gradient(&params, &x.gather(&rows), &picked, 0.1, &mut general);
        assert!((a - b).abs() < 1e-12);
        for (f, g) in fast.iter().zip(&general) {
            assert!((f - g).abs() < 1e-12);
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let net = Net::new(2, &[], 3, Head::Softmax);
        let params: Vec<f64> = (0..net.param_count()).map(|i| i as f64 * 0.3).collect();
        let x = Matrix {
            rows: 2,
            cols: 2,
            data: vec![1.0, 2.0, -3.0, 0.5],
        };
        let p = net.forward(&params, &x);
        for r in 0..2 {
            assert!((p.row(r).iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }
}
