//! Evaluation: ensemble accuracy per readout, the accuracy matrix, forgetting and spread over orders.

use crate::core::filter::ParticleSet;
use crate::domains::learn::data::{Scenario, TaskData};
use crate::domains::learn::mlp::{with_workspace, Mlp};
use crate::domains::learn::wpf::Readout;
use rayon::prelude::*;

/// Accuracy of every readout in [`Readout::ALL`] on `task`: the fraction of samples whose
/// `argmax_{c ∈ range} Σ_i c_i z_i(x)_c` equals the target.
pub fn accuracies(net: &Mlp, set: &ParticleSet, task: &TaskData, scenario: Scenario) -> [f64; 3] {
    let out = net.n_outputs();
    let width = task.len() * out;
    let mut logits = vec![0.0; set.len() * width];
    logits.par_chunks_mut(width).enumerate().for_each(|(i, z)| {
        with_workspace(|ws| z.copy_from_slice(net.forward(set.particle(i), &task.x, ws)))
    });
    let w = set.weights();
    let (lo, hi) = scenario.logit_range(task.task);
    Readout::ALL.map(|readout| {
        let c = readout.coefficients(&w);
        let mut z = vec![0.0; width];
        for (ci, zi) in c.iter().zip(logits.chunks_exact(width)) {
            if *ci != 0.0 {
                z.iter_mut().zip(zi).for_each(|(a, b)| *a += ci * b);
            }
        }
        let correct = z
            .chunks_exact(out)
            .zip(&task.y)
            .filter(|(zs, &y)| argmax(&zs[lo..hi]) + lo == y)
            .count();
        correct as f64 / task.len().max(1) as f64
    })
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Final average accuracy `A = (1/T) Σ_j R[T−1][j]`, where `R[t][j]` is the accuracy on the task
/// trained `j`-th after training the `t`-th.
pub fn final_accuracy(r: &[Vec<f64>]) -> f64 {
    r.last().map_or(0.0, |row| mean(row))
}

/// Average forgetting `F = (1/(T−1)) Σ_{j<T−1} [max_{j≤t<T−1} R[t][j] − R[T−1][j]]` (Chaudhry et al., 2018).
pub fn forgetting(r: &[Vec<f64>]) -> f64 {
    let t = r.len();
    if t < 2 {
        return 0.0;
    }
    let f: Vec<f64> = (0..t - 1)
        .map(|j| {
            let best = (j..t - 1)
                .map(|k| r[k][j])
                .fold(f64::NEG_INFINITY, f64::max);
            best - r[t - 1][j]
        })
        .collect();
    mean(&f)
}

/// Arithmetic mean (0 for an empty slice).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Sample variance `Σ (v − v̄)² / (n − 1)` (0 for fewer than two values).
pub fn variance(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let mu = mean(v);
    v.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / (v.len() - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_and_final_accuracy() {
        // Task 0: best 0.9 before the end, 0.6 at the end → 0.3; task 1: 0.8 → 0.7 → 0.1.
        let r = vec![
            vec![0.9, 0.5, 0.5],
            vec![0.8, 0.8, 0.5],
            vec![0.6, 0.7, 1.0],
        ];
        assert!((forgetting(&r) - 0.2).abs() < 1e-12);
        assert!((final_accuracy(&r) - 0.766_666_666_666_666_7).abs() < 1e-12);
        assert!((variance(&[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn readout_coefficients() {
        let w = [0.2, 0.5, 0.3];
        assert_eq!(Readout::Weighted.coefficients(&w), w.to_vec());
        assert_eq!(Readout::MaxWeight.coefficients(&w), vec![0.0, 1.0, 0.0]);
        assert_eq!(Readout::Uniform.coefficients(&w)[2], 1.0 / 3.0);
    }
}
