//! The generator's properties, each over many seeds or chunks.

use super::*;

fn small(trades: u64) -> MarketPlan {
    MarketPlan::new(GeneratorConfig {
        trades,
        start: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
        end: NaiveDate::from_ymd_opt(2024, 3, 31).unwrap(),
        ..GeneratorConfig::default()
    })
    .unwrap()
}

#[test]
fn apportion_is_exact() {
    let mut out = Vec::new();
    for total in [0, 1, 7, 1_000_003, 300_000_000] {
        apportion(total, &[0.1, 3.0, 0.0, 2.5, 1e-9], &mut out);
        assert_eq!(out.iter().sum::<u64>(), total);
    }
}

#[test]
fn plan_counts_sum_to_exactly_n_and_ids_are_contiguous() {
    for n in [1, 999, 1_234_567] {
        let plan = small(n);
        let mut total = 0;
        for sp in plan.symbols() {
            let mut expected_id = 0;
            for c in &sp.chunks {
                assert_eq!(c.first_trade_id, expected_id);
                expected_id += c.count;
            }
            total += expected_id;
        }
        assert_eq!(total, n);
    }
}

#[test]
fn config_is_validated() {
    let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap();
    let bad = |c: GeneratorConfig| MarketPlan::new(c).unwrap_err();
    let base = GeneratorConfig::default();
    assert_eq!(
        bad(GeneratorConfig {
            trades: 0,
            ..base.clone()
        }),
        GeneratorError::Trades(0)
    );
    assert_eq!(
        bad(GeneratorConfig {
            symbols: vec![],
            ..base.clone()
        }),
        GeneratorError::NoSymbols
    );
    let aapl = Symbol::new("AAPL").unwrap();
    assert_eq!(
        bad(GeneratorConfig {
            symbols: vec![aapl.clone(), aapl.clone()],
            ..base.clone()
        }),
        GeneratorError::DuplicateSymbol(aapl)
    );
    assert!(matches!(
        bad(GeneratorConfig {
            start: d(3, 2),
            end: d(3, 1),
            ..base.clone()
        }),
        GeneratorError::Range { .. }
    ));
    // A weekend holds no session.
    assert!(matches!(
        bad(GeneratorConfig {
            start: d(3, 2),
            end: d(3, 3),
            ..base
        }),
        GeneratorError::NoSessions { .. }
    ));
}

#[test]
fn chunks_are_in_session_strictly_increasing_and_exact() {
    let plan = small(200_000);
    let mut out = TradeColumns::default();
    for (si, sp) in plan.symbols().iter().enumerate() {
        for (di, session) in plan.sessions().iter().enumerate() {
            out.clear();
            plan.generate(si, di, &mut out);
            let c = plan.chunk(si, di);
            assert_eq!(out.len() as u64, c.count, "{} {}", sp.symbol, session.date);
            assert!(out.times.windows(2).all(|w| w[0] < w[1]));
            assert!(out.times.iter().all(|t| session.contains(*t)));
            assert!(
                out.trade_ids
                    .iter()
                    .copied()
                    .eq(c.first_trade_id..c.first_trade_id + c.count)
            );
            assert!(out.prices.iter().all(|p| *p > 0));
            assert!(out.amounts.iter().all(|a| *a >= 1));
        }
    }
}

#[test]
fn chunks_are_deterministic_and_independent_of_order() {
    let plan = small(100_000);
    let mut forward = Vec::new();
    for si in 0..plan.symbols().len() {
        for di in 0..plan.sessions().len() {
            let mut out = TradeColumns::default();
            plan.generate(si, di, &mut out);
            forward.push(out);
        }
    }
    // Backwards, with a plan built anew: the same trades.
    let again = small(100_000);
    let n = again.sessions().len();
    for si in (0..again.symbols().len()).rev() {
        for di in (0..n).rev() {
            let mut out = TradeColumns::default();
            again.generate(si, di, &mut out);
            assert_eq!(out, forward[si * n + di]);
        }
    }
}

#[test]
fn seeds_change_the_tape() {
    let a = small(10_000);
    let b = MarketPlan::new(GeneratorConfig {
        seed: 43,
        ..a.config().clone()
    })
    .unwrap();
    let (mut x, mut y) = (TradeColumns::default(), TradeColumns::default());
    a.generate(0, 0, &mut x);
    b.generate(0, 0, &mut y);
    assert_ne!(x.prices, y.prices);
}

#[test]
fn prices_follow_the_daily_anchors() {
    let plan = small(500_000);
    for (si, sp) in plan.symbols().iter().enumerate() {
        for di in [0, 5, 10] {
            let mut out = TradeColumns::default();
            plan.generate(si, di, &mut out);
            let c = plan.chunk(si, di);
            let first = out.prices[0] as f64 / 100.0;
            let last = *out.prices.last().unwrap() as f64 / 100.0;
            // Within a few spreads and the first/last minute's drift of the anchors.
            assert!(
                (first / c.open - 1.0).abs() < 0.01,
                "{} open {first} vs {}",
                sp.symbol,
                c.open
            );
            assert!(
                (last / c.close - 1.0).abs() < 0.01,
                "{} close {last} vs {}",
                sp.symbol,
                c.close
            );
        }
        // Start near the profile's price.
        let open = sp.chunks[0].open;
        assert!((open / sp.profile.start_price - 1.0).abs() < 0.5);
    }
}

#[test]
fn distributions_look_like_a_market() {
    let plan = small(2_000_000);
    let mut out = TradeColumns::default();
    for di in 0..plan.sessions().len() {
        plan.generate(0, di, &mut out);
    }
    let n = out.len() as f64;
    let buys = out.buys.iter().filter(|b| **b).count() as f64 / n;
    assert!((0.4..0.6).contains(&buys), "buy share {buys}");
    let same = out.buys.windows(2).filter(|w| w[0] == w[1]).count() as f64 / n;
    assert!((0.6..0.7).contains(&same), "side persistence {same}");

    // U shape: over the month, the first and last half hours are busier than midday.
    let count_in = |from: i64, to: i64| {
        let windows: Vec<_> = plan
            .sessions()
            .iter()
            .filter(|s| !s.early_close)
            .map(|s| s.open + from * NANOS_PER_MINUTE..s.open + to * NANOS_PER_MINUTE)
            .collect();
        out.times
            .iter()
            .filter(|t| windows.iter().any(|w| w.contains(t)))
            .count()
    };
    let (first, midday, last) = (count_in(0, 30), count_in(180, 210), count_in(360, 390));
    assert!(
        first > 2 * midday && last > midday * 3 / 2,
        "{first} {midday} {last}"
    );

    // Bid/ask bounce: consecutive price changes are negatively autocorrelated (Roll 1984).
    let d: Vec<f64> = out
        .prices
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64)
        .collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let cov: f64 = d.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum();
    assert!(cov < 0.0);
}
