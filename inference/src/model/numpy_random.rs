//! numpy's legacy seeded normal generator (`np.random.seed(s); np.random.randn(...)`), reproduced bit for bit so
//! that training here starts from the very weights the numpy reference starts from.
//!
//! numpy draws doubles from MT19937 (`init_genrand(seed)`) as `((a >> 5) * 2^26 + (b >> 6)) / 2^53` and normals by
//! the Marsaglia polar method, keeping the second value of each pair for the next call.

use rand_mt::Mt;

pub struct NumpyRandom {
    mt: Mt,
    spare: Option<f64>,
}

impl NumpyRandom {
    pub fn new(seed: u32) -> Self {
        Self { mt: Mt::new(seed), spare: None }
    }

    /// A uniform double in [0, 1) with 53 random bits (numpy's `random_sample`).
    fn uniform(&mut self) -> f64 {
        let a = f64::from(self.mt.next_u32() >> 5);
        let b = f64::from(self.mt.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// A standard normal draw (numpy's legacy `gauss`).
    pub fn standard_normal(&mut self) -> f64 {
        if let Some(value) = self.spare.take() {
            return value;
        }
        loop {
            let x1 = 2.0 * self.uniform() - 1.0;
            let x2 = 2.0 * self.uniform() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.spare = Some(f * x1);
                return f * x2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_draws_match_numpy_seed_1() {
        // np.random.seed(1); np.random.randn(5)
        let expected = [1.624_345_36, -0.611_756_41, -0.528_171_75, -1.072_968_62, 0.865_407_63];
        let mut rng = NumpyRandom::new(1);
        for want in expected {
            let got = rng.standard_normal();
            assert!((got - want).abs() < 1e-8, "got {got}, numpy gives {want}");
        }
    }
}
