//! The deterministic, seekable market generator.
//!
//! A load is cut into chunks, one per (symbol, session). Generating works in two levels:
//!
//! 1. The [`MarketPlan`], computed once and cheaply: per symbol, a daily anchor path (each
//!    session's open and close, with GJR-GARCH(1,1) volatility times a smooth asymmetric
//!    factor, heavy-tailed innovations,
//!    overnight gaps and earnings jumps) and an activity level per session; from those, the
//!    exact number of trades of every chunk (summing to exactly the requested N) and its first
//!    trade id.
//! 2. A chunk's trades, from a random stream keyed by (seed, symbol, date) alone: an intraday
//!    minute path bridged from the session's open anchor to its close anchor, U-shaped and
//!    persistent activity (which is also the minute's share of variance), arrival times inside
//!    each minute, and per trade a Brownian-bridge efficient price, a quote centred on it, a
//!    persistent side and a size; an opening and a closing cross at the day's anchors frame
//!    the session.
//!
//! So any chunk can be generated alone, in any order, on any thread or machine, and equals
//! what a full sequential run produces. The model and its sources: `docs/GENERATOR.md`.

mod profiles;
pub mod seeds;
mod sizes;

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::calendar::{self, Session};
use crate::model::{
    NANOS_PER_MINUTE, Nanos, PRICE_UNITS_PER_CENT, Symbol, TimeResolution, TradeColumns,
};
pub use profiles::Profile;
pub use sizes::SizeTable;

/// Bumped whenever a change alters generated trades, so stored loads can tell.
pub const GENERATOR_VERSION: u32 = 6;

/// Loads whose busiest chunk has at most this many trades get microsecond timestamps. Even a
/// minute 40 times busier than the session's average then uses well under the minute's 60
/// million microseconds; denser loads get nanoseconds.
pub const MICROSECOND_MAX_CHUNK: u64 = 100_000_000;

/// Largest load the generator accepts: beyond it counts risk overflowing the allocation math.
pub const MAX_TRADES: u64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeneratorError {
    #[error("trades must be between 1 and {MAX_TRADES}, got {0}")]
    Trades(u64),
    #[error("at least one symbol is required")]
    NoSymbols,
    #[error("symbol {0} is listed twice")]
    DuplicateSymbol(Symbol),
    #[error("start date {start} is after end date {end}")]
    Range { start: NaiveDate, end: NaiveDate },
    #[error("no NYSE session between {start} and {end}")]
    NoSessions { start: NaiveDate, end: NaiveDate },
    #[error("date {0} is outside {range}", range = calendar::supported_range())]
    Unsupported(NaiveDate),
}

pub type Result<T, E = GeneratorError> = std::result::Result<T, E>;

/// What to generate. Two equal configs generate identical trades.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GeneratorConfig {
    pub trades: u64,
    #[schema(value_type = Vec<String>, example = json!(["AAPL", "MSFT"]))]
    pub symbols: Vec<Symbol>,
    /// First calendar date, inclusive.
    pub start: NaiveDate,
    /// Last calendar date, inclusive.
    pub end: NaiveDate,
    pub seed: u64,
}

impl Default for GeneratorConfig {
    /// The original proof of concept's load: 300 million trades over 2024 in five large caps.
    #[allow(
        clippy::expect_used,
        reason = "the default symbols and dates are constants that parse"
    )]
    fn default() -> Self {
        Self {
            trades: 300_000_000,
            symbols: ["AAPL", "MSFT", "AMZN", "GOOGL", "META"]
                .iter()
                .map(|s| Symbol::new(s).expect("valid"))
                .collect(),
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid"),
            end: NaiveDate::from_ymd_opt(2024, 12, 31).expect("valid"),
            seed: 42,
        }
    }
}

// Daily model: GJR-GARCH(1,1) (Glosten, Jagannathan and Runkle 1993) on the diffusive part of
// the daily return, falls adding GJR_GAMMA more than rises. Persistence α + γ/2 + β = 0.97,
// and the fourth moment stays finite with the innovations below.
const GJR_ALPHA: f64 = 0.02;
const GJR_GAMMA: f64 = 0.12;
const GJR_BETA: f64 = 0.89;
/// Innovations are Student-t (Bollerslev 1987) with this many degrees of freedom, drawn as a
/// normal times a scale `sqrt((ν−2)/χ²_ν)` of mean square 1.
const T_DOF: usize = 6;
const OVERNIGHT_VAR_SHARE: f64 = 0.2;
/// Earnings: about four a year, each a jump of EARNINGS_SCALE daily standard deviations.
const EARNINGS_PROB: f64 = 4.0 / 252.0;
const EARNINGS_SCALE: f64 = 3.0;
// A second, smooth volatility factor multiplies the GJR variance: a log-AR(1) whose
// innovations are correlated with the day's return (asymmetric stochastic volatility: Harvey
// and Shephard 1996), so a fall raises the next weeks' variance. The GJR part alone cannot
// cluster more with Student-t shocks before its fourth moment becomes infinite.
const SV_AR: f64 = 0.95;
const SV_SD: f64 = 0.5;
const SV_LEVERAGE: f64 = -0.7;
/// E[h · exp(sv − SV_SD²/2)] over E[h]: falls raise both factors, so their product's mean
/// exceeds the product of their means by this much (measured over 500 seeds of full-year
/// plans; `daily_volatility_matches_the_profiles_and_prices_are_martingales` holds the pooled
/// volatility to the profile). Dividing by it keeps the variance budget.
const SV_COMOVEMENT: f64 = 1.11;
const DAILY_ACTIVITY_AR: f64 = 0.7;
const DAILY_ACTIVITY_SD: f64 = 0.25;
// Intraday model: activity (and variance) is the U shape times a slow factor that persists
// for tens of minutes and a fast one that does not.
const SLOW_AR: f64 = 0.98;
const SLOW_SD: f64 = 0.9;
const FAST_AR: f64 = 0.5;
const FAST_SD: f64 = 0.3;
const MINUTE_JUMP_PROB: f64 = 0.002;
const MINUTE_JUMP_SCALE: f64 = 10.0;
const SIDE_PERSISTENCE: f64 = 0.65;
/// Share of continuous trades printed at the quote's midpoint (off-exchange midpoint and
/// hidden liquidity), whatever the spread.
const INSIDE_SPREAD_PROB: f64 = 0.10;
// Auctions: each session opens and closes with a cross, sized as a share of the day's volume
// that varies from day to day (a log-normal factor of mean 1). The closing auction was about
// 9 % of US consolidated volume in 2024 (NYSE, Rosenblatt; docs/GENERATOR.md), the opening
// one a small fraction of that.
const OPEN_CROSS_SHARE: f64 = 0.015;
const CLOSE_CROSS_SHARE: f64 = 0.08;
const CROSS_SHARE_SD: f64 = 0.3;

/// The closing cross is stamped this long before the session's (exclusive) close, so it falls
/// inside the session and its last minute: every session-bounded reader, fill mode and
/// partition takes it as it takes any trade. Continuous trading never uses this instant, nor
/// the open's, so the crosses are the trades stamped at [`opening_cross_time`] and
/// [`closing_cross_time`].
pub const CLOSING_CROSS_BEFORE_CLOSE: Nanos = 1_000;

/// When a session's opening cross is stamped: the open itself.
pub fn opening_cross_time(session: &Session) -> Nanos {
    session.open
}

/// When a session's closing cross is stamped: 1 µs before the close.
pub fn closing_cross_time(session: &Session) -> Nanos {
    session.close - CLOSING_CROSS_BEFORE_CLOSE
}

/// Intraday activity by fraction of the session elapsed: high at the open, a midday trough,
/// a rise into the close (Wood, McInish and Ord 1985; Admati and Pfleiderer 1988).
fn u_shape(x: f64) -> f64 {
    0.55 + 1.6 * libm::exp(-x / 0.06) + 0.9 * libm::exp(-(1.0 - x) / 0.05)
}

/// The plan of one (symbol, session) chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkPlan {
    /// Trades of the chunk, its two crosses included.
    pub count: u64,
    pub first_trade_id: u64,
    /// Anchor prices in dollars: the opening and closing crosses print at them.
    pub open: f64,
    pub close: f64,
    /// The previous session's close anchor (the start price for the first session): the
    /// opening cross's side is the direction of the overnight move.
    pub previous_close: f64,
    /// Variance of the session's log return, given the day's Student-t scale: the intraday
    /// path is drawn with it, so bridging it onto the close anchor adds no drift.
    pub session_var: f64,
}

#[derive(Debug, Clone)]
pub struct SymbolPlan {
    pub symbol: Symbol,
    pub profile: Profile,
    /// Expected shares per trade of the symbol's size table.
    pub mean_size: f64,
    /// One per session of the plan, in session order.
    pub chunks: Vec<ChunkPlan>,
}

/// Everything needed to generate any chunk of a load on its own.
#[derive(Debug, Clone)]
pub struct MarketPlan {
    config: GeneratorConfig,
    sessions: Vec<Session>,
    symbols: Vec<SymbolPlan>,
    /// Size tables, one per price band in use, and each symbol's index into them.
    sizes: Vec<SizeTable>,
    symbol_sizes: Vec<usize>,
    resolution: TimeResolution,
}

fn days_since_epoch(date: NaiveDate) -> i64 {
    date.num_days_from_ce() as i64 - 719_163
}

/// Splits `total` into parts proportional to `weights`, summing to exactly `total`.
fn apportion(total: u64, weights: &[f64], out: &mut Vec<u64>) {
    out.clear();
    // Integer weights make the split exact and identical on every platform.
    let scaled: Vec<u128> = weights
        .iter()
        .map(|w| (w * (1u64 << 40) as f64) as u128 + 1)
        .collect();
    let sum: u128 = scaled.iter().sum();
    let mut cumulative = 0u128;
    let mut given = 0u64;
    for w in scaled {
        cumulative += w;
        let upto = (total as u128 * cumulative / sum) as u64;
        out.push(upto - given);
        given = upto;
    }
}

impl MarketPlan {
    #[allow(
        clippy::indexing_slicing,
        clippy::expect_used,
        reason = "`i` enumerates `symbols`; `from` is the weights' length before this symbol's were pushed; `apportion` returns one count per weight, i.e. per chunk"
    )]
    pub fn new(config: GeneratorConfig) -> Result<Self> {
        if !(1..=MAX_TRADES).contains(&config.trades) {
            return Err(GeneratorError::Trades(config.trades));
        }
        if config.symbols.is_empty() {
            return Err(GeneratorError::NoSymbols);
        }
        for (i, s) in config.symbols.iter().enumerate() {
            if config.symbols[..i].contains(s) {
                return Err(GeneratorError::DuplicateSymbol(s.clone()));
            }
        }
        let (start, end) = (config.start, config.end);
        if let Some(outside) = [start, end]
            .into_iter()
            .find(|d| !calendar::is_supported(*d))
        {
            return Err(GeneratorError::Unsupported(outside));
        }
        if start > end {
            return Err(GeneratorError::Range { start, end });
        }
        let sessions = calendar::sessions(start, end);
        if sessions.is_empty() {
            return Err(GeneratorError::NoSessions { start, end });
        }

        let mut symbols = Vec::with_capacity(config.symbols.len());
        let mut weights = Vec::with_capacity(config.symbols.len() * sessions.len());
        let mut bands: Vec<i32> = Vec::new();
        let mut sizes: Vec<SizeTable> = Vec::new();
        let mut symbol_sizes = Vec::with_capacity(config.symbols.len());
        for symbol in &config.symbols {
            let profile = Profile::for_symbol(symbol);
            let band = sizes::band(profile.start_price);
            let table = match bands.iter().position(|b| *b == band) {
                Some(i) => i,
                None => {
                    bands.push(band);
                    sizes.push(SizeTable::for_band(band));
                    sizes.len() - 1
                }
            };
            symbol_sizes.push(table);
            let mean_size = sizes[table].mean();
            // Trades a session, so that share volumes stand as the profiles' volumes do.
            let trades_per_day = profile.adv_millions * 1e6 / mean_size;
            let from = weights.len();
            let chunks = daily_path(config.seed, symbol, &profile, &sessions, &mut weights);
            // Scale the symbol's session weights to sum to its trades: the split between
            // symbols is then exact, whatever each path's busy and quiet days.
            let days: f64 = sessions.iter().map(session_length).sum();
            let sum: f64 = weights[from..].iter().sum();
            for w in &mut weights[from..] {
                *w *= trades_per_day * days / sum;
            }
            symbols.push(SymbolPlan {
                symbol: symbol.clone(),
                profile,
                mean_size,
                chunks,
            });
        }
        let mut counts = Vec::new();
        apportion(config.trades, &weights, &mut counts);
        let mut counts = counts.into_iter();
        for plan in &mut symbols {
            let mut next_id = 0;
            for chunk in &mut plan.chunks {
                chunk.count = counts.next().expect("one count per chunk");
                chunk.first_trade_id = next_id;
                next_id += chunk.count;
            }
        }
        let busiest = symbols
            .iter()
            .flat_map(|s| &s.chunks)
            .map(|c| c.count)
            .max()
            .unwrap_or(0);
        let resolution = if busiest <= MICROSECOND_MAX_CHUNK {
            TimeResolution::Micros
        } else {
            TimeResolution::Nanos
        };
        Ok(Self {
            config,
            sessions,
            symbols,
            sizes,
            symbol_sizes,
            resolution,
        })
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }

    pub fn symbols(&self) -> &[SymbolPlan] {
        &self.symbols
    }

    /// Every timestamp of the load is a whole multiple of this.
    pub fn resolution(&self) -> TimeResolution {
        self.resolution
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "indices of the plan's own symbols and sessions, which callers iterate; past them it panics as slice indexing does"
    )]
    pub fn chunk(&self, symbol: usize, session: usize) -> &ChunkPlan {
        &self.symbols[symbol].chunks[session]
    }

    /// Appends all trades of chunk (`symbol`, `session`) to `out`, in time order.
    pub fn generate(&self, symbol: usize, session: usize, out: &mut TradeColumns) {
        let mut chunk = self.chunk_trades(symbol, session);
        while chunk.fill(usize::MAX, out) {}
    }

    /// The trades of chunk (`symbol`, `session`) as a stream of whole minutes, so a caller can
    /// take them in bounded batches whatever the chunk's size.
    #[allow(
        clippy::indexing_slicing,
        reason = "indices of the plan's own symbols and sessions, which callers iterate; `symbol_sizes` holds a valid index into `sizes` per symbol"
    )]
    pub fn chunk_trades(&self, symbol: usize, session: usize) -> ChunkTrades<'_> {
        let plan = &self.symbols[symbol];
        let s = &self.sessions[session];
        let rng = seeds::rng(
            self.config.seed,
            &plan.symbol,
            seeds::Stream::Session(days_since_epoch(s.date)),
        );
        ChunkTrades::new(
            rng,
            &self.sizes[self.symbol_sizes[symbol]],
            self.resolution.nanos(),
            s,
            &plan.chunks[session],
        )
    }
}

/// A session's length as a fraction of a full 390-minute session.
fn session_length(s: &Session) -> f64 {
    s.duration() as f64 / (390 * NANOS_PER_MINUTE) as f64
}

/// A Student-t scale: `sqrt((ν−2)/χ²_ν)`, so that a standard normal times it is a Student-t
/// of unit variance.
fn t_scale(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let chi2: f64 = (0..T_DOF)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut *rng);
            z * z
        })
        .sum();
    libm::sqrt((T_DOF as f64 - 2.0) / chi2)
}

/// Walks one symbol's daily anchors; pushes each session's activity weight to `weights`.
///
/// A day's log return from close to close is `gap + session`: a diffusive part with variance
/// `v` (the GJR-GARCH state `h` times the smooth factor) split 20/80 between the overnight gap
/// and the session, both
/// normals times the same Student-t scale `w` (so their sum is Student-t, and neither
/// predicts the other), plus on earnings days a normal jump in the gap. Given `w`, each part
/// is normal and carries the drift −var/2 that makes exp(return) mean 1, so prices are
/// martingales from close to close; the mean log return is −σ²/2 since E[w²] = 1. Earnings
/// dates are known in advance, so their jump's drift applies on the day. The long-run `h` is
/// what the profile's volatility leaves after the earnings jumps' share, and `v` has `h`'s mean
/// once the two factors' comovement is divided out: the total matches.
fn daily_path(
    seed: u64,
    symbol: &Symbol,
    profile: &Profile,
    sessions: &[Session],
    weights: &mut Vec<f64>,
) -> Vec<ChunkPlan> {
    let mut rng = seeds::rng(seed, symbol, seeds::Stream::Daily);
    let total_var = profile.annual_vol * profile.annual_vol / 252.0;
    let jump_var = EARNINGS_SCALE * EARNINGS_SCALE * total_var;
    let long_run = total_var - EARNINGS_PROB * jump_var;
    let omega = long_run * (1.0 - GJR_ALPHA - GJR_GAMMA / 2.0 - GJR_BETA);
    let mut h = long_run;
    let mut price = profile.start_price;
    let mut activity = 0.0;
    // The smooth factor starts from its stationary law; exp(sv − SV_SD²/2) has mean 1.
    let z_sv0: f64 = StandardNormal.sample(&mut rng);
    let mut sv = SV_SD * z_sv0;
    let sv_step = SV_SD * (1.0 - SV_AR * SV_AR).sqrt();
    let sv_own = (1.0 - SV_LEVERAGE * SV_LEVERAGE).sqrt();
    sessions
        .iter()
        .map(|s| {
            let scale = t_scale(&mut rng);
            let z_sv: f64 = StandardNormal.sample(&mut rng);
            let v = h * libm::exp(sv - 0.5 * SV_SD * SV_SD) / SV_COMOVEMENT;
            let z_gap: f64 = StandardNormal.sample(&mut rng);
            let z_day: f64 = StandardNormal.sample(&mut rng);
            let z_jump: f64 = StandardNormal.sample(&mut rng);
            let z_act: f64 = StandardNormal.sample(&mut rng);
            let earnings = unit(rng.next_u64()) < EARNINGS_PROB;
            let length = session_length(s);
            // The day's expected diffusive variance, and the variances given its scale.
            let diffusive_var = v * (OVERNIGHT_VAR_SHARE + (1.0 - OVERNIGHT_VAR_SHARE) * length);
            let gap_var = OVERNIGHT_VAR_SHARE * v * scale * scale;
            let session_var = (1.0 - OVERNIGHT_VAR_SHARE) * v * length * scale * scale;
            let gap_diffusive = gap_var.sqrt() * z_gap;
            let session_diffusive = session_var.sqrt() * z_day;
            let (jump, jump_var_today) = if earnings {
                (jump_var.sqrt() * z_jump, jump_var)
            } else {
                (0.0, 0.0)
            };
            let gap = gap_diffusive + jump - 0.5 * (gap_var + jump_var_today);
            let day_return = session_diffusive - 0.5 * session_var;
            let open = price * libm::exp(gap);
            let close = open * libm::exp(day_return);
            let previous_close = price;
            let shock = gap_diffusive + session_diffusive;
            activity = DAILY_ACTIVITY_AR * activity + DAILY_ACTIVITY_SD * z_act;
            // Volume rises with the day's expected variance and with its surprise (the move
            // against its diffusive standard deviation, 1 on average): volatile days, and
            // earnings days above all, are busy days.
            let surprise = (shock + jump).abs() / diffusive_var.sqrt() * SQRT_HALF_PI;
            weights.push(
                length * libm::exp(activity) * (v / long_run).sqrt() * (0.7 + 0.3 * surprise),
            );
            // The GJR update, on the day's diffusive shock restated as a full day's of the GJR
            // part's own scale: each factor keeps its own mean.
            let standardised = shock / diffusive_var.sqrt();
            let asymmetry = if shock < 0.0 { GJR_GAMMA } else { 0.0 };
            h = omega + (GJR_ALPHA + asymmetry) * standardised * standardised * h + GJR_BETA * h;
            // The smooth factor's innovation leans against the day's normal shock (given the
            // day's scale, the shock's sign and size without the Student-t scale), so its
            // law stays log-normal whatever the tails.
            let z_shock = (libm::sqrt(OVERNIGHT_VAR_SHARE) * z_gap
                + libm::sqrt((1.0 - OVERNIGHT_VAR_SHARE) * length) * z_day)
                / libm::sqrt(OVERNIGHT_VAR_SHARE + (1.0 - OVERNIGHT_VAR_SHARE) * length);
            sv = SV_AR * sv + sv_step * (SV_LEVERAGE * z_shock + sv_own * z_sv);
            price = close;
            ChunkPlan {
                count: 0,
                first_trade_id: 0,
                open,
                close,
                previous_close,
                session_var,
            }
        })
        .collect()
}

/// 1 / E|z| for a standard normal z.
const SQRT_HALF_PI: f64 = 1.253_314_137_315_500_3;

/// The quoted spread in whole cents at a price in dollars: one tick up to $375, then about
/// 0.4 basis points (2 cents at $500).
#[inline]
fn spread_cents(price: f64) -> i64 {
    ((price / 250.0).round() as i64).max(1)
}

/// The bid, in cents, of a `spread`-cent quote centred on the efficient price `mid` (cents):
/// the quote's midpoint `bid + spread/2` is the grid point nearest `mid` (whole cents for an
/// even spread, half cents for an odd one), so it is off by at most half a cent and by
/// nothing on average.
#[inline]
fn bid_cents(mid: f64, spread: i64) -> i64 {
    (mid - spread as f64 / 2.0 + 0.5).floor() as i64
}

/// A midpoint print, in price units: the exact midpoint of the quote, a half cent when the
/// spread is odd (a 1-cent spread included). Nobody may quote below the cent at $1 and above
/// (Rule 612 of Regulation NMS), but the rule does not cover executions: off-exchange venues
/// execute at the midpoint of the national best bid and offer, sub-penny or not
/// (docs/GENERATOR.md).
#[inline]
fn midpoint_units(bid: i64, spread: i64) -> i64 {
    bid * PRICE_UNITS_PER_CENT + spread * PRICE_UNITS_PER_CENT / 2
}

/// A uniform in [0, 1) from the top 53 bits.
#[inline]
fn unit(r: u64) -> f64 {
    (r >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// An auction print: one trade at one price for all the shares crossed.
#[derive(Debug, Clone, Copy)]
struct Cross {
    time: Nanos,
    price: i64,
    amount: u32,
    buy: bool,
}

/// The trades of one chunk, generated minute by minute. Created by
/// [`MarketPlan::chunk_trades`]; the minute-level path is drawn up front (a few hundred
/// values), the trades on demand.
pub struct ChunkTrades<'a> {
    rng: Xoshiro256PlusPlus,
    sizes: &'a SizeTable,
    unit_ns: i64,
    open: i64,
    /// Per minute: continuous trades, and the efficient price at its start (one more, for the
    /// close).
    counts: Vec<u64>,
    anchors: Vec<f64>,
    minute_sd: Vec<f64>,
    /// Printed with the first minute's trades, before them, and with the last minute's,
    /// after them, so a minute's trades are never split between two `fill` calls.
    opening: Option<Cross>,
    closing: Option<Cross>,
    minute: usize,
    trade_id: u64,
    buy: bool,
    spacings: Vec<f64>,
}

impl<'a> ChunkTrades<'a> {
    #[allow(
        clippy::indexing_slicing,
        reason = "minute indices run over `0..minutes`, and every per-minute vector is built with `minutes` entries (anchors with one more)"
    )]
    fn new(
        mut rng: Xoshiro256PlusPlus,
        sizes: &'a SizeTable,
        unit_ns: i64,
        session: &Session,
        chunk: &ChunkPlan,
    ) -> Self {
        let minutes = (session.duration() / NANOS_PER_MINUTE) as usize;

        // Minute activity, also the minute's share of variance (volume and volatility move
        // together: Clark 1973): the U shape times two AR(1) factors in logs, a slow one
        // that starts the session from its stationary law and clusters volatility over tens
        // of minutes, and a fast one.
        let mut activity = Vec::with_capacity(minutes);
        let z0: f64 = StandardNormal.sample(&mut rng);
        let mut slow = SLOW_SD * z0;
        let mut fast = 0.0;
        let slow_step = SLOW_SD * (1.0 - SLOW_AR * SLOW_AR).sqrt();
        let fast_step = FAST_SD * (1.0 - FAST_AR * FAST_AR).sqrt();
        for m in 0..minutes {
            let zs: f64 = StandardNormal.sample(&mut rng);
            let zf: f64 = StandardNormal.sample(&mut rng);
            slow = SLOW_AR * slow + slow_step * zs;
            fast = FAST_AR * fast + fast_step * zf;
            activity.push(u_shape((m as f64 + 0.5) / minutes as f64) * libm::exp(slow + fast));
        }
        let total_activity: f64 = activity.iter().sum();

        // Minute path of log prices with rare jumps, then a bridge onto the close anchor,
        // spreading the correction in proportion to each minute's variance. The diffusion
        // leaves room for the jumps' variance, so the session's realised variance is its
        // planned variance, not more.
        let jump_share = MINUTE_JUMP_PROB * MINUTE_JUMP_SCALE * MINUTE_JUMP_SCALE;
        let diffusion_var = chunk.session_var / (1.0 + jump_share);
        let mut path = Vec::with_capacity(minutes + 1);
        let mut minute_sd = Vec::with_capacity(minutes);
        let mut log_price = 0.0;
        path.push(0.0);
        for a in &activity {
            let sd = (diffusion_var * a / total_activity).sqrt();
            let z: f64 = StandardNormal.sample(&mut rng);
            log_price += sd * z;
            if unit(rng.next_u64()) < MINUTE_JUMP_PROB {
                let j: f64 = StandardNormal.sample(&mut rng);
                log_price += MINUTE_JUMP_SCALE * sd * j;
            }
            minute_sd.push(sd);
            path.push(log_price);
        }
        let miss = log_price - libm::log(chunk.close / chunk.open);
        let mut cumulative = 0.0;
        let anchors: Vec<f64> = path
            .iter()
            .enumerate()
            .map(|(m, lp)| {
                if m > 0 {
                    cumulative += activity[m - 1];
                }
                chunk.open * libm::exp(lp - miss * cumulative / total_activity)
            })
            .collect();

        // The crosses are trades of the chunk's count, so counts still sum to N: a chunk of
        // one trade has only its closing cross (the day's close), of none neither.
        let crosses = chunk.count.min(2);
        let continuous = chunk.count - crosses;
        let mut counts = Vec::with_capacity(minutes);
        apportion(continuous, &activity, &mut counts);
        let units = NANOS_PER_MINUTE / unit_ns;
        assert!(
            counts
                .iter()
                .all(|k| (*k as i64) < units - CLOSING_CROSS_BEFORE_CLOSE / unit_ns - 1),
            "a minute holds more trades than time steps; MICROSECOND_MAX_CHUNK is too high"
        );
        let buy = rng.next_u64() & 1 == 1;

        // Each cross takes its share of the day's volume, the continuous volume expected from
        // the count being the rest; its side is the direction of the move it prints (an
        // auction has no aggressor; docs/GENERATOR.md).
        let z_open: f64 = StandardNormal.sample(&mut rng);
        let z_close: f64 = StandardNormal.sample(&mut rng);
        let continuous_volume = continuous as f64 * sizes.mean();
        let rest = 1.0 - OPEN_CROSS_SHARE - CLOSE_CROSS_SHARE;
        let cross = |time, anchor: f64, from: f64, share: f64, z: f64| {
            let factor = libm::exp(CROSS_SHARE_SD * z - 0.5 * CROSS_SHARE_SD * CROSS_SHARE_SD);
            // Clamped to u32 only for loads far beyond any real session's volume.
            let amount = libm::round(continuous_volume * share / rest * factor)
                .clamp(1.0, u32::MAX as f64) as u32;
            Cross {
                time,
                // Auctions cross at a whole cent, as listing exchanges' crosses do.
                price: (libm::round(anchor * 100.0) as i64).max(1) * PRICE_UNITS_PER_CENT,
                amount,
                buy: anchor >= from,
            }
        };
        let opening = (crosses == 2).then(|| {
            cross(
                opening_cross_time(session),
                chunk.open,
                chunk.previous_close,
                OPEN_CROSS_SHARE,
                z_open,
            )
        });
        let closing = (crosses >= 1).then(|| {
            cross(
                closing_cross_time(session),
                chunk.close,
                anchors[minutes - 1],
                CLOSE_CROSS_SHARE,
                z_close,
            )
        });
        Self {
            rng,
            sizes,
            unit_ns,
            open: session.open,
            counts,
            anchors,
            minute_sd,
            opening,
            closing,
            minute: 0,
            trade_id: chunk.first_trade_id,
            buy,
            spacings: Vec::new(),
        }
    }

    /// Appends whole minutes of trades to `out` until it has grown by at least `rows` or the
    /// chunk is done. Returns false, appending nothing, once the chunk is exhausted.
    pub fn fill(&mut self, rows: usize, out: &mut TradeColumns) -> bool {
        if self.minute >= self.counts.len() {
            return false;
        }
        let before = out.len();
        while self.minute < self.counts.len() && out.len() - before < rows {
            if self.minute == 0 {
                self.push_cross(self.opening, out);
            }
            self.minute_trades(self.minute, out);
            if self.minute + 1 == self.counts.len() {
                self.push_cross(self.closing, out);
            }
            self.minute += 1;
        }
        true
    }

    fn push_cross(&mut self, cross: Option<Cross>, out: &mut TradeColumns) {
        if let Some(c) = cross {
            out.push(c.time, self.trade_id, c.price, c.amount, c.buy);
            self.trade_id += 1;
        }
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "`m < counts.len()` and the per-minute vectors have that length (anchors one more); `k` spacings of the `k + 1` drawn are read"
    )]
    fn minute_trades(&mut self, m: usize, out: &mut TradeColumns) {
        let k = self.counts[m] as usize;
        if k == 0 {
            return;
        }
        let units = NANOS_PER_MINUTE / self.unit_ns;
        let side_keep = (SIDE_PERSISTENCE * 4_294_967_296.0) as u64;
        let inside = (INSIDE_SPREAD_PROB * 2_147_483_648.0) as u64;
        // Positions run from `first` to `first + span − 2` (the floor below stays under
        // `span − k`): the first minute leaves the open's instant to the opening cross, the
        // last leaves the closing cross's instant and everything after it.
        let first = (m == 0) as i64;
        let tail = if m + 1 == self.counts.len() {
            CLOSING_CROSS_BEFORE_CLOSE / self.unit_ns - 1
        } else {
            0
        };
        let span = units - first - tail;
        let rng = &mut self.rng;
        out.reserve(k);
        // Sorted uniform arrival times from normalised exponential spacings; the `+ j` makes
        // them strictly increasing without leaving the minute.
        self.spacings.clear();
        self.spacings
            .extend((0..=k).map(|_| -> f64 { Exp1.sample(rng) }));
        let scale = (span - k as i64) as f64 / self.spacings.iter().sum::<f64>();
        let minute_start = self.open + m as i64 * NANOS_PER_MINUTE;
        let (from, to) = (self.anchors[m], self.anchors[m + 1]);
        let sd = from * self.minute_sd[m];
        let spread = spread_cents(from);
        let mut efficient = from;
        let mut elapsed = 0.0f64;
        let mut cum = 0.0;
        for (j, e) in self.spacings[..k].iter().enumerate() {
            cum += e;
            let position = (cum * scale) as i64 + j as i64 + first;
            let tau = position as f64 / units as f64;
            // Brownian bridge step from `elapsed` to `tau`, pinned at `to` when tau = 1.
            let remaining = 1.0 - elapsed;
            let dt = tau - elapsed;
            let z: f64 = StandardNormal.sample(rng);
            efficient += (to - efficient) * dt / remaining
                + sd * (dt * (1.0 - tau) / remaining).max(0.0).sqrt() * z;
            elapsed = tau;

            // One draw: the low 32 bits for the side, the top 31 bits for printing at the
            // midpoint.
            let r = rng.next_u64();
            if (r & 0xFFFF_FFFF) >= side_keep {
                self.buy = !self.buy;
            }
            let bid = bid_cents(efficient * 100.0, spread);
            let price = if (r >> 33) < inside {
                midpoint_units(bid, spread)
            } else if self.buy {
                (bid + spread) * PRICE_UNITS_PER_CENT
            } else {
                bid * PRICE_UNITS_PER_CENT
            };
            let amount = self.sizes.sample(rng);
            out.push(
                minute_start + position * self.unit_ns,
                self.trade_id,
                price.max(PRICE_UNITS_PER_CENT),
                amount,
                self.buy,
            );
            self.trade_id += 1;
        }
    }
}

#[cfg(test)]
mod tests;
