//! The realism report of a stored load, one row per symbol: what `ohlcv stats` prints and
//! `GET /api/v1/stats` answers. It reads the load through the [`Store`] trait only, so it
//! describes whatever a store holds (Parquet or InfluxDB), not what the generator meant to
//! write.
//!
//! Two passes per symbol, each bounded in memory by a session rather than by the load:
//!
//! - the stored 1-minute candles, streamed session by session: daily closes (the last minute's
//!   close), 5- and 30-minute bars ([`SessionBars`]), volumes and trade counts;
//! - the trades, read one session at a time: sizes into a [`SizeHistogram`], prices into
//!   [`RollSpread`]. A session of the default load's busiest symbol is about 0.4 M trades.
//!
//! Symbols are computed on worker threads, one symbol each at a time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::{
    RollSpread, SessionBars, SizeHistogram, absolute, aggregate, correlation, leverage,
    log_returns, mean_autocorrelation, moments, realised_vol, shares, u_shape_ratios,
};
use crate::calendar::{self, Session};
use crate::candles::Candle;
use crate::format::{self, Format};
use crate::generator::{closing_cross_time, opening_cross_time};
use crate::model::{PRICE_UNITS_PER_CENT, Symbol};
use crate::store::{Store, StoreError};

/// Lags of the daily autocorrelations and of the leverage correlation: two weeks.
pub const DAILY_LAGS: usize = 10;
/// Lags of the 5-minute autocorrelations: 50 minutes.
pub const LAGS_5M: usize = 10;
/// Lags of the 30-minute autocorrelation: half a session.
pub const LAGS_30M: usize = 5;
/// Bars of 5 minutes at each end of the session (and in its middle) that the U-shape ratios
/// compare: the first, midday and last half hour.
pub const U_EDGE_BARS: usize = 6;
/// Trade-size percentiles reported.
pub const SIZE_PERCENTILES: [f64; 4] = [10.0, 50.0, 90.0, 99.0];
/// Trading sessions a year, to annualise daily variance.
pub const SESSIONS_PER_YEAR: f64 = 252.0;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{symbol} is not a symbol of the stored load (it has {load})")]
    UnknownSymbol { symbol: Symbol, load: String },
}

pub type Result<T, E = StatsError> = std::result::Result<T, E>;

/// The report: the load it describes and one row per symbol.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StatsReport {
    /// The stored load's settings, as one line.
    #[schema(
        example = "300000000 trades, AAPL,MSFT,AMZN,GOOGL,META, 2024-01-01..2024-12-31, seed 42, generator v3"
    )]
    pub load: String,
    /// False while the load is still being written: the figures then cover what is stored.
    pub complete: bool,
    pub symbols: Vec<SymbolStats>,
}

/// One symbol's figures. Returns are log returns; daily ones run from one session's last
/// 1-minute close to the next's, intraday bars never span the overnight gap. A figure that is
/// undefined for what is stored (too few sessions, no variance) is null (empty in csv).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SymbolStats {
    #[schema(example = "AAPL")]
    pub symbol: String,
    /// Sessions with at least one trade.
    pub sessions: u64,
    pub trades: u64,
    /// Shares traded.
    pub volume: u64,
    /// This symbol's share of the whole load's share volume (every symbol, asked for or not).
    pub volume_share: Option<f64>,
    /// This symbol's share of the whole load's trades.
    pub trade_share: Option<f64>,
    /// Shares per trade.
    pub mean_size: Option<f64>,
    /// Annualised realised volatility of daily returns, `sqrt(252 · mean r²)`.
    pub realised_vol: Option<f64>,
    /// Excess kurtosis of 5-minute returns.
    pub kurtosis_5m: Option<f64>,
    /// Excess kurtosis of 30-minute returns.
    pub kurtosis_30m: Option<f64>,
    /// Excess kurtosis of daily returns.
    pub kurtosis_1d: Option<f64>,
    /// Excess kurtosis of 5-session returns (sums of 5 daily returns, not overlapping).
    pub kurtosis_5d: Option<f64>,
    /// Mean autocorrelation of 5-minute returns, lags 1-10.
    pub acf_5m: Option<f64>,
    /// Mean autocorrelation of absolute 5-minute returns, lags 1-10: intraday clustering.
    pub acf_abs_5m: Option<f64>,
    /// Mean autocorrelation of 30-minute returns, lags 1-5.
    pub acf_30m: Option<f64>,
    /// Mean autocorrelation of daily returns, lags 1-10.
    pub acf_1d: Option<f64>,
    /// Mean autocorrelation of absolute daily returns, lags 1-10: volatility clustering.
    pub acf_abs_1d: Option<f64>,
    /// Mean over lags 1-10 of corr(r[t], |r[t+k]|) of daily returns: negative is the leverage
    /// effect.
    pub leverage_1d: Option<f64>,
    /// corr(5-minute volume, |5-minute return|).
    pub volume_vol_5m: Option<f64>,
    /// corr(daily trades, |daily return|).
    pub volume_vol_1d: Option<f64>,
    /// Volume of the first 30 minutes over that of the midday 30 minutes, full sessions.
    pub u_open: Option<f64>,
    /// Volume of the last 30 minutes over that of the midday 30 minutes, full sessions.
    pub u_close: Option<f64>,
    /// Trade size (shares), 10th percentile, nearest rank.
    pub size_p10: Option<u32>,
    pub size_p50: Option<u32>,
    pub size_p90: Option<u32>,
    pub size_p99: Option<u32>,
    /// Share of trades below 100 shares.
    pub odd_lot_share: Option<f64>,
    /// Roll's (1984) spread estimate from consecutive trade-price changes, in cents.
    pub roll_spread_cents: Option<f64>,
    /// The same over the mean trade price, in basis points.
    pub roll_spread_bps: Option<f64>,
    /// Share of the symbol's volume traded in opening crosses.
    pub open_auction_share: Option<f64>,
    /// Share of the symbol's volume traded in closing crosses.
    pub close_auction_share: Option<f64>,
}

/// A finite value, or None: JSON's null and csv's empty cell.
fn defined(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The report over the stored load, for `symbols` (all of the load's, in its order, when
/// None). A symbol not in the load is an error, not an empty row: a typo should not pass for
/// an empty tape.
pub fn report(store: &dyn Store, symbols: Option<&[Symbol]>) -> Result<StatsReport> {
    let manifest = store.manifest()?;
    let load = &manifest.load;
    let asked: Vec<Symbol> = match symbols {
        None => load.symbols.clone(),
        Some(asked) => {
            if let Some(unknown) = asked.iter().find(|s| !load.symbols.contains(s)) {
                let names: Vec<&str> = load.symbols.iter().map(Symbol::as_str).collect();
                return Err(StatsError::UnknownSymbol {
                    symbol: unknown.clone(),
                    load: names.join(","),
                });
            }
            asked.to_vec()
        }
    };
    let sessions = calendar::sessions(load.start, load.end);
    let mut rows = on_workers(&asked, |symbol| symbol_stats(store, symbol, &sessions))?;
    // Shares are of the whole load, so a symbol's share does not depend on which others were
    // asked for: the symbols not asked for only have their volumes summed.
    let others: Vec<Symbol> = load
        .symbols
        .iter()
        .filter(|s| !asked.contains(s))
        .cloned()
        .collect();
    let other_totals = on_workers(&others, |symbol| totals(store, symbol, &sessions))?;
    let volumes: Vec<u64> = rows
        .iter()
        .map(|r| r.volume)
        .chain(other_totals.iter().map(|t| t.0))
        .collect();
    let trades: Vec<u64> = rows
        .iter()
        .map(|r| r.trades)
        .chain(other_totals.iter().map(|t| t.1))
        .collect();
    for ((row, volume), trade) in rows.iter_mut().zip(shares(&volumes)).zip(shares(&trades)) {
        row.volume_share = defined(volume);
        row.trade_share = defined(trade);
    }
    Ok(StatsReport {
        load: manifest.describe(),
        complete: manifest.complete,
        symbols: rows,
    })
}

/// `f` of each item on up to one worker thread per core, in the items' order; the first error
/// wins.
#[allow(
    clippy::indexing_slicing,
    reason = "`i` comes from `items.get(i)` succeeding, and `results` has one slot per item"
)]
fn on_workers<T: Send>(
    items: &[Symbol],
    f: impl Fn(&Symbol) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    let failed = result.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                    if failed {
                        // The others need not start: the report fails anyway.
                        next.store(items.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Calls `each(session, candles)` for every session of `sessions` with stored 1-minute
/// candles of `symbol`, streaming them from the store: one session's candles are held at a
/// time.
#[allow(
    clippy::indexing_slicing,
    reason = "`current` is checked against `sessions.len()` before each read, and `held` is non-empty only while it holds candles of `sessions[current]`"
)]
fn for_each_session(
    store: &dyn Store,
    symbol: &Symbol,
    sessions: &[Session],
    mut each: impl FnMut(&Session, &[Candle]),
) -> Result<()> {
    let (Some(first), Some(last)) = (sessions.first(), sessions.last()) else {
        return Ok(());
    };
    let mut current = 0;
    let mut held: Vec<Candle> = Vec::with_capacity(400);
    store.visit_minute_candles(symbol, first.open, last.close, &mut |slice| {
        for c in slice {
            while current < sessions.len() && sessions[current].close <= c.time {
                if !held.is_empty() {
                    each(&sessions[current], &held);
                    held.clear();
                }
                current += 1;
            }
            if current < sessions.len() && sessions[current].contains(c.time) {
                held.push(*c);
            }
        }
    })?;
    if !held.is_empty() {
        each(&sessions[current], &held);
    }
    Ok(())
}

/// A symbol's share volume and trades, from its candles.
fn totals(store: &dyn Store, symbol: &Symbol, sessions: &[Session]) -> Result<(u64, u64)> {
    let (mut volume, mut trades) = (0, 0);
    for_each_session(store, symbol, sessions, |_, candles| {
        for c in candles {
            volume += c.volume;
            trades += c.trades;
        }
    })?;
    Ok((volume, trades))
}

/// Everything the candles give, collected per session.
#[derive(Default)]
struct Candles {
    /// Sessions with trades, in order.
    sessions: Vec<Session>,
    closes: Vec<f64>,
    daily_trades: Vec<f64>,
    r5: Vec<f64>,
    v5: Vec<f64>,
    r30: Vec<f64>,
    /// 5-minute bars, for the U shape.
    bars: Vec<SessionBars>,
    volume: u64,
    trades: u64,
}

#[allow(
    clippy::indexing_slicing,
    reason = "the trade columns have equal lengths, and a first or last trade exists before its amount is read; `p` has one entry per listed percentile"
)]
fn symbol_stats(store: &dyn Store, symbol: &Symbol, sessions: &[Session]) -> Result<SymbolStats> {
    let mut c = Candles::default();
    for_each_session(store, symbol, sessions, |session, minutes| {
        let (Some(b5), Some(b30)) = (
            SessionBars::from_minutes(minutes, session, 5),
            SessionBars::from_minutes(minutes, session, 30),
        ) else {
            return;
        };
        let trades: u64 = minutes.iter().map(|m| m.trades).sum();
        c.sessions.push(*session);
        c.closes.push(b5.close());
        c.daily_trades.push(trades as f64);
        c.r5.extend(b5.returns());
        c.v5.extend(b5.volumes.iter().map(|v| *v as f64));
        c.r30.extend(b30.returns());
        c.volume += minutes.iter().map(|m| m.volume).sum::<u64>();
        c.trades += trades;
        c.bars.push(b5);
    })?;

    let (mut sizes, mut roll, mut price_sum) =
        (SizeHistogram::default(), RollSpread::default(), 0i128);
    let (mut open_auctions, mut close_auctions) = (0u64, 0u64);
    for session in &c.sessions {
        let t = store.trades(symbol, session.open, session.close, None)?;
        // The crosses are told by their instants. Sizes and the spread describe continuous
        // trading: a cross is one block at the anchor price, neither a print at the bid or
        // ask nor a draw from the size distribution.
        let mut from = 0;
        let mut to = t.len();
        if t.times.first() == Some(&opening_cross_time(session)) {
            open_auctions += u64::from(t.amounts[0]);
            from = 1;
        }
        if to > from && t.times.last() == Some(&closing_cross_time(session)) {
            close_auctions += u64::from(t.amounts[to - 1]);
            to -= 1;
        }
        sizes.push(&t.amounts[from..to]);
        roll.push_run(&t.prices[from..to]);
        price_sum += t.prices[from..to].iter().map(|p| *p as i128).sum::<i128>();
    }

    let daily = log_returns(&c.closes);
    let (u_open, u_close) = u_shape_ratios(&c.bars, U_EDGE_BARS);
    let spread = roll.spread();
    let mean_price = price_sum as f64 / sizes.len() as f64;
    let p = sizes.percentiles(&SIZE_PERCENTILES);
    let size = |i: usize| (!sizes.is_empty()).then_some(p[i]);
    let kurtosis = |r: &[f64]| defined(moments(r).excess_kurtosis);
    Ok(SymbolStats {
        symbol: symbol.to_string(),
        sessions: c.sessions.len() as u64,
        trades: c.trades,
        volume: c.volume,
        volume_share: None,
        trade_share: None,
        mean_size: defined(c.volume as f64 / c.trades as f64),
        realised_vol: defined(realised_vol(&daily, SESSIONS_PER_YEAR)),
        kurtosis_5m: kurtosis(&c.r5),
        kurtosis_30m: kurtosis(&c.r30),
        kurtosis_1d: kurtosis(&daily),
        kurtosis_5d: kurtosis(&aggregate(&daily, 5)),
        acf_5m: defined(mean_autocorrelation(&c.r5, LAGS_5M)),
        acf_abs_5m: defined(mean_autocorrelation(&absolute(&c.r5), LAGS_5M)),
        acf_30m: defined(mean_autocorrelation(&c.r30, LAGS_30M)),
        acf_1d: defined(mean_autocorrelation(&daily, DAILY_LAGS)),
        acf_abs_1d: defined(mean_autocorrelation(&absolute(&daily), DAILY_LAGS)),
        leverage_1d: defined(leverage(&daily, DAILY_LAGS)),
        volume_vol_5m: defined(correlation(&c.v5, &absolute(&c.r5))),
        // Return t runs from close t−1 to close t: it pairs with the trades of session t.
        volume_vol_1d: defined(correlation(
            c.daily_trades.get(1..).unwrap_or_default(),
            &absolute(&daily),
        )),
        u_open: defined(u_open),
        u_close: defined(u_close),
        size_p10: size(0),
        size_p50: size(1),
        size_p90: size(2),
        size_p99: size(3),
        odd_lot_share: defined(sizes.odd_lot_share()),
        roll_spread_cents: defined(spread / PRICE_UNITS_PER_CENT as f64),
        roll_spread_bps: defined(spread / mean_price * 1e4),
        open_auction_share: defined(open_auctions as f64 / c.volume as f64),
        close_auction_share: defined(close_auctions as f64 / c.volume as f64),
    })
}

/// A cell of the csv and table outputs.
enum Cell {
    Text(String),
    Count(u64),
    /// A real number, and the decimals the table shows it with.
    Real(Option<f64>, usize),
}

impl Cell {
    fn csv(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Real(x, _) => x.map(|x| x.to_string()).unwrap_or_default(),
        }
    }

    fn table(&self) -> String {
        match self {
            Cell::Real(Some(x), decimals) => format!("{x:.decimals$}"),
            Cell::Real(None, _) => "-".to_string(),
            other => other.csv(),
        }
    }
}

impl SymbolStats {
    /// Each field, named as in JSON, with a short description for the table.
    fn cells(&self) -> Vec<(&'static str, &'static str, Cell)> {
        let real = |x: Option<f64>, decimals| Cell::Real(x, decimals);
        let size = |x: Option<u32>| real(x.map(f64::from), 0);
        vec![
            ("symbol", "", Cell::Text(self.symbol.clone())),
            (
                "sessions",
                "sessions with trades",
                Cell::Count(self.sessions),
            ),
            ("trades", "trades", Cell::Count(self.trades)),
            ("volume", "shares traded", Cell::Count(self.volume)),
            (
                "volume_share",
                "share of the load's volume",
                real(self.volume_share, 4),
            ),
            (
                "trade_share",
                "share of the load's trades",
                real(self.trade_share, 4),
            ),
            ("mean_size", "shares per trade", real(self.mean_size, 1)),
            (
                "realised_vol",
                "annualised volatility, daily returns",
                real(self.realised_vol, 3),
            ),
            (
                "kurtosis_5m",
                "excess kurtosis, 5-minute returns",
                real(self.kurtosis_5m, 2),
            ),
            (
                "kurtosis_30m",
                "excess kurtosis, 30-minute returns",
                real(self.kurtosis_30m, 2),
            ),
            (
                "kurtosis_1d",
                "excess kurtosis, daily returns",
                real(self.kurtosis_1d, 2),
            ),
            (
                "kurtosis_5d",
                "excess kurtosis, 5-day returns",
                real(self.kurtosis_5d, 2),
            ),
            ("acf_5m", "acf(r) 5-minute, lags 1-10", real(self.acf_5m, 3)),
            (
                "acf_abs_5m",
                "acf(|r|) 5-minute, lags 1-10",
                real(self.acf_abs_5m, 3),
            ),
            (
                "acf_30m",
                "acf(r) 30-minute, lags 1-5",
                real(self.acf_30m, 3),
            ),
            ("acf_1d", "acf(r) daily, lags 1-10", real(self.acf_1d, 3)),
            (
                "acf_abs_1d",
                "acf(|r|) daily, lags 1-10",
                real(self.acf_abs_1d, 3),
            ),
            (
                "leverage_1d",
                "corr(r[t], |r[t+k]|) daily, k 1-10",
                real(self.leverage_1d, 3),
            ),
            (
                "volume_vol_5m",
                "corr(volume, |r|) 5-minute",
                real(self.volume_vol_5m, 2),
            ),
            (
                "volume_vol_1d",
                "corr(trades, |r|) daily",
                real(self.volume_vol_1d, 2),
            ),
            (
                "u_open",
                "volume first 30 min / midday 30 min",
                real(self.u_open, 2),
            ),
            (
                "u_close",
                "volume last 30 min / midday 30 min",
                real(self.u_close, 2),
            ),
            (
                "size_p10",
                "trade size, 10th percentile",
                size(self.size_p10),
            ),
            ("size_p50", "trade size, median", size(self.size_p50)),
            (
                "size_p90",
                "trade size, 90th percentile",
                size(self.size_p90),
            ),
            (
                "size_p99",
                "trade size, 99th percentile",
                size(self.size_p99),
            ),
            (
                "odd_lot_share",
                "share of trades under 100 shares",
                real(self.odd_lot_share, 3),
            ),
            (
                "roll_spread_cents",
                "Roll (1984) spread, cents",
                real(self.roll_spread_cents, 3),
            ),
            (
                "roll_spread_bps",
                "Roll spread over mean price, bps",
                real(self.roll_spread_bps, 3),
            ),
            (
                "open_auction_share",
                "share of volume in opening crosses",
                real(self.open_auction_share, 4),
            ),
            (
                "close_auction_share",
                "share of volume in closing crosses",
                real(self.close_auction_share, 4),
            ),
        ]
    }
}

/// The csv header: the JSON fields of a row, in order.
pub fn csv_header() -> String {
    let names: Vec<&str> = empty_row().cells().iter().map(|(n, _, _)| *n).collect();
    names.join(",")
}

fn empty_row() -> SymbolStats {
    SymbolStats {
        symbol: String::new(),
        sessions: 0,
        trades: 0,
        volume: 0,
        volume_share: None,
        trade_share: None,
        mean_size: None,
        realised_vol: None,
        kurtosis_5m: None,
        kurtosis_30m: None,
        kurtosis_1d: None,
        kurtosis_5d: None,
        acf_5m: None,
        acf_abs_5m: None,
        acf_30m: None,
        acf_1d: None,
        acf_abs_1d: None,
        leverage_1d: None,
        volume_vol_5m: None,
        volume_vol_1d: None,
        u_open: None,
        u_close: None,
        size_p10: None,
        size_p50: None,
        size_p90: None,
        size_p99: None,
        odd_lot_share: None,
        roll_spread_cents: None,
        roll_spread_bps: None,
        open_auction_share: None,
        close_auction_share: None,
    }
}

impl StatsReport {
    /// csv: one row per symbol under [`csv_header`], reals in full precision. JSON: the
    /// report as the API answers it. Table: one row per figure, one column per symbol, with
    /// a description, rounded for reading.
    #[allow(
        clippy::indexing_slicing,
        reason = "every symbol's `cells()` lists the same figures as the empty row the indices come from"
    )]
    pub fn write(&self, out: &mut impl std::io::Write, format: Format) -> std::io::Result<()> {
        match format {
            Format::Csv => {
                writeln!(out, "{}", csv_header())?;
                for row in &self.symbols {
                    let cells: Vec<String> = row.cells().iter().map(|(_, _, c)| c.csv()).collect();
                    writeln!(out, "{}", cells.join(","))?;
                }
            }
            Format::Json => {
                serde_json::to_writer(&mut *out, self)?;
                writeln!(out)?;
            }
            Format::Table => {
                writeln!(out, "{}", self.load)?;
                if !self.complete {
                    writeln!(out, "(incomplete: the figures cover what is stored so far)")?;
                }
                let columns: Vec<Vec<(&str, &str, Cell)>> =
                    self.symbols.iter().map(SymbolStats::cells).collect();
                let names = empty_row().cells();
                let mut header = vec!["figure"];
                header.extend(self.symbols.iter().map(|s| s.symbol.as_str()));
                header.push("what");
                let body: Vec<Vec<String>> = names
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, (name, what, _))| {
                        let mut line = vec![name.to_string()];
                        line.extend(columns.iter().map(|c| c[i].2.table()));
                        line.push(what.to_string());
                        line
                    })
                    .collect();
                format::write_table(out, &header, &body)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_the_json_fields_in_order() {
        let json = serde_json::to_string(&empty_row()).unwrap();
        let mut at = 0;
        for name in csv_header().split(',') {
            let key = format!("\"{name}\":");
            let found = json[at..]
                .find(&key)
                .unwrap_or_else(|| panic!("{name} in {json}"));
            at += found + key.len();
        }
        assert_eq!(csv_header().split(',').count(), json.matches("\":").count());
    }
}
