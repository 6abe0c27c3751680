//! The generator's properties, each over many seeds or chunks.

use super::*;
use crate::model::PRICE_UNITS_PER_DOLLAR;

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
fn sessions_open_and_close_with_crosses_at_the_anchors() {
    let plan = small(200_000);
    let mut out = TradeColumns::default();
    for (si, sp) in plan.symbols().iter().enumerate() {
        for (di, session) in plan.sessions().iter().enumerate() {
            out.clear();
            plan.generate(si, di, &mut out);
            let c = plan.chunk(si, di);
            let at = |what: &str, i: usize, time: Nanos, anchor: f64, from: f64| {
                assert_eq!(out.times[i], time, "{what} {} {}", sp.symbol, session.date);
                assert_eq!(
                    out.prices[i],
                    libm::round(anchor * 100.0) as i64 * PRICE_UNITS_PER_CENT
                );
                assert_eq!(out.buys[i], anchor >= from);
            };
            let last = out.len() - 1;
            let anchors = &plan.chunk_trades(si, di).anchors;
            let last_minute = anchors[anchors.len() - 2];
            at(
                "open",
                0,
                opening_cross_time(session),
                c.open,
                c.previous_close,
            );
            at(
                "close",
                last,
                closing_cross_time(session),
                c.close,
                last_minute,
            );
            // Continuous trading never takes the crosses' instants: they identify the crosses.
            assert!(out.times[1] > session.open);
            assert!(out.times[last - 1] < closing_cross_time(session));
            // A cross is a block, not a continuous print, even on a quiet day of a few hundred
            // trades where the opening cross is only several mean trades.
            let continuous: u64 = out.amounts[1..last].iter().map(|a| *a as u64).sum();
            let mean = continuous as f64 / (last - 1) as f64;
            assert!(out.amounts[0] as f64 > 3.0 * mean && out.amounts[last] as f64 > 3.0 * mean);
        }
    }
    // A chunk of one trade is its closing cross, of none is empty: counts stay exact.
    let tiny = small(1);
    let (si, di) = (0..tiny.symbols().len())
        .flat_map(|s| (0..tiny.sessions().len()).map(move |d| (s, d)))
        .find(|(s, d)| tiny.chunk(*s, *d).count == 1)
        .unwrap();
    out.clear();
    tiny.generate(si, di, &mut out);
    assert_eq!(out.times, [closing_cross_time(&tiny.sessions()[di])]);
}

#[test]
fn crosses_take_2024s_share_of_the_days_volume() {
    const SEEDS: u64 = 16;
    let (mut open_share, mut close_share, mut days) = (0.0, 0.0, 0);
    let mut out = TradeColumns::default();
    for seed in 0..SEEDS {
        let plan = MarketPlan::new(GeneratorConfig {
            trades: 400_000,
            start: NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
            end: NaiveDate::from_ymd_opt(2024, 5, 31).unwrap(),
            seed,
            ..GeneratorConfig::default()
        })
        .unwrap();
        for si in 0..plan.symbols().len() {
            for di in 0..plan.sessions().len() {
                out.clear();
                plan.generate(si, di, &mut out);
                let volume: u64 = out.amounts.iter().map(|a| *a as u64).sum();
                open_share += out.amounts[0] as f64 / volume as f64;
                close_share += out.amounts[out.len() - 1] as f64 / volume as f64;
                days += 1;
            }
        }
    }
    let (open, close) = (open_share / days as f64, close_share / days as f64);
    println!("auction shares over {SEEDS} seeds: opening {open:.4}, closing {close:.4}");
    assert!((0.01..0.02).contains(&open), "opening cross share {open}");
    assert!((0.07..0.09).contains(&close), "closing cross share {close}");
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
            let first = out.prices[0] as f64 / PRICE_UNITS_PER_DOLLAR as f64;
            let last = *out.prices.last().unwrap() as f64 / PRICE_UNITS_PER_DOLLAR as f64;
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

    // U shape: over the month, the first and last half hours are busier than midday (by how
    // much, over more sessions: intraday_bars_show_the_stylized_facts).
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
    assert!(first > midday && last > midday, "{first} {midday} {last}");

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

// ---- The model's documented properties, over many seeds (docs/GENERATOR.md quotes these
// tests' output: run them with `--nocapture`). ----

use crate::stats;

/// A full 2024 plan of the default symbols for `seed`; trades only set the chunk counts.
fn year(seed: u64, trades: u64) -> MarketPlan {
    MarketPlan::new(GeneratorConfig {
        trades,
        seed,
        ..GeneratorConfig::default()
    })
    .unwrap()
}

/// Close-to-close daily log returns of a symbol's anchors, the first from its start price.
fn daily_returns(sp: &SymbolPlan) -> Vec<f64> {
    let closes: Vec<f64> = std::iter::once(sp.profile.start_price)
        .chain(sp.chunks.iter().map(|c| c.close))
        .collect();
    stats::log_returns(&closes)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[test]
fn daily_volatility_matches_the_profiles_and_prices_are_martingales() {
    const SEEDS: u64 = 500;
    let plans: Vec<MarketPlan> = (0..SEEDS).map(|seed| year(seed, 1_000_000)).collect();
    for (s, sp) in plans[0].symbols().iter().enumerate() {
        let per_seed: Vec<Vec<f64>> = plans
            .iter()
            .map(|p| daily_returns(&p.symbols()[s]))
            .collect();
        let vols: Vec<f64> = per_seed
            .iter()
            .map(|r| stats::realised_vol(r, 252.0))
            .collect();
        let vol = mean(&vols);
        let target = sp.profile.annual_vol;
        // Martingale: the mean daily log return is −σ²/2, within two standard errors.
        let pooled: Vec<f64> = per_seed.concat();
        let m = stats::moments(&pooled);
        let se = (m.variance / m.n as f64).sqrt();
        let drift = -target * target / 252.0 / 2.0;
        let pooled_vol = stats::realised_vol(&pooled, 252.0);
        println!(
            "{}: realised vol {vol:.3} (pooled {pooled_vol:.3}, profile {target}), mean log return {:.2e} vs −σ²/2 = {drift:.2e}, se {se:.1e}",
            sp.symbol, m.mean
        );
        assert!((vol / target - 1.0).abs() < 0.1, "{} vol {vol}", sp.symbol);
        // Pooled over every seed, the mean square return is the profile's: the variance
        // budget adds up (the per-seed mean above sits lower, being a mean of square roots).
        assert!(
            (pooled_vol / target - 1.0).abs() < 0.03,
            "{} pooled vol {pooled_vol}",
            sp.symbol
        );
        assert!(
            (m.mean - drift).abs() < 2.0 * se,
            "{} drift {}",
            sp.symbol,
            m.mean
        );
    }
}

#[test]
fn daily_returns_show_the_stylized_facts() {
    const SEEDS: u64 = 64;
    let plans: Vec<MarketPlan> = (0..SEEDS).map(|seed| year(seed, 1_000_000)).collect();
    for (s, sp) in plans[0].symbols().iter().enumerate() {
        let (mut kurt, mut weekly, mut acf, mut acf_abs, mut lev, mut vv) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for p in &plans {
            let sym = &p.symbols()[s];
            let r = daily_returns(sym);
            kurt.push(stats::moments(&r).excess_kurtosis);
            weekly.push(stats::moments(&stats::aggregate(&r, 5)).excess_kurtosis);
            acf.push(stats::mean_autocorrelation(&r, 10));
            acf_abs.push(stats::mean_autocorrelation(&stats::absolute(&r), 10));
            lev.push(stats::leverage(&r, 10));
            let counts: Vec<f64> = sym.chunks.iter().map(|c| c.count as f64).collect();
            vv.push(stats::correlation(&counts, &stats::absolute(&r)));
        }
        let (kurt, weekly, acf, acf_abs, lev, vv) = (
            mean(&kurt),
            mean(&weekly),
            mean(&acf),
            mean(&acf_abs),
            mean(&lev),
            mean(&vv),
        );
        println!(
            "{}: daily excess kurtosis {kurt:.2}, weekly {weekly:.2}, acf(r) {acf:.3}, acf(|r|) {acf_abs:.3}, leverage {lev:.3}, corr(volume, |r|) {vv:.2}",
            sp.symbol
        );
        assert!(kurt >= 3.0, "{} heavy tails: {kurt}", sp.symbol);
        assert!(weekly < kurt, "{} aggregational Gaussianity", sp.symbol);
        assert!(
            acf.abs() < 0.02,
            "{} linear autocorrelation {acf}",
            sp.symbol
        );
        assert!(
            acf_abs > 0.08,
            "{} volatility clustering {acf_abs}",
            sp.symbol
        );
        assert!(lev < -0.04, "{} leverage {lev}", sp.symbol);
        assert!(vv > 0.3, "{} volume-volatility {vv}", sp.symbol);
    }
}

/// Per seed and symbol, the 5- and 30-minute bars of three months (Q1 2024) of AAPL and META.
struct Intraday {
    r5: Vec<f64>,
    v5: Vec<f64>,
    r30: Vec<f64>,
    bars: Vec<stats::SessionBars>,
}

#[test]
fn intraday_bars_show_the_stylized_facts() {
    const SEEDS: u64 = 8;
    let symbols: Vec<Symbol> = ["AAPL", "META"]
        .iter()
        .map(|s| Symbol::new(s).unwrap())
        .collect();
    // [symbol][seed]
    let mut runs: Vec<Vec<Intraday>> = symbols.iter().map(|_| Vec::new()).collect();
    for seed in 0..SEEDS {
        let plan = MarketPlan::new(GeneratorConfig {
            trades: 1_000_000,
            symbols: symbols.clone(),
            start: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            end: NaiveDate::from_ymd_opt(2024, 3, 31).unwrap(),
            seed,
        })
        .unwrap();
        let mut trades = TradeColumns::default();
        for (s, runs) in runs.iter_mut().enumerate() {
            let mut run = Intraday {
                r5: vec![],
                v5: vec![],
                r30: vec![],
                bars: vec![],
            };
            for (d, session) in plan.sessions().iter().enumerate() {
                trades.clear();
                plan.generate(s, d, &mut trades);
                let minutes = crate::candles::minute_candles(&trades);
                if let Some(b) = stats::SessionBars::from_minutes(&minutes, session, 5) {
                    run.r5.extend(b.returns());
                    run.v5.extend(b.volumes.iter().map(|v| *v as f64));
                    run.bars.push(b);
                }
                if let Some(b) = stats::SessionBars::from_minutes(&minutes, session, 30) {
                    run.r30.extend(b.returns());
                }
            }
            runs.push(run);
        }
    }
    for (symbol, runs) in symbols.iter().zip(&runs) {
        let over = |f: &dyn Fn(&Intraday) -> f64| mean(&runs.iter().map(f).collect::<Vec<_>>());
        let k5 = over(&|r| stats::moments(&r.r5).excess_kurtosis);
        let k30 = over(&|r| stats::moments(&r.r30).excess_kurtosis);
        let acf = over(&|r| stats::mean_autocorrelation(&r.r5, 10));
        let acf30 = over(&|r| stats::mean_autocorrelation(&r.r30, 5));
        let acf_abs = over(&|r| stats::mean_autocorrelation(&stats::absolute(&r.r5), 10));
        let vv = over(&|r| stats::correlation(&r.v5, &stats::absolute(&r.r5)));
        let open = over(&|r| stats::u_shape_ratios(&r.bars, 6).0);
        let close = over(&|r| stats::u_shape_ratios(&r.bars, 6).1);
        println!(
            "{symbol}: 5-minute excess kurtosis {k5:.2}, 30-minute {k30:.2}, acf(r) 5-minute {acf:.3} 30-minute {acf30:.3}, acf(|r|) {acf_abs:.3}, corr(volume, |r|) {vv:.2}, U shape open {open:.2} close {close:.2}"
        );
        assert!(k5 > 3.0 && k30 < k5, "{symbol} tails {k5} {k30}");
        assert!(acf.abs() < 0.02, "{symbol} linear autocorrelation {acf}");
        assert!(
            acf30.abs() < 0.03,
            "{symbol} linear autocorrelation {acf30}"
        );
        assert!(acf_abs > 0.1, "{symbol} volatility clustering {acf_abs}");
        assert!(vv > 0.2, "{symbol} volume-volatility {vv}");
        assert!(open > 1.5 && close > 1.5, "{symbol} U shape {open} {close}");
    }
}

#[test]
fn quotes_are_centred_and_midpoint_prints_sit_at_the_exact_midpoint() {
    use rand::SeedableRng;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    for spread in 1..=5i64 {
        let mut quote_error = 0.0;
        let n = 200_000;
        for _ in 0..n {
            let mid = 10_000.0 + 1_000.0 * unit(rng.next_u64());
            let bid = bid_cents(mid, spread);
            let centre = bid as f64 + spread as f64 / 2.0;
            assert!((centre - mid).abs() <= 0.5 + 1e-9);
            quote_error += centre - mid;
            // Twice the midpoint in units is bid + ask in units, exactly.
            let print = midpoint_units(bid, spread);
            assert_eq!(
                2 * print,
                (2 * bid + spread) * PRICE_UNITS_PER_CENT,
                "spread {spread}"
            );
            assert!(bid * PRICE_UNITS_PER_CENT < print);
            assert!(print < (bid + spread) * PRICE_UNITS_PER_CENT);
        }
        // Uniform rounding errors of ±½ cent have a standard deviation of 0.29 cents; the
        // mean must be within 3 standard errors of 0.
        let bound = 3.0 * 0.29 / (n as f64).sqrt();
        assert!((quote_error / n as f64).abs() < bound, "spread {spread}");
    }
}

#[test]
fn a_tenth_of_continuous_trades_print_at_half_cents_on_a_one_cent_spread() {
    // AAPL quotes 1 cent wide near $190: its midpoint prints are half cents, every other
    // continuous print sits on the cent, and the crosses print on the cent.
    let plan = small(200_000);
    let mut out = TradeColumns::default();
    let (mut continuous, mut half) = (0u64, 0u64);
    for di in 0..plan.sessions().len() {
        out.clear();
        plan.generate(0, di, &mut out);
        let n = out.len();
        assert_eq!(out.prices[0] % PRICE_UNITS_PER_CENT, 0);
        assert_eq!(out.prices[n - 1] % PRICE_UNITS_PER_CENT, 0);
        for p in &out.prices[1..n - 1] {
            continuous += 1;
            match p % PRICE_UNITS_PER_CENT {
                0 => {}
                r if r == PRICE_UNITS_PER_CENT / 2 => half += 1,
                r => panic!("price {p} is {r} units off the half-cent grid"),
            }
        }
    }
    let share = half as f64 / continuous as f64;
    assert!((share - INSIDE_SPREAD_PROB).abs() < 0.01, "{share}");
}

#[test]
fn the_default_load_splits_share_volume_as_2024_did() {
    let adv: Vec<f64> = year(42, 1)
        .symbols()
        .iter()
        .map(|sp| sp.profile.adv_millions)
        .collect();
    let target: Vec<f64> = adv.iter().map(|a| a / adv.iter().sum::<f64>()).collect();
    // The plan of the default 300 M load: expected share volumes, exactly apportioned, and
    // trades in proportion to each symbol's volume over its mean trade size.
    let plan = year(42, 300_000_000);
    let counts: Vec<u64> = plan
        .symbols()
        .iter()
        .map(|sp| sp.chunks.iter().map(|c| c.count).sum())
        .collect();
    let expected: Vec<u64> = plan
        .symbols()
        .iter()
        .zip(&counts)
        .map(|(sp, n)| (*n as f64 * sp.mean_size) as u64)
        .collect();
    for (share, want) in stats::shares(&expected).iter().zip(&target) {
        assert!((share - want).abs() < 0.001, "{share} vs {want}");
    }
    let per_trade: Vec<f64> = plan
        .symbols()
        .iter()
        .map(|sp| sp.profile.adv_millions / sp.mean_size)
        .collect();
    let total: f64 = per_trade.iter().sum();
    for (share, want) in stats::shares(&counts).iter().zip(&per_trade) {
        assert!((share - want / total).abs() < 0.001, "{share} vs {want}");
    }

    // What generated years hold, over 8 seeds of 250,000 trades.
    const SEEDS: u64 = 8;
    let n = target.len();
    let (mut volumes, mut trades, mut odd) = (vec![0u64; n], vec![0u64; n], vec![0.0; n]);
    let mut shares = vec![0.0; n];
    let mut out = TradeColumns::default();
    for seed in 0..SEEDS {
        let plan = year(seed, 250_000);
        let mut seed_volumes = vec![0u64; n];
        for (s, sp) in plan.symbols().iter().enumerate() {
            out.clear();
            let mut closes = vec![sp.profile.start_price];
            for d in 0..plan.sessions().len() {
                plan.generate(s, d, &mut out);
                closes.push(*out.prices.last().unwrap() as f64 / PRICE_UNITS_PER_DOLLAR as f64);
            }
            // The tape's daily closes are the anchors' up to the closing cross's cent.
            let tape = stats::realised_vol(&stats::log_returns(&closes), 252.0);
            let anchors = stats::realised_vol(&daily_returns(sp), 252.0);
            assert!(
                (tape / anchors - 1.0).abs() < 0.01,
                "{} {tape} vs {anchors}",
                sp.symbol
            );
            seed_volumes[s] = out.amounts.iter().map(|a| u64::from(*a)).sum();
            trades[s] += out.len() as u64;
            odd[s] += stats::odd_lot_share(&out.amounts) / SEEDS as f64;
        }
        for (s, share) in stats::shares(&seed_volumes).iter().enumerate() {
            shares[s] += share / SEEDS as f64;
            volumes[s] += seed_volumes[s];
        }
    }
    let trade_shares = stats::shares(&trades);
    let load_mean = volumes.iter().sum::<u64>() as f64 / trades.iter().sum::<u64>() as f64;
    println!("mean trade size of the default load: {load_mean:.0} shares");
    for (s, sp) in plan.symbols().iter().enumerate() {
        println!(
            "{}: share volume {:.1} % (2024: {:.1} %), trades {:.1} %, odd lots {:.1} % of trades, mean size {:.0}",
            sp.symbol,
            100.0 * shares[s],
            100.0 * target[s],
            100.0 * trade_shares[s],
            100.0 * odd[s],
            volumes[s] as f64 / trades[s] as f64
        );
        assert!(
            (shares[s] - target[s]).abs() < 0.01,
            "{} {} vs {}",
            sp.symbol,
            shares[s],
            target[s]
        );
        // 71 % of US trades were odd lots in 2022, more in higher-priced stocks.
        let want = if sp.profile.start_price < 250.0 {
            0.72..0.84
        } else {
            0.8..0.92
        };
        assert!(want.contains(&odd[s]), "{} odd lots {}", sp.symbol, odd[s]);
    }
    // The average US trade was 51 shares in 2022; these higher-priced names trade fewer
    // shares a print than the market's cheaper ones, but their round lots and blocks weigh.
    assert!((40.0..80.0).contains(&load_mean), "mean size {load_mean}");
}

/// Per seed, over a full 2024 plan of the default symbols, the efficient price's 5- and
/// 30-minute returns within sessions (the minute anchors every trade is drawn around) and the
/// daily and 5-day close-to-close returns: excess kurtosis at each horizon, per symbol.
fn kurtosis_by_horizon(seed: u64) -> Vec<[f64; 4]> {
    let plan = year(seed, 1_000_000);
    plan.symbols()
        .iter()
        .enumerate()
        .map(|(s, sp)| {
            let (mut r5, mut r30) = (Vec::new(), Vec::new());
            for d in 0..plan.sessions().len() {
                let anchors = plan.chunk_trades(s, d).anchors;
                let every = |k: usize| -> Vec<f64> {
                    let prices: Vec<f64> = anchors.iter().step_by(k).copied().collect();
                    stats::log_returns(&prices)
                };
                r5.extend(every(5));
                r30.extend(every(30));
            }
            let daily = daily_returns(sp);
            [
                stats::moments(&r5).excess_kurtosis,
                stats::moments(&r30).excess_kurtosis,
                stats::moments(&daily).excess_kurtosis,
                stats::moments(&stats::aggregate(&daily, 5)).excess_kurtosis,
            ]
        })
        .collect()
}

#[test]
fn kurtosis_falls_as_the_horizon_grows() {
    const SEEDS: u64 = 16;
    let runs: Vec<Vec<[f64; 4]>> = (0..SEEDS).map(kurtosis_by_horizon).collect();
    for (s, sp) in year(0, 1).symbols().iter().enumerate() {
        let k: Vec<f64> = (0..4)
            .map(|h| mean(&runs.iter().map(|r| r[s][h]).collect::<Vec<_>>()))
            .collect();
        println!(
            "{}: excess kurtosis 5 minutes {:.2}, 30 minutes {:.2}, 1 day {:.2}, 5 days {:.2}",
            sp.symbol, k[0], k[1], k[2], k[3]
        );
        assert!(k[2] >= 3.0, "{} daily tails {}", sp.symbol, k[2]);
        assert!(
            k.windows(2).all(|w| w[0] > w[1]),
            "{} kurtosis by horizon {k:?}",
            sp.symbol
        );
    }
}
