//! Generator threads: each takes (symbol, session) chunks in turn and encodes their trades and
//! 1-minute candles as line protocol into batches bounded by lines and by bytes.

use super::super::{BATCH_ROWS, Progress};
use super::tracker::Tracker;
use crate::candles;
use crate::generator::MarketPlan;
use crate::model::TradeColumns;
use crate::store::influx::line_protocol::{self, SeriesKeys};
use crate::store::influx::write::{Batch, WriteOptions};

/// A batch and what it carries: trades (for progress) and chunks (for the tracker).
pub(super) struct Pending {
    pub batch: Batch,
    pub trades: u64,
    pub chunks: Vec<u32>,
}

/// Encodes chunks into batches and hands them to the writers.
pub(super) struct Producer<'a> {
    plan: &'a MarketPlan,
    options: &'a WriteOptions,
    tracker: &'a Tracker,
    sender: tokio::sync::mpsc::Sender<Pending>,
    buffer: Vec<u8>,
    lines: usize,
    trades: u64,
    chunks: Vec<u32>,
}

impl<'a> Producer<'a> {
    pub fn new(
        plan: &'a MarketPlan,
        options: &'a WriteOptions,
        tracker: &'a Tracker,
        sender: tokio::sync::mpsc::Sender<Pending>,
    ) -> Self {
        Self {
            plan,
            options,
            tracker,
            sender,
            buffer: Vec::with_capacity(options.batch_bytes + 4096),
            lines: 0,
            trades: 0,
            chunks: Vec::new(),
        }
    }

    /// Sends what is buffered. False when the writers have stopped (on an error the caller
    /// reports).
    pub fn flush(&mut self) -> bool {
        if self.lines == 0 {
            return true;
        }
        let raw = std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(self.options.batch_bytes + 4096),
        );
        let pending = Pending {
            batch: Batch::new(raw, self.options.gzip),
            trades: self.trades,
            chunks: std::mem::take(&mut self.chunks),
        };
        self.lines = 0;
        self.trades = 0;
        self.sender.blocking_send(pending).is_ok()
    }

    fn line_added(&mut self, chunk: u32) -> bool {
        self.lines += 1;
        if self.chunks.last() != Some(&chunk) {
            // Counted as pending from its first line, so the chunk cannot settle while some of
            // its lines still wait in this buffer.
            self.tracker.batch_created(chunk);
            self.chunks.push(chunk);
        }
        if self.lines >= self.options.batch_lines
            || self.buffer.len() + 512 >= self.options.batch_bytes
        {
            return self.flush();
        }
        true
    }

    /// Encodes chunk `id` (`symbol` on `session`). False when the load stops.
    pub fn chunk(
        &mut self,
        id: u32,
        symbol: usize,
        session: usize,
        keys: &SeriesKeys,
        progress: &Progress,
    ) -> bool {
        let mut stream = self.plan.chunk_trades(symbol, session);
        let mut trades = TradeColumns::with_capacity(BATCH_ROWS + BATCH_ROWS / 4);
        loop {
            if progress.cancelled() {
                return false;
            }
            trades.clear();
            if !stream.fill(BATCH_ROWS, &mut trades) {
                break;
            }
            for i in 0..trades.len() {
                line_protocol::push_trade(
                    &mut self.buffer,
                    keys,
                    &trades,
                    i,
                    self.options.precision,
                );
                self.trades += 1;
                if !self.line_added(id) {
                    return false;
                }
            }
            for c in candles::minute_candles(&trades) {
                line_protocol::push_candle(&mut self.buffer, keys, &c, self.options.precision);
                if !self.line_added(id) {
                    return false;
                }
            }
        }
        self.tracker.chunk_produced(id);
        true
    }
}
