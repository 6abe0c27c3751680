//! Trade sizes: a discretised log-normal body whose median is a fixed dollar amount (so
//! higher-priced stocks trade fewer shares a print, and more of their prints are odd lots),
//! spikes on the round lots 100/200/300/500/1000, and a rare power-law tail of block trades.
//!
//! The body and the spikes are one discrete distribution over 1..=[`BODY_MAX`] shares, drawn in
//! O(1) from a Walker/Vose alias table with a single 64-bit random number; only the rare block
//! tail needs floating-point work. Tables depend on price through [`band`] only (quarter
//! octaves), so a load of many symbols builds a handful of tables, not one per symbol.

use rand::Rng;

/// Sizes above this come only from the block tail.
pub const BODY_MAX: u32 = 10_000;
/// The body's median trade is worth about this many dollars whatever the price, which puts
/// odd lots (under 100 shares) at about 75-80 % of trades near $150-$190 and 85 % near
/// $350-$400: 71 % of all US trades were odd lots in 2022, up from 31 % in 2016, while the
/// average trade fell to 51 shares (Coccia, Van Ness and Van Ness 2024), and higher-priced
/// stocks have more odd lots (SEC 2014; docs/GENERATOR.md).
const BODY_MEDIAN_DOLLARS: f64 = 4_000.0;
const BODY_SIGMA: f64 = 1.1;
/// Share of trades that land exactly on a round lot, and how they split among the lots.
pub const ROUND_LOT_SHARE: f64 = 0.12;
pub const ROUND_LOTS: [(u32, f64); 5] = [
    (100, 0.7),
    (200, 0.15),
    (300, 0.05),
    (500, 0.06),
    (1000, 0.04),
];
/// Share of block trades, with a Pareto tail of exponent 1.5 (Gopikrishnan et al. 2000).
pub const BLOCK_SHARE: f64 = 0.001;
const BLOCK_MIN: f64 = 2_000.0;
const BLOCK_ALPHA: f64 = 1.5;
const SIZE_CAP: f64 = 1_000_000.0;

fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The price band of a price in dollars: quarter octaves, so a band's prices are within 19 %.
pub fn band(price: f64) -> i32 {
    (4.0 * libm::log2(price.clamp(0.01, 1e7))).round() as i32
}

/// Mean of a Pareto(`BLOCK_MIN`, `BLOCK_ALPHA`) size capped at `SIZE_CAP`.
fn block_mean() -> f64 {
    let tail = BLOCK_MIN / SIZE_CAP;
    BLOCK_MIN * BLOCK_ALPHA / (BLOCK_ALPHA - 1.0) * (1.0 - libm::pow(tail, BLOCK_ALPHA - 1.0))
        + SIZE_CAP * libm::pow(tail, BLOCK_ALPHA)
}

#[derive(Debug, Clone)]
pub struct SizeTable {
    /// Acceptance threshold of each slot, as a fraction of 2^32.
    threshold: Vec<u32>,
    alias: Vec<u32>,
    /// Expected shares per trade.
    mean: f64,
}

impl SizeTable {
    /// The table of a price [`band`]. Slot `i` stands for `i + 1` shares; the last slot stands
    /// for "a block trade".
    #[allow(
        clippy::indexing_slicing,
        reason = "lots and buckets index tables built here with the sizes they are indexed by"
    )]
    pub fn for_band(band: i32) -> Self {
        let price = libm::exp2(band as f64 / 4.0);
        let median = (BODY_MEDIAN_DOLLARS / price).clamp(1.0, 2_000.0);
        let n = BODY_MAX as usize + 1;
        let mu = libm::log(median);
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
        let total: f64 = pmf.iter().sum();
        let mean = (pmf[..n - 1]
            .iter()
            .enumerate()
            .map(|(i, p)| p * (i + 1) as f64)
            .sum::<f64>()
            + pmf[n - 1] * block_mean())
            / total;
        let (threshold, alias) = Self::vose(&pmf);
        Self {
            threshold,
            alias,
            mean,
        }
    }

    /// Expected shares per trade.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "Vose's alias method: `small` and `large` hold indices of the table being built"
    )]
    fn vose(pmf: &[f64]) -> (Vec<u32>, Vec<u32>) {
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
        (threshold, alias)
    }

    #[inline]
    #[allow(
        clippy::indexing_slicing,
        reason = "the drawn column is below the table's length, which is never zero"
    )]
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

    fn draw(price: f64, n: usize) -> Vec<u32> {
        let table = SizeTable::for_band(band(price));
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        (0..n).map(|_| table.sample(&mut rng)).collect()
    }

    #[test]
    fn sizes_have_round_lot_spikes_over_a_heavy_tail() {
        let n = 400_000;
        let mut sizes = draw(190.0, n);
        assert!(sizes.iter().all(|&s| s >= 1 && s as f64 <= SIZE_CAP));
        let share = |pred: &dyn Fn(u32) -> bool| {
            sizes.iter().filter(|&&s| pred(s)).count() as f64 / n as f64
        };
        // Round lots: their spike plus the body's own mass there.
        assert!((0.12..0.15).contains(&share(&|s| s == 100
            || s == 200
            || s == 300
            || s == 500
            || s == 1000)));
        assert!(share(&|s| s == 100) > 10.0 * share(&|s| s == 99));
        // Blocks (from 2,000 shares) plus the body's own thin mass up there.
        assert!((0.001..0.004).contains(&share(&|s| s >= 2_000)));
        assert!(share(&|s| s > BODY_MAX) > 0.0);
        let odd = share(&|s| s < 100);
        assert!((0.76..0.84).contains(&odd), "odd lots {odd}");
        let mean = sizes.iter().map(|&s| s as f64).sum::<f64>() / n as f64;
        let expected = SizeTable::for_band(band(190.0)).mean();
        // The block tail has infinite variance below its cap: a loose bound.
        assert!((mean / expected - 1.0).abs() < 0.1, "{mean} vs {expected}");
        sizes.sort_unstable();
        let median = sizes[n / 2];
        assert!((15..=35).contains(&median), "median {median}");
    }

    #[test]
    fn higher_prices_trade_fewer_shares_and_more_odd_lots() {
        let odd = |price| crate::stats::odd_lot_share(&draw(price, 100_000));
        assert!(odd(20.0) + 0.1 < odd(190.0) && odd(190.0) + 0.05 < odd(500.0));
        let mean = |price| SizeTable::for_band(band(price)).mean();
        assert!(mean(20.0) > 2.0 * mean(190.0) && mean(190.0) > 1.3 * mean(500.0));
        assert_eq!(band(190.0), band(185.0));
        assert_ne!(band(190.0), band(240.0));
    }
}
