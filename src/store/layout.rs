//! How a load is laid out: partitions of one month of a group of symbols, and where each
//! partition's files live. Both loads plan with [`plan`]; the InfluxDB load lists the same
//! partitions in its manifest, so every store describes a load the same way.
//!
//! ```text
//! <data-dir>/trades/month=2024-01/group=0000.parquet      trades, sorted by (symbol, time)
//! <data-dir>/candles_1m/month=2024-01/group=0000.parquet  UTC 1-minute candles, same order
//! ```
//!
//! Groups hold as many symbols as it takes to reach about [`TARGET_ROWS_PER_FILE`] trades a
//! month, so 5 busy symbols get a file each and 500 quiet ones share a handful of files
//! instead of flooding the directory.

use std::ops::Range;

use chrono::{DateTime, Datelike};

use super::Partition;
use crate::generator::MarketPlan;
use crate::model::Nanos;

pub const TRADES_DIR: &str = "trades";
pub const CANDLES_DIR: &str = "candles_1m";
/// Aim for files of about this many trades (roughly 20 MB).
pub const TARGET_ROWS_PER_FILE: u64 = 4_000_000;

/// The files of one partition, relative to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFiles {
    pub trades: String,
    pub candles: String,
}

impl PartitionFiles {
    pub fn of(partition: &Partition) -> Self {
        let name = format!(
            "month={}/group={:04}.parquet",
            partition.month, partition.group
        );
        Self {
            trades: format!("{TRADES_DIR}/{name}"),
            candles: format!("{CANDLES_DIR}/{name}"),
        }
    }
}

/// A partition to write: which symbols (indices into the plan) over which sessions.
#[derive(Debug, Clone)]
pub struct PlannedPartition {
    pub partition: Partition,
    pub symbols: Vec<usize>,
    pub sessions: Range<usize>,
}

/// Groups symbols so a file holds about [`TARGET_ROWS_PER_FILE`] trades a month.
fn symbols_per_group(plan: &MarketPlan, months: usize) -> usize {
    let n = plan.symbols().len();
    let per_symbol_month = plan.config().trades / (n * months.max(1)) as u64;
    ((TARGET_ROWS_PER_FILE / per_symbol_month.max(1)) as usize).clamp(1, n)
}

/// Every partition of `plan`, by month, then group; symbols sorted within and across groups.
#[allow(
    clippy::indexing_slicing,
    reason = "symbol indices are `0..symbols().len()` and session ranges are runs of `sessions`' own indices"
)]
pub fn plan(plan: &MarketPlan) -> Vec<PlannedPartition> {
    let sessions = plan.sessions();
    let mut months: Vec<(String, Range<usize>)> = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let month = month_of(s.open);
        match months.last_mut() {
            Some((m, range)) if *m == month => range.end = i + 1,
            _ => months.push((month, i..i + 1)),
        }
    }
    let mut order: Vec<usize> = (0..plan.symbols().len()).collect();
    order.sort_by(|a, b| plan.symbols()[*a].symbol.cmp(&plan.symbols()[*b].symbol));
    let per_group = symbols_per_group(plan, months.len());
    let mut out = Vec::new();
    for (month, range) in months {
        for (group, members) in order.chunks(per_group).enumerate() {
            let trades = members
                .iter()
                .flat_map(|s| range.clone().map(move |d| (*s, d)))
                .map(|(s, d)| plan.chunk(s, d).count)
                .sum();
            out.push(PlannedPartition {
                partition: Partition {
                    month: month.clone(),
                    group: group as u32,
                    symbols: members
                        .iter()
                        .map(|s| plan.symbols()[*s].symbol.clone())
                        .collect(),
                    start: sessions[range.start].open,
                    end: sessions[range.end - 1].close,
                    trades,
                },
                symbols: members.to_vec(),
                sessions: range.clone(),
            });
        }
    }
    out
}

/// The month (`YYYY-MM`) an instant falls in, in UTC.
pub fn month_of(t: Nanos) -> String {
    let d = DateTime::from_timestamp_nanos(t);
    format!("{:04}-{:02}", d.year(), d.month())
}
