//! Realism statistics of a tape: the estimators behind the stylized facts (Cont 2001) and the
//! calibration figures that `docs/GENERATOR.md` reports. They read plain slices (returns,
//! volumes, sizes) or 1-minute [`Candle`]s of one symbol, so the generator's tests, a command
//! or an API route can compute them from any store.
//!
//! Every estimator returns `NaN` when its input is too short or has no variance, rather than
//! an error: a statistic over an empty tape is simply undefined.
//!
//! [`report`] puts them together over a stored load: `ohlcv stats` and `GET /api/v1/stats`.

mod report;

pub use report::{StatsError, StatsReport, SymbolStats, report};

use std::collections::BTreeMap;

use crate::calendar::Session;
use crate::candles::Candle;
use crate::model::{NANOS_PER_MINUTE, PRICE_UNITS_PER_DOLLAR};

/// Sample moments of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub n: usize,
    pub mean: f64,
    /// Population variance (divided by n).
    pub variance: f64,
    /// Fourth standardised moment minus 3: 0 for a normal distribution.
    pub excess_kurtosis: f64,
}

pub fn moments(xs: &[f64]) -> Moments {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let (mut m2, mut m4) = (0.0, 0.0);
    for x in xs {
        let d = (x - mean) * (x - mean);
        m2 += d;
        m4 += d * d;
    }
    let variance = m2 / n as f64;
    Moments {
        n,
        mean,
        variance,
        excess_kurtosis: m4 / n as f64 / (variance * variance) - 3.0,
    }
}

/// Natural-log returns between consecutive prices.
#[allow(clippy::indexing_slicing, reason = "windows of two")]
pub fn log_returns(prices: &[f64]) -> Vec<f64> {
    prices.windows(2).map(|w| (w[1] / w[0]).ln()).collect()
}

/// Sums of `k` consecutive returns, without overlap: returns at a `k` times longer horizon.
pub fn aggregate(returns: &[f64], k: usize) -> Vec<f64> {
    returns.chunks_exact(k).map(|c| c.iter().sum()).collect()
}

/// Annualised realised volatility: `sqrt(periods_per_year · mean(r²))`, the mean not removed
/// (at daily horizons it is negligible, and removing it would hide a drift).
pub fn realised_vol(returns: &[f64], periods_per_year: f64) -> f64 {
    let mean_square = returns.iter().map(|r| r * r).sum::<f64>() / returns.len() as f64;
    (periods_per_year * mean_square).sqrt()
}

/// Pearson correlation of two equally long series.
#[allow(
    clippy::indexing_slicing,
    reason = "both slices are cut to the shorter one's length"
)]
pub fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Sample autocorrelation at `lag`, with the whole series' mean and variance (the usual
/// estimator, biased slightly towards 0 for short series).
#[allow(
    clippy::indexing_slicing,
    reason = "lags are bounded by the series' length, checked first"
)]
pub fn autocorrelation(xs: &[f64], lag: usize) -> f64 {
    let n = xs.len();
    if lag >= n {
        return f64::NAN;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    let cov: f64 = xs
        .windows(lag + 1)
        .map(|w| (w[0] - mean) * (w[lag] - mean))
        .sum();
    cov / var
}

/// Mean autocorrelation over lags `1..=max_lag`.
pub fn mean_autocorrelation(xs: &[f64], max_lag: usize) -> f64 {
    (1..=max_lag).map(|k| autocorrelation(xs, k)).sum::<f64>() / max_lag as f64
}

pub fn absolute(xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|x| x.abs()).collect()
}

/// The leverage effect: mean over lags `1..=max_lag` of corr(r[t], |r[t+k]|). Negative when
/// falls raise later volatility more than rises do (Black 1976; Cont 2001).
#[allow(
    clippy::indexing_slicing,
    reason = "windows are bounded by the series' length, checked first"
)]
pub fn leverage(returns: &[f64], max_lag: usize) -> f64 {
    let abs = absolute(returns);
    let n = returns.len();
    if max_lag >= n {
        return f64::NAN;
    }
    (1..=max_lag)
        .map(|k| correlation(&returns[..n - k], &abs[k..]))
        .sum::<f64>()
        / max_lag as f64
}

/// Each entry's share of the total.
pub fn shares(volumes: &[u64]) -> Vec<f64> {
    let total: u64 = volumes.iter().sum();
    volumes.iter().map(|v| *v as f64 / total as f64).collect()
}

/// Percentiles (0-100) of trade sizes, nearest rank. Sorts `amounts`.
pub fn size_percentiles(amounts: &mut [u32], percentiles: &[f64]) -> Vec<u32> {
    amounts.sort_unstable();
    let n = amounts.len();
    percentiles
        .iter()
        .map(|p| {
            let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n.max(1));
            amounts.get(rank - 1).copied().unwrap_or(0)
        })
        .collect()
}

/// Share of trades below the 100-share round lot, the definition in force through 2024.
pub fn odd_lot_share(amounts: &[u32]) -> f64 {
    amounts.iter().filter(|a| **a < 100).count() as f64 / amounts.len() as f64
}

/// Trade sizes counted by value, so that percentiles and the odd-lot share of tens of millions
/// of trades take memory in proportion to the distinct sizes, not to the trades. Its
/// percentiles are [`size_percentiles`]'s, exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SizeHistogram {
    /// Counts of the sizes below [`SizeHistogram::DENSE`], by size: nearly every trade, counted
    /// without a map lookup.
    dense: Vec<u64>,
    /// Counts of the larger sizes (blocks and the log-normal body's far tail).
    sparse: BTreeMap<u32, u64>,
    n: u64,
}

impl SizeHistogram {
    const DENSE: usize = 4096;

    pub fn push(&mut self, amounts: &[u32]) {
        if self.dense.is_empty() {
            self.dense = vec![0; Self::DENSE];
        }
        for &a in amounts {
            match self.dense.get_mut(a as usize) {
                Some(count) => *count += 1,
                None => *self.sparse.entry(a).or_default() += 1,
            }
        }
        self.n += amounts.len() as u64;
    }

    /// Trades counted.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Sizes and their counts, ascending.
    fn counts(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let dense = self.dense.iter().enumerate();
        dense
            .filter(|(_, c)| **c > 0)
            .map(|(a, c)| (a as u32, *c))
            .chain(self.sparse.iter().map(|(a, c)| (*a, *c)))
    }

    /// Percentiles (0-100), nearest rank as [`size_percentiles`]; 0 when empty.
    pub fn percentiles(&self, percentiles: &[f64]) -> Vec<u32> {
        percentiles
            .iter()
            .map(|p| {
                let rank = ((p / 100.0 * self.n as f64).ceil() as u64).clamp(1, self.n.max(1));
                let mut seen = 0;
                self.counts()
                    .find(|(_, c)| {
                        seen += c;
                        seen >= rank
                    })
                    .map_or(0, |(a, _)| a)
            })
            .collect()
    }

    /// [`odd_lot_share`] of the sizes counted.
    pub fn odd_lot_share(&self) -> f64 {
        let odd: u64 = self
            .counts()
            .take_while(|(a, _)| *a < 100)
            .map(|(_, c)| c)
            .sum();
        odd as f64 / self.n as f64
    }
}

/// Roll's (1984) effective spread, read back from trade prices alone: if prices bounce between
/// bid and ask around an efficient price, consecutive price changes have covariance −s²/4, so
/// `s = 2·sqrt(−cov(Δp[t−1], Δp[t]))`. Quotes are not stored, so this is the spread figure a
/// tape allows. It assumes independent trade signs: with sign persistence ρ (the first-order
/// autocorrelation of the side) the covariance is −(1−ρ)²·s²/4 and the estimate reads (1−ρ)·s.
///
/// Sums are exact integers (prices in units of $0.001), so the estimate does not depend on the order in
/// which sessions are added.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RollSpread {
    pairs: u64,
    sum_product: i128,
    sum_first: i128,
    sum_second: i128,
}

impl RollSpread {
    /// Adds the consecutive price changes of one run of trades. Call it once per session, so
    /// that no pair of changes spans the overnight gap.
    #[allow(clippy::indexing_slicing, reason = "windows of three")]
    pub fn push_run(&mut self, prices: &[i64]) {
        for w in prices.windows(3) {
            let (first, second) = ((w[1] - w[0]) as i128, (w[2] - w[1]) as i128);
            self.sum_product += first * second;
            self.sum_first += first;
            self.sum_second += second;
        }
        self.pairs += prices.len().saturating_sub(2) as u64;
    }

    /// cov(Δp[t−1], Δp[t]) over every pair added, in squared price units.
    pub fn covariance(&self) -> f64 {
        let n = self.pairs as f64;
        (self.sum_product as f64 - self.sum_first as f64 * self.sum_second as f64 / n) / n
    }

    /// The spread in the prices' unit; NaN when the covariance is not negative (no bounce to
    /// read a spread from) or nothing was added.
    pub fn spread(&self) -> f64 {
        let cov = self.covariance();
        if cov < 0.0 {
            2.0 * (-cov).sqrt()
        } else {
            f64::NAN
        }
    }
}

/// One session cut into equal bars of whole minutes from its open.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionBars {
    /// The first trade's price, in dollars: the base of the first bar's return.
    pub open: f64,
    /// Per bar, the last price at or before its end (an empty bar repeats the previous one).
    pub closes: Vec<f64>,
    pub volumes: Vec<u64>,
}

impl SessionBars {
    /// Cuts one session's 1-minute candles (sorted by time; any outside the session are
    /// ignored) into bars of `minutes`. None when the session has no trade.
    #[allow(
        clippy::indexing_slicing,
        reason = "bar indices are clamped to `bars - 1`, and a session has at least one bar"
    )]
    pub fn from_minutes(candles: &[Candle], session: &Session, minutes: i64) -> Option<Self> {
        let inside = || candles.iter().filter(|c| session.contains(c.time));
        let first = inside().next()?;
        let width = minutes.max(1) * NANOS_PER_MINUTE;
        let bars = ((session.duration() + width - 1) / width) as usize;
        let mut closes = vec![f64::NAN; bars];
        let mut volumes = vec![0u64; bars];
        for c in inside() {
            let i = (((c.time - session.open) / width) as usize).min(bars - 1);
            closes[i] = c.close as f64 / PRICE_UNITS_PER_DOLLAR as f64;
            volumes[i] += c.volume;
        }
        let open = first.open as f64 / PRICE_UNITS_PER_DOLLAR as f64;
        let mut last = open;
        for c in &mut closes {
            if c.is_nan() {
                *c = last;
            }
            last = *c;
        }
        Some(Self {
            open,
            closes,
            volumes,
        })
    }

    /// Log returns of the bars, the first from the session's first trade: no overnight gap.
    pub fn returns(&self) -> Vec<f64> {
        let mut previous = self.open;
        self.closes
            .iter()
            .map(|&c| {
                let r = (c / previous).ln();
                previous = c;
                r
            })
            .collect()
    }

    pub fn close(&self) -> f64 {
        self.closes.last().copied().unwrap_or(self.open)
    }
}

/// The intraday U shape: volume of the first and of the last `edge` bars of each session at
/// least `3 · edge` bars long, each over the volume of as many bars in its middle.
#[allow(
    clippy::indexing_slicing,
    reason = "sessions with fewer than three edges of bars are skipped first"
)]
pub fn u_shape_ratios(sessions: &[SessionBars], edge: usize) -> (f64, f64) {
    let (mut first, mut middle, mut last) = (0u64, 0u64, 0u64);
    for s in sessions {
        let n = s.volumes.len();
        if n < 3 * edge {
            continue;
        }
        let mid = (n - edge) / 2;
        first += s.volumes[..edge].iter().sum::<u64>();
        middle += s.volumes[mid..mid + edge].iter().sum::<u64>();
        last += s.volumes[n - edge..].iter().sum::<u64>();
    }
    (first as f64 / middle as f64, last as f64 / middle as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_known_series() {
        let m = moments(&[1.0, -1.0, 1.0, -1.0]);
        assert_eq!((m.mean, m.variance, m.excess_kurtosis), (0.0, 1.0, -2.0));
        assert!((realised_vol(&[0.01, -0.01], 252.0) - 0.01 * 252f64.sqrt()).abs() < 1e-12);
        assert_eq!(aggregate(&[1.0, 2.0, 3.0, 4.0, 5.0], 2), [3.0, 7.0]);
    }

    #[test]
    fn correlations_of_known_series() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((correlation(&x, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-12);
        assert!((autocorrelation(&[1.0, -1.0, 1.0, -1.0, 1.0, -1.0], 1) + 5.0 / 6.0).abs() < 1e-12);
        // After every fall the next move is large, after every rise small: leverage < 0.
        let r = [-1.0, 3.0, 1.0, 0.5, -1.0, 3.0, 1.0, 0.5, -1.0, 3.0];
        assert!(leverage(&r, 1) < -0.5);
        assert!(autocorrelation(&x, 4).is_nan());
    }

    #[test]
    fn sizes_and_shares() {
        let mut sizes = [100, 1, 50, 300, 7];
        assert_eq!(
            size_percentiles(&mut sizes, &[0.0, 50.0, 100.0]),
            [1, 50, 300]
        );
        assert_eq!(odd_lot_share(&sizes), 0.6);
        assert_eq!(shares(&[1, 3]), [0.25, 0.75]);
    }

    #[test]
    fn the_histogram_gives_the_sorted_sizes_percentiles() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let ps = [0.0, 1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0];
        for n in [1, 2, 7, 1000, 20_000] {
            // Mostly small sizes, some far above the dense range.
            let mut sizes: Vec<u32> = (0..n)
                .map(|_| match rng.next_u32() % 10 {
                    0 => 4000 + rng.next_u32() % 1_000_000,
                    _ => 1 + rng.next_u32() % 600,
                })
                .collect();
            let mut h = SizeHistogram::default();
            for chunk in sizes.chunks(333) {
                h.push(chunk);
            }
            assert_eq!(h.len(), n as u64);
            assert_eq!(h.odd_lot_share(), odd_lot_share(&sizes), "n = {n}");
            assert_eq!(
                h.percentiles(&ps),
                size_percentiles(&mut sizes, &ps),
                "n = {n}"
            );
        }
        let empty = SizeHistogram::default();
        assert!(empty.is_empty() && empty.odd_lot_share().is_nan());
        assert_eq!(empty.percentiles(&[50.0]), [0]);
    }

    #[test]
    fn roll_reads_the_spread_of_a_bounce() {
        // An efficient price of 1000 cents, trades alternating at bid 999 and ask 1001 at random:
        // a 2-cent spread with independent signs.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let mut roll = RollSpread::default();
        for _ in 0..20 {
            let prices: Vec<i64> = (0..5_000)
                .map(|_| if rng.next_u32() & 1 == 1 { 1001 } else { 999 })
                .collect();
            roll.push_run(&prices);
        }
        assert!((roll.spread() - 2.0).abs() < 0.05, "{}", roll.spread());
        // A trend without bounce has no negative covariance: no spread to read.
        let mut trend = RollSpread::default();
        trend.push_run(&(0..100).collect::<Vec<i64>>());
        assert!(trend.spread().is_nan());
        assert!(RollSpread::default().spread().is_nan());
    }

    #[test]
    fn bars_carry_prices_over_empty_minutes() {
        let session =
            crate::calendar::session(chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()).unwrap();
        let candle = |minute: i64, open: i64, close: i64, volume: u64| Candle {
            time: session.open + minute * NANOS_PER_MINUTE,
            open,
            high: open.max(close),
            low: open.min(close),
            close,
            volume,
            trades: 1,
            notional: 0,
        };
        let bars = SessionBars::from_minutes(
            &[
                candle(-1, 10, 10, 1),
                candle(0, 1_000, 1_000, 5),
                candle(12, 1_100, 1_210, 7),
                candle(389, 1_210, 1_100, 9),
                candle(390, 10, 10, 1),
            ],
            &session,
            5,
        )
        .unwrap();
        assert_eq!(bars.closes.len(), 78);
        assert_eq!(bars.closes[1], 1.0);
        assert_eq!(bars.closes[2], 1.21);
        assert_eq!(bars.volumes[2], 7);
        assert_eq!(bars.close(), 1.10);
        let r = bars.returns();
        assert_eq!(r.len(), 78);
        assert!((r.iter().sum::<f64>() - 1.1f64.ln()).abs() < 1e-12);
        let (open, close) = u_shape_ratios(&[bars], 3);
        assert!(
            open.is_infinite() && close.is_infinite(),
            "no midday volume"
        );
    }
}
