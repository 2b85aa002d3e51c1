//! The update rules of gradient training: plain SGD and Adam.

use crate::spec::OptimizerKind;

/// An optimiser with its state (Adam's moment estimates).
#[derive(Debug, Clone)]
pub struct Optimizer {
    kind: OptimizerKind,
    learning_rate: f64,
    step: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Optimizer {
    pub fn new(kind: OptimizerKind, learning_rate: f64, params: usize) -> Optimizer {
        let state = if kind == OptimizerKind::Adam {
            params
        } else {
            0
        };
        Optimizer {
            kind,
            learning_rate,
            step: 0,
            m: vec![0.0; state],
            v: vec![0.0; state],
        }
    }

    /// Moves `params` against `grad`.
    pub fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        self.step = self.step.saturating_add(1);
        match self.kind {
            OptimizerKind::Sgd => {
                for (p, g) in params.iter_mut().zip(grad) {
                    *p -= self.learning_rate * g;
                }
            }
            OptimizerKind::Adam => {
                let c1 = 1.0 - BETA1.powi(self.step);
                let c2 = 1.0 - BETA2.powi(self.step);
                for (((p, g), m), v) in params
                    .iter_mut()
                    .zip(grad)
                    .zip(&mut self.m)
                    .zip(&mut self.v)
                {
                    *m = BETA1 * *m + (1.0 - BETA1) * g;
                    *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                    *p -= self.learning_rate * (*m / c1) / ((*v / c2).sqrt() + EPSILON);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both rules find the minimum of a convex bowl.
    #[test]
    fn minimises_a_quadratic() {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let mut p = vec![5.0, -3.0];
            let mut opt = Optimizer::new(kind, 0.1, 2);
            for _ in 0..500 {
                let g: Vec<f64> = p.iter().map(|x| 2.0 * (x - 1.0)).collect();
                opt.step(&mut p, &g);
            }
            assert!(p.iter().all(|x| (x - 1.0).abs() < 1e-3), "{kind:?}: {p:?}");
        }
    }
}
