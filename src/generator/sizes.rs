//! Trade sizes: a discretised log-normal body (most trades are odd lots, median 40 shares),
//! spikes on the round lots 100/200/300/500/1000, and a rare power-law tail of block trades.
//!
//! The body and the spikes are one discrete distribution over 1..=[`BODY_MAX`] shares, drawn in
//! O(1) from a Walker/Vose alias table with a single 64-bit random number; only the rare block
//! tail needs floating-point work.

use rand::Rng;

/// Sizes above this come only from the block tail.
pub const BODY_MAX: u32 = 10_000;
const BODY_MEDIAN: f64 = 40.0;
const BODY_SIGMA: f64 = 1.15;
/// Share of trades that land exactly on a round lot, and how they split among the lots.
pub const ROUND_LOT_SHARE: f64 = 0.16;
pub const ROUND_LOTS: [(u32, f64); 5] = [
    (100, 0.5),
    (200, 0.2),
    (300, 0.08),
    (500, 0.12),
    (1000, 0.1),
];
/// Share of block trades, with a Pareto tail of exponent 1.5 (Gopikrishnan et al. 2000).
pub const BLOCK_SHARE: f64 = 0.002;
const BLOCK_MIN: f64 = 2_000.0;
const BLOCK_ALPHA: f64 = 1.5;
const SIZE_CAP: f64 = 1_000_000.0;

fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

#[derive(Debug, Clone)]
pub struct SizeTable {
    /// Acceptance threshold of each slot, as a fraction of 2^32.
    threshold: Vec<u32>,
    alias: Vec<u32>,
}

impl Default for SizeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SizeTable {
    /// Slot `i` stands for `i + 1` shares; the last slot stands for "a block trade".
    pub fn new() -> Self {
        let n = BODY_MAX as usize + 1;
        let mu = libm::log(BODY_MEDIAN);
        let body_share = 1.0 - ROUND_LOT_SHARE - BLOCK_SHARE;
        let mut pmf = vec![0.0f64; n];
        let mut below = 0.0;
        for (i, p) in pmf.iter_mut().take(BODY_MAX as usize).enumerate() {
            let upper = normal_cdf((libm::log(i as f64 + 1.5) - mu) / BODY_SIGMA);
            *p = (upper - below) * body_share;
            below = upper;
        }
        // The body's mass above BODY_MAX folds into the block slot.
        pmf[n - 1] = (1.0 - below) * body_share + BLOCK_SHARE;
        for (lot, w) in ROUND_LOTS {
            pmf[lot as usize - 1] += ROUND_LOT_SHARE * w;
        }
        Self::vose(&pmf)
    }

    fn vose(pmf: &[f64]) -> Self {
        let n = pmf.len();
        let total: f64 = pmf.iter().sum();
        let mut scaled: Vec<f64> = pmf.iter().map(|p| p * n as f64 / total).collect();
        let mut threshold = vec![u32::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            threshold[s] = (scaled[s] * 4_294_967_296.0).min(u32::MAX as f64) as u32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Self { threshold, alias }
    }

    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let r = rng.next_u64();
        let slot = (((r >> 32) * self.threshold.len() as u64) >> 32) as usize;
        let slot = if (r as u32) < self.threshold[slot] {
            slot
        } else {
            self.alias[slot] as usize
        };
        if slot < BODY_MAX as usize {
            slot as u32 + 1
        } else {
            Self::block(rng)
        }
    }

    #[cold]
    fn block<R: Rng + ?Sized>(rng: &mut R) -> u32 {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let size = BLOCK_MIN * libm::pow(1.0 - u, -1.0 / BLOCK_ALPHA);
        // Blocks print in round hundreds.
        ((size.min(SIZE_CAP) / 100.0).round() * 100.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sizes_have_round_lot_spikes_over_a_heavy_tail() {
        let table = SizeTable::new();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let n = 400_000;
        let mut sizes: Vec<u32> = (0..n).map(|_| table.sample(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| s >= 1 && s as f64 <= SIZE_CAP));
        let share = |pred: &dyn Fn(u32) -> bool| {
            sizes.iter().filter(|&&s| pred(s)).count() as f64 / n as f64
        };
        // Round lots: their spike plus the body's own mass there.
        assert!((0.16..0.20).contains(&share(&|s| s == 100
            || s == 200
            || s == 300
            || s == 500
            || s == 1000)));
        assert!(share(&|s| s == 100) > 10.0 * share(&|s| s == 99));
        // Blocks (from 2,000 shares) plus the body's own thin mass up there.
        assert!((0.0015..0.0035).contains(&share(&|s| s >= 2_000)));
        assert!(share(&|s| s > BODY_MAX) > 0.0);
        assert!(share(&|s| s < 100) > 0.5, "odd lots dominate");
        sizes.sort_unstable();
        let median = sizes[n / 2];
        assert!((30..=60).contains(&median), "median {median}");
    }
}
